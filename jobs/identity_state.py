"""The identity stage's own state, and the plan of an incremental run: what changed in silver since the last one.

After every run the stage persists (docs/identity.md §5, "Daily runs and full rebuilds"):
- `identity_record_state`: one row per source record: its identifier-combination keys and times;
- `identity_combo_state`: one row per distinct identifier combination (its columns as JSON);
- `identity_combo_nodes`: one row per (combination, identifier): which combinations hold an identifier;
- `identity_busy_days`: the (identifier, source, day) record counts above `max_records_per_day`;
- `identity_state`: per source the silver table version the run saw last, plus what the run depended on
  (run date, a fingerprint of conf/identity.yaml, the overrides table version, the versions of the tables it
  wrote). Written last: it is the run's commit point.

The next run is incremental when nothing but new silver data happened in between: same rules, same overrides,
a run date not before the last one, the identity tables at the versions the last run left, and only appends
and MERGEs (ingestion) in each silver table's history. Every other case (first run, rule or override change,
erasure, a crash between the writes, a backfill of an earlier date) takes the full pass; `plan_increment`
says why. The touched records are those in the silver change data feed since the recorded version, and those
with rows whose landing date `dt` entered the window (last run date, run date].
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings
    from cdp.identity.config import IdentityRules

log = logging.getLogger(__name__)

STATE_TABLE = "identity_state"
RECORD_STATE = "identity_record_state"
COMBO_STATE = "identity_combo_state"
COMBO_NODES = "identity_combo_nodes"
BUSY_DAYS = "identity_busy_days"
# the identity-state row is deleted first by erasure: a lake without it takes the full pass
STATE_TABLES = (STATE_TABLE, RECORD_STATE, COMBO_STATE, COMBO_NODES, BUSY_DAYS)
# tables the stage writes whose version the next run checks: a run killed after writing one of them leaves the
# next run a full pass. (identity_rejections, written first, needs no check: an increment judges again every
# identifier a killed run may have judged differently, since it re-reads all changes since the state's versions,
# and keeps the other verdicts, which such a run only copied. identity_edges: see READ_AT_VERSION.)
CHECKED_TABLES = ("identity_record_map", RECORD_STATE, COMBO_STATE, COMBO_NODES, BUSY_DAYS, "identity_nodes")
# tables an increment reads at the version the last run left, whatever came after: it adds the day's rows to
# theirs (identity_edges: min / max / sum with the new records' links), so a run killed after writing one must
# not be built on. Their version is kept with the checked ones; the next run reads that version (time travel).
READ_AT_VERSION = ("identity_edges",)
STATE_SCHEMA = ("source string, silver_version long, run_date date, rules_fingerprint string, "
                "overrides_version long, checked_versions map<string, long>")
DELETION_VECTORS = {"delta.enableDeletionVectors": "true"}
# commits that change no row (`cdp maintain`: compaction, vacuum): a checked identity table whose commits since
# the last run are all of these is as that run left it
MAINTENANCE_OPERATIONS = {"OPTIMIZE", "VACUUM START", "VACUUM END"}
# silver commits an incremental run can read through the change data feed (ingestion appends and MERGEs;
# compaction and vacuum change no row)
READABLE_OPERATIONS = {"MERGE", "WRITE"} | MAINTENANCE_OPERATIONS


@dataclass
class Increment:
    """What a daily run must look at: the touched records and the (source, day) pairs their changes touch."""
    previous_run_date: dt.date
    touched: DataFrame        # source, source_record_id (distinct)
    touched_days: DataFrame   # source, day
    silver_versions: dict[str, int]
    # touched records with a changed row landed on or before the last run date (re-delivered, late): with the
    # records already in the state, their source's silver is read whole; otherwise only rows after that date
    old_rows: DataFrame
    # READ_AT_VERSION table -> the version the last run left (read with time travel)
    read_versions: dict[str, int]


def rules_fingerprint(settings: Settings) -> str:
    from cdp.identity.config import IDENTITY_FILE

    return hashlib.sha256(settings.conf_path(IDENTITY_FILE).read_bytes()).hexdigest()


def _version(spark: SparkSession, settings: Settings, name: str) -> int:
    from cdp.lake import table_version

    v = table_version(spark, settings, name)
    return -1 if v is None else v


def enable_change_feed(spark: SparkSession, settings: Settings, table: str) -> None:
    """Turn on the Delta change data feed of a silver table (the incremental runs read it), and deletion
    vectors (their MERGE of `one_id` marks the old rows instead of rewriting whole files). Once per table."""
    enable_properties(spark, settings, table, {"delta.enableChangeDataFeed": "true",
                                               "delta.enableDeletionVectors": "true"})


def enable_properties(spark: SparkSession, settings: Settings, table: str, wanted: dict[str, str]) -> None:
    """Set Delta table properties that are not set yet (one ALTER commit, none when all are in place)."""
    from delta.tables import DeltaTable

    path = settings.table_path(table)
    props = DeltaTable.forPath(spark, path).detail().first()["properties"] or {}
    missing = {k: v for k, v in wanted.items() if str(props.get(k, "")).lower() != v}
    if missing:
        listed = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({listed})")


def plan_increment(spark: SparkSession, settings: Settings, rules: IdentityRules, run_date: dt.date,
                   silver: dict[str, DataFrame]) -> tuple[Increment | None, str]:
    """The increment since the last run, or None and the reason a full pass is needed."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    if not table_exists(spark, settings, STATE_TABLE):
        return None, "no identity state yet (first run)"
    rows = read_table(spark, settings, STATE_TABLE).collect()
    if not rows:
        return None, "empty identity state"
    head = rows[0]
    if head.rules_fingerprint != rules_fingerprint(settings):
        return None, "conf/identity.yaml changed since the last run"
    if run_date < head.run_date:
        return None, f"run date {run_date} is before the last run's {head.run_date}"
    if head.overrides_version != _version(spark, settings, "identity_overrides"):
        return None, "steward overrides changed since the last run"
    for name, version in (head.checked_versions or {}).items():
        if name not in READ_AT_VERSION and _same_rows_since(spark, settings, name, version) is None:
            return None, f"{name} changed since the last run (an interrupted run or another job)"
    read_versions = {}
    for name in READ_AT_VERSION:
        version = (head.checked_versions or {}).get(name)
        if version is None:
            return None, f"the identity state does not record the version of {name} (written by an older release)"
        # only maintenance since: the current version has the same rows (and its files, which a VACUUM after a
        # compaction may have taken from the old version)
        version = _same_rows_since(spark, settings, name, version) or version
        if _version(spark, settings, name) != version and not _readable(spark, settings, name, version):
            return None, f"{name} changed since the last run and the version it left can no longer be read"
        read_versions[name] = version
    recorded = {r.source: r.silver_version for r in rows}
    if set(recorded) != set(silver):
        return None, "the set of silver source tables changed"

    parts = []
    versions = {}
    for name, df in silver.items():
        source = rules.sources[name]
        path = settings.table_path(source.table)
        since, now = recorded[name], _version(spark, settings, source.table)
        versions[name] = now
        day = F.to_date(F.col(source.seen_at).cast("timestamp"))
        if now > since:
            ops = (DeltaTable.forPath(spark, path).history(now - since).where(F.col("version") > since)
                   .select("operation", "operationParameters").collect())
            for op in ops:
                params = op.operationParameters or {}
                if op.operation not in READABLE_OPERATIONS or (op.operation == "WRITE" and params.get("mode") != "Append"):
                    return None, f"{source.table} was changed by {op.operation} (not an ingestion append or merge)"
            try:
                changes = (spark.read.format("delta").option("readChangeFeed", "true")
                           .option("startingVersion", since + 1).option("endingVersion", now).load(path))
                parts.append(changes.select(F.lit(name).alias("source"),
                                            F.col("source_record_id").cast("string").alias("source_record_id"),
                                            day.alias("day"), (F.col("dt") <= F.lit(head.run_date)).alias("_old")))
            except Exception as exc:   # the feed was off for part of the range, history vacuumed, ...
                return None, f"the change data feed of {source.table} cannot be read ({type(exc).__name__})"
        if "dt" in df.columns and run_date > head.run_date:
            window = df.where(F.col("dt") > F.lit(head.run_date))
            parts.append(window.select(F.lit(name).alias("source"),
                                       F.col("source_record_id").cast("string").alias("source_record_id"),
                                       day.alias("day"), F.lit(False).alias("_old")))
    if parts:
        from functools import reduce

        changed = reduce(lambda a, b: a.unionByName(b), parts).localCheckpoint()
    else:
        changed = spark.createDataFrame([], "source string, source_record_id string, day date, _old boolean")
    old = changed.where(F.coalesce("_old", F.lit(True))).select("source", "source_record_id").distinct()
    return Increment(head.run_date, changed.select("source", "source_record_id").distinct(),
                     changed.select("source", "day").distinct(), versions, old, read_versions), "incremental"


def _same_rows_since(spark: SparkSession, settings: Settings, name: str, version: int) -> int | None:
    """The current version of `name` when it holds the same rows as `version`: no commit since, or only
    maintenance commits (MAINTENANCE_OPERATIONS). None otherwise."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    now = _version(spark, settings, name)
    if now == version:
        return now
    if now < version or version < 0:
        return None
    ops = (DeltaTable.forPath(spark, settings.table_path(name)).history(now - version)
           .where(F.col("version") > version).select("operation").collect())
    return now if len(ops) == now - version and all(o.operation in MAINTENANCE_OPERATIONS for o in ops) else None


def _readable(spark: SparkSession, settings: Settings, name: str, version: int) -> bool:
    """Whether every data file of `name` at `version` is still there (VACUUM removes old versions' files)."""
    from cdp.lake import read_table

    try:
        files = read_table(spark, settings, name, version=version).inputFiles()
    except Exception:   # the version's log entries are gone
        return False
    jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    paths = [jvm.org.apache.hadoop.fs.Path(f) for f in files]
    return all(p.getFileSystem(conf).exists(p) for p in paths)


def write_state(spark: SparkSession, settings: Settings, rules: IdentityRules, run_date: dt.date,
                sources: list[str]) -> None:
    """The commit point of a run: the silver versions it has seen (after its own one_id writes) and what it
    depended on. Written after every other identity table."""
    from cdp.lake import overwrite_table

    checked = {name: _version(spark, settings, name) for name in (*CHECKED_TABLES, *READ_AT_VERSION)}
    fingerprint, overrides = rules_fingerprint(settings), _version(spark, settings, "identity_overrides")
    rows = [(name, _version(spark, settings, rules.sources[name].table), run_date, fingerprint, overrides, checked)
            for name in sources]
    overwrite_table(spark.createDataFrame(rows, STATE_SCHEMA), settings, STATE_TABLE)
