"""Reads and writes of Delta tables by logical name: the only place jobs touch storage.

Transforms stay pure (`DataFrame -> DataFrame`); a job's `run()` calls these at its edges.

Test-only fault injection (docs/reliability.md): with `CDP_FAULT_KILL_AT=<table>:<before|during|after>[:<nth>]`
set, the process SIGKILLs itself right before, while (as soon as a Spark job of the write runs) or right after
the `nth` (default 1st) write of `<table>` through these helpers. Unset, it costs one dictionary lookup; it is
never set in production. The crash tests use it to land a kill between or inside a stage's writes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
from typing import TYPE_CHECKING, Iterator, Sequence

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from cdp.config import Settings

log = logging.getLogger(__name__)

FAULT_ENV = "CDP_FAULT_KILL_AT"
_FAULT_WHEN = ("before", "during", "after")
_fault_counts: dict[str, int] = {}


def _kill_now(point: str) -> None:
    log.warning("%s=%s: SIGKILL now", FAULT_ENV, point)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_when_a_job_runs(spark: SparkSession, point: str) -> None:
    tracker = spark.sparkContext.statusTracker()
    while not tracker.getActiveJobsIds():
        time.sleep(0.002)
    _kill_now(point)


@contextlib.contextmanager
def _fault_point(spark: SparkSession, name: str) -> Iterator[None]:
    """The `CDP_FAULT_KILL_AT` hook around one write of table `name` (a no-op when the variable is unset)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or spec.split(":", 1)[0] != name:
        yield
        return
    from cdp.errors import ConfigError

    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[1] not in _FAULT_WHEN or (len(parts) == 3 and not parts[2].isdigit()):
        raise ConfigError(f"{FAULT_ENV}={spec!r}: expected <table>:<before|during|after>[:<nth>]")
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] != (int(parts[2]) if len(parts) == 3 else 1):
        yield
        return
    if parts[1] == "before":
        _kill_now(spec)
    if parts[1] == "during":
        threading.Thread(target=_kill_when_a_job_runs, args=(spark, spec), daemon=True).start()
    yield
    if parts[1] == "after":
        _kill_now(spec)


def table_exists(spark: SparkSession, settings: Settings, name: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, settings.table_path(name))


def read_table(spark: SparkSession, settings: Settings, name: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(settings.table_path(name))


def table_version(spark: SparkSession, settings: Settings, name: str) -> int | None:
    """Current Delta version of a table (None when it does not exist yet).

    Read from the table's refreshed snapshot on the JVM (no Spark job); `history(1)`, the public route, runs a
    Spark job per call (0.26 s on a tiny table here, and the identity stage asks about 26 times a run). Delta
    releases whose DeltaLog has another `update` signature take the public route.
    """
    from delta.tables import DeltaTable
    from py4j.protocol import Py4JError

    if not table_exists(spark, settings, name):
        return None
    path = settings.table_path(name)
    jvm = spark._jvm
    try:
        log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
        return int(log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty()).version())
    except Py4JError:
        return int(DeltaTable.forPath(spark, path).history(1).collect()[0]["version"])


def overwrite_table(df: DataFrame, settings: Settings, name: str, partition_by: Sequence[str] = (),
                    replace_where: str | None = None) -> None:
    """Replace the whole table (or the slice `replace_where`) with `df` in one Delta commit."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true" if not replace_where else "false")
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    with _fault_point(df.sparkSession, name):
        writer.save(settings.table_path(name))


def append_table(df: DataFrame, settings: Settings, name: str, partition_by: Sequence[str] = (),
                 add_new_columns: bool = False) -> None:
    """Append `df` to table `name`. `add_new_columns` lets a log table gain nullable columns added in a later
    release (Delta `mergeSchema`: earlier rows read null); otherwise a schema difference is an error."""
    writer = df.write.format("delta").mode("append")
    if add_new_columns:
        writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    with _fault_point(df.sparkSession, name):
        writer.save(settings.table_path(name))


def merge_table(spark: SparkSession, df: DataFrame, settings: Settings, name: str, keys: Sequence[str],
                update: bool = True, partition_by: Sequence[str] = (), update_condition: str | None = None) -> None:
    """Upsert `df` into table `name` on `keys` (insert-only when `update` is False); creates the table if absent.

    `update_condition` (SQL over aliases `t` target and `s` source, e.g. `s.updated_at >= t.updated_at`) limits
    which matched rows are updated. Running the same merge twice leaves the table as after one run.
    """
    from delta.tables import DeltaTable

    path = settings.table_path(name)
    with _fault_point(spark, name):
        if not DeltaTable.isDeltaTable(spark, path):
            writer = df.write.format("delta").mode("append")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.save(path)
            return
        condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
        merge = DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), condition)
        if update:
            merge = merge.whenMatchedUpdateAll(condition=update_condition)
        merge.whenNotMatchedInsertAll().execute()


def sync_rows(spark: SparkSession, df: DataFrame, settings: Settings, name: str, keys: Sequence[str],
              columns: Sequence[str], delete_column: str = "_delete") -> None:
    """Apply row changes to an existing table in one MERGE on `keys`: rows of `df` flagged `delete_column` delete
    their match; the others update `columns` of their match or are inserted. Running it twice equals once."""
    from delta.tables import DeltaTable

    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    values = {c: f"s.`{c}`" for c in columns}
    with _fault_point(spark, name):
        (DeltaTable.forPath(spark, settings.table_path(name)).alias("t")
         .merge(df.alias("s"), condition)
         .whenMatchedDelete(condition=f"s.`{delete_column}`")
         .whenMatchedUpdate(set=values)
         .whenNotMatchedInsert(condition=f"NOT s.`{delete_column}`", values=values)
         .execute())


# keys `replace_rows` lists in a DELETE condition at most (above: one MERGE)
LISTED_KEYS_MAX = 50_000
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_.:~#@/+=-]*$")


def replace_rows(spark: SparkSession, settings: Settings, name: str, keys: Sequence[str], taken_out: DataFrame,
                 rows: DataFrame) -> None:
    """Replace rows of table `name` by key: the rows whose `keys` are in `taken_out` leave it and `rows` come in
    (a row of `rows` may replace one taken out). Not idempotent: run twice, the rows of `rows` whose keys were
    not taken out come in twice. The identity stage never runs it twice on one state: a re-run after a kill
    sees the table's version moved and takes the full pass.

    When the keys taken out can be listed (at most LISTED_KEYS_MAX, plain text), a DELETE of the listed keys and
    an append. On a table with deletion vectors, a MERGE that updates a few thousand rows spread over every file
    reads all of those files whole and joins them with its source (27 s of a 35 s record-map MERGE at 1M
    customers); the DELETE reads only the key columns and marks the rows. Two commits instead of one: a run
    killed between them leaves the table short of the rows, and the identity stage's next run sees the table's
    version moved and takes the full pass, which rewrites it whole. Otherwise one MERGE (`sync_rows`).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    listed = [tuple(r) for r in taken_out.select(*keys).distinct().limit(LISTED_KEYS_MAX + 1).collect()]
    if len(listed) > LISTED_KEYS_MAX or any(not _PLAIN_KEY.match(str(v)) for key in listed for v in key):
        gone = taken_out.select(*keys).join(rows.select(*keys), list(keys), "left_anti")
        updates = (rows.withColumn("_delete", F.lit(False))
                   .unionByName(gone.withColumn("_delete", F.lit(True)), allowMissingColumns=True))
        sync_rows(spark, updates, settings, name, keys, rows.columns)
        return
    by_prefix: dict[tuple, list[str]] = {}
    for key in listed:
        by_prefix.setdefault(tuple(key[:-1]), []).append(str(key[-1]))
    conditions = []
    for prefix, last in sorted(by_prefix.items()):
        values = ", ".join(f"'{v}'" for v in sorted(set(last)))
        parts = [f"`{k}` = '{v}'" for k, v in zip(keys[:-1], prefix)] + [f"`{keys[-1]}` IN ({values})"]
        conditions.append("(" + " AND ".join(parts) + ")")
    with _fault_point(spark, name):
        if conditions:
            DeltaTable.forPath(spark, settings.table_path(name)).delete(F.expr(" OR ".join(conditions)))
        rows.write.format("delta").mode("append").save(settings.table_path(name))


# `cluster_by_date`: the file size it writes, and the read amplification of a one-day query above which it does
CLUSTER_FILE_BYTES = 128 * 1024 * 1024
CLUSTER_AMPLIFICATION = 4.0


def date_read_amplification(files: Sequence[tuple], days: dict, target_bytes: int) -> float:
    """How many times more bytes a query for one value of a date column reads than it must, averaged over the
    rows: `files` is (min, max, bytes) per data file, `days` the rows per value. A day's rows need
    max(their share of the bytes, one file of `target_bytes`); a query reads every file whose range holds it.

    >>> date_read_amplification([(1, 1, 10), (2, 2, 10)], {1: 5, 2: 5}, 10)
    1.0
    >>> date_read_amplification([(1, 2, 10), (1, 2, 10)], {1: 5, 2: 5}, 10)
    2.0
    """
    total_rows = sum(days.values())
    total_bytes = sum(f[2] for f in files)
    if not total_rows or not total_bytes:
        return 0.0
    weighted = 0.0
    for day, rows in days.items():
        read = sum(size for low, high, size in files if low <= day <= high)
        weighted += rows * read / max(total_bytes * rows / total_rows, min(target_bytes, total_bytes))
    return weighted / total_rows


@contextlib.contextmanager
def spark_conf(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """Set session confs for the duration of a block, then put the earlier values back."""
    before = {k: spark.conf.get(k, None) for k in values}
    for k, v in values.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def cluster_by_date(spark: SparkSession, settings: Settings, name: str, column: str = "dt",
                    target_bytes: int = CLUSTER_FILE_BYTES, threshold: float = CLUSTER_AMPLIFICATION) -> bool | None:
    """Lay table `name` out by `column` (Delta OPTIMIZE ZORDER BY, files of about `target_bytes`) when a query for
    one day would read more than `threshold` times the bytes it needs (`date_read_amplification`).

    Daily ingestion writes each day's rows to new files, so a lake fed day by day stays laid out by day; a first
    load or a backfill of many days writes every file across all of them, and every query by date (the identity
    stage's recount of busy days, its MERGE of the day's records) then reads the whole table. OPTIMIZE changes
    no row (no change-feed rows, readers see the same data); a crash leaves the table as it was. Returns whether
    it rewrote the table, None when the table has no such column.
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    df = read_table(spark, settings, name)
    if column not in df.columns:
        return None
    cells = (df.where(F.col(column).isNotNull())
             .groupBy(F.col("_metadata.file_path").alias("file"), F.col(column).alias("day"))
             .agg(F.count(F.lit(1)).alias("rows"), F.first("_metadata.file_size").alias("bytes")).collect())
    files: dict[str, list] = {}
    days: dict = {}
    for c in cells:
        f = files.setdefault(c.file, [c.day, c.day, c.bytes])
        f[0], f[1] = min(f[0], c.day), max(f[1], c.day)
        days[c.day] = days.get(c.day, 0) + c.rows
    amplification = date_read_amplification([tuple(f) for f in files.values()], days, target_bytes)
    if amplification <= threshold:
        return False
    with spark_conf(spark, {"spark.databricks.delta.optimize.maxFileSize": str(target_bytes)}):
        with _fault_point(spark, name):
            DeltaTable.forPath(spark, settings.table_path(name)).optimize().executeZOrderBy(column)
    log.info("%s laid out by %s (a one-day read was %.1f times what it needs)", name, column, amplification)
    return True


def register_tables(spark: SparkSession, settings: Settings, prefixes: Sequence[str] = ("silver_", "gold_")) -> list[str]:
    """Register existing tables as temporary views named by their logical name, for Spark SQL by name."""
    registered = []
    for name in settings.tables:
        if name.startswith(tuple(prefixes)) and table_exists(spark, settings, name):
            read_table(spark, settings, name).createOrReplaceTempView(name)
            registered.append(name)
    return registered


def add_missing_columns(spark: SparkSession, settings: Settings, name: str, schema: StructType) -> list[str]:
    """Additive schema change of an existing table: add the top-level columns of `schema` that table `name`
    lacks (nullable: earlier rows read null), so a MERGE of rows with a new contract column keeps it.
    Returns the added column names; nothing to do when the table does not exist yet."""
    if not table_exists(spark, settings, name):
        return []
    present = {c.lower() for c in read_table(spark, settings, name).columns}
    added = []
    for i, f in enumerate(schema.fields):
        if f.name.lower() in present:
            continue
        position = f"AFTER `{schema.fields[i - 1].name}`" if i else "FIRST"  # the contract's column order
        spark.sql(f"ALTER TABLE delta.`{settings.table_path(name)}` ADD COLUMNS "
                  f"(`{f.name}` {f.dataType.simpleString()} {position})")
        present.add(f.name.lower())
        added.append(f.name)
    if added:
        log.info("%s: added column(s) %s", name, ", ".join(added))
    return added


def delete_rows(spark: SparkSession, settings: Settings, name: str, condition: Column) -> None:
    """Delta DELETE of the rows of table `name` matching `condition` (a new table version; the data files stay
    for time travel until a VACUUM removes them)."""
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, settings.table_path(name)).delete(condition)
