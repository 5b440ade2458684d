"""Job: landing -> bronze -> silver for every source, validated by Great Expectations, with quarantine.

For a run date D, every file under `<landing>/<source>/dt=YYYY-MM-DD/` with dt <= D whose content is not yet in
the file ledger is ingested (late files for old dates included). Per source, in this order (each write keyed,
so a crash and re-run lands the same rows):

1. hash every candidate file; skip contents already in `ingest_file_ledger` or seen twice in this run;
2. stage each new file (decode in the declared encoding, split lines; readers.py) or reject it as a whole;
3. `bronze_<source>`: every staged row as delivered + provenance (replace by content hash);
4. type and normalise (normalise.py), validate with the source's GX suite (expectations.py);
5. `quarantine_files`, `quarantine_rows` (MERGE on their keys);
6. silver: accepted rows, latest version per key, MERGE on the contract keys;
7. `pii_values`: raw identifiers of accepted rows by keyed hash (insert-only MERGE);
8. `ingest_file_ledger`: one row per file with landed / accepted / quarantined counts.
Finally `ingest_run_summary` gets one row per source, and `run()` returns the same summary.

    spark-submit jobs/ingest.py --landing data/landing --lake data/lake --date 2026-11-27
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from cdp.config import local_folder
from cdp.entry import job_main
from cdp.errors import ConfigError
from cdp.ingestion import ledger as ledger_mod
from cdp.ingestion import quarantine as quarantine_mod
from cdp.ingestion import readers
from cdp.ingestion.expectations import failures_frame, load_rules, validate_rows
from cdp.ingestion.normalise import REFERENCE, TYPERS, silver_columns
from cdp.lake import (CLUSTER_AMPLIFICATION, add_missing_columns, append_table, cluster_by_date, merge_table,
                      overwrite_table, read_table, table_exists)
from cdp.privacy import hash_col, load_secret

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

BRONZE_TABLE = {"pos": "bronze_pos_lines", "miniprogram": "bronze_miniprogram_events",
                "wecom": "bronze_wecom_contact_changes", "ecommerce": "bronze_ecommerce_lines",
                "crm": "bronze_crm_members", "catalog": "bronze_catalog", "stores": "bronze_stores"}
SILVER_TABLE = {"pos": "silver_pos_lines", "miniprogram": "silver_miniprogram_events",
                "wecom": "silver_wecom_contacts", "ecommerce": "silver_ecommerce_lines",
                "crm": "silver_crm_members", "catalog": "silver_catalog", "stores": "silver_stores"}


@dataclass(frozen=True)
class SilverPlan:
    """How a source's accepted rows become its silver table: the key, which version wins, the MERGE guard."""
    keys: tuple[str, ...]
    latest_first: tuple[str, ...]  # ordering inside one run, most recent first
    update_condition: str          # MERGE guard: a row already in silver is replaced only by a newer one


_FACT_ORDER = ("dt", "source_file", "source_line")
SILVER_PLANS: dict[str, SilverPlan] = {
    "pos": SilverPlan(("brand_id", "order_id", "line_no"), _FACT_ORDER, "s.dt >= t.dt"),
    "miniprogram": SilverPlan(("event_id",), _FACT_ORDER, "s.dt >= t.dt"),
    "ecommerce": SilverPlan(("platform", "order_id", "sku_id"), _FACT_ORDER, "s.dt >= t.dt"),
    "crm": SilverPlan(("brand_id", "member_card_no"), ("updated_at", *_FACT_ORDER), "s.updated_at >= t.updated_at"),
    "wecom": SilverPlan(("external_userid", "guide_userid"), ("last_change_at", *_FACT_ORDER),
                        "s.last_change_at >= t.last_change_at"),
    "catalog": SilverPlan(("sku_id",), _FACT_ORDER, "s.dt >= t.dt"),
    "stores": SilverPlan(("store_id",), _FACT_ORDER, "s.dt >= t.dt"),
}
PII_KINDS = ("mobile", "unionid", "openid", "name")


@contextmanager
def _step(source: str, what: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log.info("%s: %s took %.1fs", source, what, time.perf_counter() - started)


@dataclass
class SourceReport:
    source: str
    files: list[ledger_mod.FileCount] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)   # re-deliveries: known content under another path
    already_ingested: int = 0   # files the ledger holds under this very path (a landing folder that keeps history)
    rule_counts: dict[str, int] = field(default_factory=dict)

    def totals(self) -> dict[str, Any]:
        landed = sum(f.rows_landed for f in self.files)
        accepted = sum(f.rows_accepted for f in self.files)
        quarantined = sum(f.rows_quarantined for f in self.files)
        return {"files": len(self.files), "rows_landed": landed, "rows_accepted": accepted,
                "rows_quarantined": quarantined,
                "is_balanced": all(f.is_balanced for f in self.files) and landed == accepted + quarantined}

    def as_dict(self) -> dict[str, Any]:
        return {**self.totals(),
                "files_quarantined": [{"file": f.file_path, "reason": f.reason} for f in self.files
                                      if f.status == "quarantined_file"],
                "files_skipped": self.skipped,
                "files_already_ingested": self.already_ingested,
                "rows_failed_by_rule": {k: v for k, v in self.rule_counts.items() if v}}


def latest_per_key(df: DataFrame, plan: SilverPlan) -> DataFrame:
    """One row per silver key: the most recent version (by plan.latest_first, descending)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(*plan.keys).orderBy(*[F.col(c).desc_nulls_last() for c in plan.latest_first])
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def keep_first_added_at(df: DataFrame, plan: SilverPlan) -> DataFrame:
    """WeCom: the contact's `added_at` is the earliest createtime seen for the pair, not the last change's."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    return df.withColumn("added_at", F.min("added_at").over(Window.partitionBy(*plan.keys)))


# WeCom fields a change may leave out (a del_follow_user callback names only the contact and the guide): absent or
# null, the pair keeps its earlier value; an empty list (`remark_mobiles: []`) is a value and clears it.
WECOM_CARRIED = ("store_id", "name_masked", "gender", "unionid_hash", "remark_mobile_hashes", "remark_mobiles_masked",
                 "tags")


def carry_absent_fields(df: DataFrame, plan: SilverPlan) -> DataFrame:
    """WeCom: a change without a field keeps the pair's latest earlier value of it, so deleting a contact does not
    drop its unionid or remark phones (which would split its One-ID from the person's). Remark arrays that were
    never delivered are empty; a gender never delivered is U."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    earlier = (Window.partitionBy(*plan.keys).orderBy(*[F.col(c).asc_nulls_first() for c in plan.latest_first])
               .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    df = df.withColumns({c: F.last(c, ignorenulls=True).over(earlier) for c in WECOM_CARRIED})
    return df.withColumns({**{c: F.coalesce(c, F.array().cast("array<string>"))
                              for c in ("remark_mobile_hashes", "remark_mobiles_masked")},
                           "gender": F.coalesce("gender", F.lit("U"))})


def pii_rows(typed: DataFrame, key: bytes, first_seen_at: dt.datetime) -> DataFrame:
    """`pii_values` rows (kind, value_hash, value, first_seen_at) from the `_pii` arrays of accepted rows."""
    from pyspark.sql import functions as F

    entries = typed.select(F.explode("_pii").alias("e")).select("e.kind", "e.value")
    value_hash = F.when(F.col("kind") == PII_KINDS[0], hash_col(F.col("value"), PII_KINDS[0], key))
    for kind in PII_KINDS[1:]:
        value_hash = value_hash.when(F.col("kind") == kind, hash_col(F.col("value"), kind, key))
    return entries.select("kind", value_hash.alias("value_hash"), "value", F.lit(first_seen_at).alias("first_seen_at"))


def _stage_dir(settings: Settings, run_id: str) -> Path:
    return Path(settings.table_path("ingest_staging")) / run_id


def _remove_stale_staging(settings: Settings, run_id: str) -> None:
    """Staging folders of earlier runs killed before their clean-up (a finished run removes its own; a SIGKILL
    skips that). Safe: the caller holds the lake lock (cdp.locking), so no other ingest of this lake runs."""
    root = _stage_dir(settings, run_id).parent
    if root.is_dir():
        for child in root.iterdir():
            if child.name != run_id:
                log.info("removing the staging folder of an interrupted run: %s", child.name)
                shutil.rmtree(child, ignore_errors=True)


def _hashes_predicate(hashes: Sequence[str]) -> str:
    return "content_hash IN (" + ", ".join(f"'{h}'" for h in sorted(hashes)) + ")"


def ingest_source(spark: SparkSession, settings: Settings, source: str, run_date: dt.date, run_ctx: "_RunContext",
                  known: dict[tuple[str, str], str]) -> SourceReport:
    """Ingest the new files of one source: steps 1-6 of the module docstring (7-8 are per run)."""
    conf = settings.sources[source]
    report = SourceReport(source)
    landing = Path(settings.landing_dir)
    candidates = readers.discover_files(settings.landing_path(source), conf.pattern, source, run_date.isoformat())
    new: list[readers.LandedFile] = []
    seen: dict[str, str] = {}
    with _step(source, f"hash {len(candidates)} file(s)"):
        for path, day in candidates:
            content_hash, size = readers.hash_file(path)
            relative = str(Path(path).relative_to(landing)) if Path(path).is_relative_to(landing) else path
            earlier = known.get((source, content_hash)) or seen.get(content_hash)
            if earlier == relative:
                report.already_ingested += 1
                continue
            if earlier:
                report.skipped.append({"file": relative, "same_content_as": earlier})
                log.debug("%s: skip %s, same content as %s (already ingested)", source, relative, earlier)
                continue
            seen[content_hash] = relative
            new.append(readers.LandedFile(source, path, day, content_hash, size, relative))
    if report.skipped:
        log.info("%s: %d file(s) skipped, their content was already ingested from another file", source,
                 len(report.skipped))
    if not new:
        return report

    stage_dir = run_ctx.stage_dir / source
    stage_dir.mkdir(parents=True, exist_ok=True)
    staged: list[readers.StagedFile] = []
    with _step(source, f"stage {len(new)} file(s)"):
        for landed in new:
            outcome = readers.stage_file(landed, conf.format, conf.encoding, conf.required_columns,
                                         str(stage_dir / f"{landed.content_hash}.parquet"))
            if isinstance(outcome, readers.FileRejection):
                log.warning("%s: file %s quarantined: %s", source, landed.relative_path, outcome.reason)
                run_ctx.rejected.append(outcome)
                n = readers.count_records(landed.path, conf.format)
                report.files.append(ledger_mod.FileCount(source, landed.relative_path, landed.dt,
                                                         landed.content_hash, n, 0, n, "quarantined_file",
                                                         outcome.reason))
            else:
                staged.append(outcome)
    if staged:
        report.files.extend(_ingest_rows(spark, settings, source, staged, run_date, run_ctx, report))
    return report


@dataclass
class _RunContext:
    run_id: str
    ingested_at: dt.datetime
    key: bytes
    stage_dir: Path
    rejected: list[readers.FileRejection] = field(default_factory=list)
    pii_parts: list[DataFrame] = field(default_factory=list)
    cached: list[DataFrame] = field(default_factory=list)


def _ingest_rows(spark: SparkSession, settings: Settings, source: str, staged: list[readers.StagedFile],
                 run_date: dt.date, run_ctx: _RunContext, report: SourceReport) -> list[ledger_mod.FileCount]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    conf = settings.sources[source]
    hashes = [s.landed.content_hash for s in staged]
    raw = spark.read.parquet(*[s.staged_path for s in staged])
    data_columns = [c for c in raw.columns if c not in ("content_hash", "source_file", "dt", "source_line")]
    bronze = raw.select(F.lit(source).alias("source"), "source_file", "source_line",
                        F.col("dt").cast("date").alias("dt"), "content_hash",
                        F.lit(run_ctx.ingested_at).alias("ingested_at"), F.lit(run_ctx.run_id).alias("run_id"),
                        *data_columns)
    with _step(source, "bronze write"):
        overwrite_table(bronze, settings, BRONZE_TABLE[source], partition_by=("dt",),
                        replace_where=_hashes_predicate(hashes))

    named = readers.bronze_columns(source, conf.required_columns) if conf.format == "csv" else ()
    brand = conf.brand_id or settings.default_brand_id
    typed = TYPERS[source](bronze, key=run_ctx.key, default_brand_id=brand, timezone=settings.timezone, named=named)
    contract = silver_columns(source)
    typed = typed.select(*contract, *sorted(c for c in typed.columns if c.startswith("_") and c != "_j"),
                         *[c for c in ("content_hash",) if c not in contract])
    typed = typed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        rules = load_rules(settings.conf_dir, source)
        with _step(source, f"GX suite ({len(rules.rules)} rules)"):
            outcome = validate_rows(typed, source, rules, run_date, contract)
        report.rule_counts = outcome.rule_counts
        flagged = quarantine_mod.flag_failures(typed, failures_frame(spark, outcome, rules))
        flagged = flagged.persist(StorageLevel.MEMORY_AND_DISK)
        with _step(source, "count per file"):
            counts = {r.content_hash: (int(r.accepted), int(r.quarantined))
                      for r in flagged.groupBy("content_hash").agg(
                          F.sum(F.col("_rule").isNull().cast("long")).alias("accepted"),
                          F.sum(F.col("_rule").isNotNull().cast("long")).alias("quarantined")).collect()}
        if any(q for _, q in counts.values()):
            with _step(source, "quarantine_rows merge"):
                merge_table(spark, quarantine_mod.quarantined_rows(flagged, run_ctx.run_id, run_ctx.ingested_at),
                            settings, "quarantine_rows", keys=["source", "content_hash", "source_line"])
        accepted = quarantine_mod.accepted_rows(flagged)
        with _step(source, "silver merge"):
            _write_silver(spark, settings, source, accepted)
        if source not in REFERENCE:
            run_ctx.pii_parts.append(pii_rows(accepted, run_ctx.key, run_ctx.ingested_at))
            run_ctx.cached.append(flagged)  # read again by the pii_values merge at the end of the run
        else:
            flagged.unpersist()
    finally:
        typed.unpersist()

    files = []
    for s in staged:
        accepted_n, quarantined_n = counts.get(s.landed.content_hash, (0, 0))
        files.append(ledger_mod.FileCount(source, s.landed.relative_path, s.landed.dt, s.landed.content_hash,
                                          s.rows_landed, accepted_n, quarantined_n, "accepted", None))
    return files


def _write_silver(spark: SparkSession, settings: Settings, source: str, accepted: DataFrame) -> None:
    plan = SILVER_PLANS[source]
    name = SILVER_TABLE[source]
    batch = accepted
    # a column added to the contract (docs/tables.md "Schema changes") is added to a table written before it
    add_missing_columns(spark, settings, name, batch.select(*silver_columns(source)).schema)
    if source == "wecom":
        if table_exists(spark, settings, name):
            # earlier state of the touched pairs takes part in "earliest added_at"
            current = read_table(spark, settings, name).join(batch.select(*plan.keys).distinct(), list(plan.keys))
            batch = batch.select(*silver_columns(source)).unionByName(current.select(*silver_columns(source)))
        batch = carry_absent_fields(keep_first_added_at(batch, plan), plan)
    silver = latest_per_key(batch, plan).select(*silver_columns(source))
    merge_table(spark, silver, settings, name, keys=list(plan.keys), update_condition=plan.update_condition)


def _create_if_absent(spark: SparkSession, settings: Settings, schemas: dict[str, str]) -> None:
    """Bookkeeping tables exist (empty) after the first run, so readers need no special case."""
    for name, schema in schemas.items():
        if not table_exists(spark, settings, name):
            overwrite_table(spark.createDataFrame([], schema), settings, name)


def layout_candidates(reports: dict[str, SourceReport], max_days: float = CLUSTER_AMPLIFICATION) -> list[str]:
    """The silver tables whose date layout this run may have spoilt: those it wrote rows of more than `max_days`
    landing days to (a first load, a backfill). A run writes its rows to new files, each spanning the run's days,
    so a run of at most `max_days` days cannot make a one-day read worse than `lake.cluster_by_date`'s threshold;
    checking costs a scan of the table's dates (5 s for 9.5 M POS rows), which a daily run is spared.

    >>> from cdp.ingestion.ledger import FileCount
    >>> def file(d, status="accepted"):
    ...     return FileCount("pos", f"pos/dt={d}/a.csv", d, "h", 1, 1, 0, status, None)
    >>> daily = SourceReport("pos", [file("2026-03-01"), file("2026-02-27")])
    >>> load = SourceReport("crm", [file(f"2026-03-{d:02d}") for d in range(1, 6)])
    >>> layout_candidates({"pos": daily, "crm": load})
    ['silver_crm_members']
    """
    return [SILVER_TABLE[source] for source, report in reports.items()
            if len({f.dt for f in report.files if f.status == "accepted"}) > max_days]


def lay_out_silver(spark: SparkSession, settings: Settings, tables: Sequence[str]) -> list[str]:
    """After a first load or a backfill of many days, silver is laid out by landing day again (a day's rows in a
    few files), so later reads by date skip the rest; a daily run's new files need nothing
    (`lake.cluster_by_date`). Returns the tables rewritten."""
    laid_out = []
    for name in tables:
        if table_exists(spark, settings, name):
            with _step(name, "layout by dt"):
                if cluster_by_date(spark, settings, name):
                    laid_out.append(name)
    return laid_out


def _not_read(settings: Settings, run_date: dt.date, landing: str | None) -> list[str]:
    """Landing paths no source reads, relative to the landing folder: files in a source's dt folders (up to the
    run date) whose names match no pattern (`p1.txt`, `p1.csv.zip`, a checksum beside the file), files beside the
    dt folders, folders of undeclared sources. They are reported, not guessed at: a misnamed delivery is seen,
    and a sidecar file is not taken for a rejected delivery."""
    if landing is None:   # an object-store landing: listed by the sources' own discovery only
        return []
    root = Path(landing)
    strays = [str(Path(path).relative_to(root))
              for source, conf in settings.sources.items()
              for path, _ in readers.stray_files(settings.landing_path(source), conf.pattern, run_date.isoformat())]
    return sorted(readers.misplaced(landing, list(settings.sources)) + strays)


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    """Ingest every not-yet-ingested landing file with dt <= run_date; returns the per-source summary.
    A local landing folder that does not exist is an error (a mistyped path must not look like a quiet day)."""
    landing = local_folder(settings.landing_dir)
    if landing is not None and not os.path.isdir(landing):
        raise ConfigError(f"landing folder {landing} does not exist (--landing, or landing_dir of the profile)")
    ingested_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    run_id = f"ingest-{run_date.isoformat()}-{ingested_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    ctx = _RunContext(run_id, ingested_at, load_secret(settings), _stage_dir(settings, run_id))
    _remove_stale_staging(settings, run_id)
    known = ledger_mod.known_contents(spark, settings)
    unread = _not_read(settings, run_date, landing)
    if unread:
        log.warning("landing folder: %d path(s) no source reads (a source reads <source>/dt=YYYY-MM-DD/ files "
                    "matching its pattern; docs/landing-contract.md): %s", len(unread), ", ".join(unread[:20]))
    reports: dict[str, SourceReport] = {}
    try:
        for source in settings.sources:
            reports[source] = ingest_source(spark, settings, source, run_date, ctx, known)
            log.info("%s: %s", source, reports[source].totals())
        # per run, in this order: the ledger last, so a crash before it re-ingests (idempotently) next time
        if ctx.rejected:
            merge_table(spark, quarantine_mod.quarantined_files(spark, ctx.rejected, run_id, ingested_at), settings,
                        "quarantine_files", keys=["source", "content_hash"])
        if ctx.pii_parts:
            with _step("all", "pii_values merge"):
                pii = reduce(lambda a, b: a.unionByName(b), ctx.pii_parts).dropDuplicates(["kind", "value_hash"])
                merge_table(spark, pii, settings, "pii_values", keys=["kind", "value_hash"], update=False)
        files = [f for r in reports.values() for f in r.files]
        if files:
            with _step("all", "ledger merge"):
                merge_table(spark, ledger_mod.ledger_frame(spark, files, run_id, ingested_at), settings,
                            "ingest_file_ledger", keys=["source", "content_hash"])
        laid_out = lay_out_silver(spark, settings, layout_candidates(reports))
    finally:
        for df in ctx.cached:
            df.unpersist()
        shutil.rmtree(ctx.stage_dir, ignore_errors=True)
    summary_rows = [(run_id, run_date, source, r.totals()["files"], r.totals()["rows_landed"],
                     r.totals()["rows_accepted"], r.totals()["rows_quarantined"], r.totals()["is_balanced"])
                    for source, r in reports.items()]
    append_table(ledger_mod.summary_frame(spark, summary_rows), settings, "ingest_run_summary")
    _create_if_absent(spark, settings, {"quarantine_rows": quarantine_mod.QUARANTINE_ROWS_SCHEMA,
                                        "quarantine_files": quarantine_mod.QUARANTINE_FILES_SCHEMA,
                                        "ingest_file_ledger": ledger_mod.LEDGER_SCHEMA})
    sources = {source: r.as_dict() for source, r in reports.items()}
    return {"run_id": run_id, "run_date": run_date.isoformat(),
            "is_balanced": all(s["is_balanced"] for s in sources.values()), "sources": sources,
            "laid_out_by_date": laid_out, "not_read": unread}


def main(argv: Sequence[str] | None = None) -> int:
    return job_main(run, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
