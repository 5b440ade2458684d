"""Lake maintenance: compact small files, then remove files no version within the retention period needs.

A lake fed daily grows by small files: every ingestion MERGE and every identity run appends a few files to each
table it writes (the identity stage's state tables only ever append or delete-and-append), and marks replaced
rows with deletion vectors instead of rewriting files. Reads slow down with the number of files, and every
overwritten table (`identity_nodes`, `identity_edges`, the gold tables) keeps its old files for time travel until
a VACUUM removes them: at 1M customers the daily overwrite of nodes and edges alone is about 0.2 GB a day.

`maintain(spark, settings)` does, per Delta table of conf/tables.yaml:
1. **Compaction**: Delta `OPTIMIZE` (bin-packing), rewriting only files smaller than `small_file_bytes` and files
   with more than 5% of their rows deleted (Delta's `optimize.maxDeletedRowsRatio`) into files of up to 128 MB.
   OPTIMIZE changes no row and writes no change-data rows; a table with nothing to compact gets no commit. For
   the silver tables kept laid out by `dt` (docs/tables.md "Layout") it then checks the layout again
   (`lake.cluster_by_date`): only when the compaction made a one-day read more than 4 times what it needs is the
   table laid out again.
2. **VACUUM** with `retain_hours` (default 168, Delta's own default): data files and change-data files that no
   version of the last `retain_hours` references are deleted. Time travel (and the identity stage's reading of
   the version its last run left) works within that window only; with the default a daily pipeline never reads
   further back.

It runs under the lake lock (cdp.locking), so never while a pipeline stage writes. A kill at any point leaves
every table readable: OPTIMIZE commits atomically, and VACUUM only deletes files no current version uses.
The identity stage treats these commits as no change (`identity_state.MAINTENANCE_OPERATIONS`): the daily run
after a maintenance run stays incremental.

    cdp maintain --lake DIR [--retain-hours 168] [--tables silver_pos_lines,identity_nodes]

Airflow: `dags/cdp_maintenance_weekly.py`. Summary: one entry per table (files and bytes before/after, files
compacted, files vacuumed, whether the date layout was redone).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

DEFAULT_RETAIN_HOURS = 168.0          # Delta's default (delta.deletedFileRetentionDuration = 7 days)
DEFAULT_SMALL_FILE_BYTES = 32 * 1024 * 1024
# tables maintenance leaves alone: the ingest job's scratch space is not a Delta table it keeps
SKIPPED = ("ingest_staging",)


def table_files(spark: SparkSession, path: str) -> tuple[int, int]:
    """(number of data files, bytes) of the table's current version."""
    from delta.tables import DeltaTable

    d = DeltaTable.forPath(spark, path).detail().select("numFiles", "sizeInBytes").first()
    return int(d.numFiles or 0), int(d.sizeInBytes or 0)


def compact(spark: SparkSession, path: str, small_file_bytes: int, target_bytes: int) -> int:
    """OPTIMIZE the table at `path`: files below `small_file_bytes` (and files with many deleted rows) are
    bin-packed into files of up to `target_bytes`. Returns the number of files it removed (0: no commit)."""
    from delta.tables import DeltaTable

    from cdp.lake import spark_conf

    with spark_conf(spark, {"spark.databricks.delta.optimize.minFileSize": str(small_file_bytes),
                            "spark.databricks.delta.optimize.maxFileSize": str(target_bytes)}):
        metrics = DeltaTable.forPath(spark, path).optimize().executeCompaction().select("metrics.numFilesRemoved")
        return int(sum(r[0] or 0 for r in metrics.collect()))


def vacuum(spark: SparkSession, path: str, retain_hours: float) -> int | None:
    """VACUUM the table at `path` keeping what the versions of the last `retain_hours` need. Returns the number
    of files deleted as Delta's VACUUM END commit reports it (None when Delta logged no such commit)."""
    from delta.tables import DeltaTable

    from cdp.lake import spark_conf

    conf = {} if retain_hours >= DEFAULT_RETAIN_HOURS else {
        "spark.databricks.delta.retentionDurationCheck.enabled": "false"}
    table = DeltaTable.forPath(spark, path)
    system = spark._jvm.java.lang.System
    stdout = system.out
    system.setOut(system.err)   # Delta prints "Deleted N files ..." to stdout, where the CLI writes its JSON
    try:
        with spark_conf(spark, conf):
            table.vacuum(retain_hours)
    finally:
        system.setOut(stdout)
    last = table.history(1).select("operation", "operationMetrics").first()
    if last is None or last.operation != "VACUUM END":
        return None
    return int((last.operationMetrics or {}).get("numDeletedFiles", 0))


def maintain(spark: SparkSession, settings: Settings, retain_hours: float = DEFAULT_RETAIN_HOURS,
             small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES, tables: Sequence[str] | None = None) -> dict[str, Any]:
    """Compact and vacuum the lake's Delta tables (all of conf/tables.yaml, or `tables`). Not locked: callers
    hold the lake lock (`run`, the CLI)."""
    from delta.tables import DeltaTable

    from cdp.lake import CLUSTER_FILE_BYTES, cluster_by_date

    if retain_hours < 0:
        raise ValueError(f"retain_hours must be >= 0, got {retain_hours}")
    names = list(tables) if tables else [n for n in settings.tables if n not in SKIPPED]
    unknown = [n for n in names if n not in settings.tables]
    if unknown:
        from cdp.errors import CdpError

        raise CdpError(f"unknown table(s) {', '.join(unknown)}; `cdp tables` lists them")
    started = time.monotonic()
    report: dict[str, Any] = {}
    for name in names:
        path = settings.table_path(name)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        t0 = time.monotonic()
        files_before, bytes_before = table_files(spark, path)
        compacted = compact(spark, path, small_file_bytes, CLUSTER_FILE_BYTES)
        laid_out = bool(cluster_by_date(spark, settings, name)) if compacted and name.startswith("silver_") else False
        vacuumed = vacuum(spark, path, retain_hours)
        files_after, bytes_after = table_files(spark, path)
        report[name] = {"files_before": files_before, "files_after": files_after, "bytes_before": bytes_before,
                        "bytes_after": bytes_after, "files_compacted": compacted, "laid_out_by_date": laid_out,
                        "files_vacuumed": vacuumed, "seconds": round(time.monotonic() - t0, 1)}
        log.info("maintain %s: %d -> %d files (%d compacted), %s vacuumed, %.1f s", name, files_before,
                 files_after, compacted, "?" if vacuumed is None else vacuumed, time.monotonic() - t0)
    return {"retain_hours": retain_hours, "tables": report, "tables_maintained": len(report),
            "files_compacted": sum(r["files_compacted"] for r in report.values()),
            "files_vacuumed": sum(r["files_vacuumed"] or 0 for r in report.values()),
            "seconds": round(time.monotonic() - started, 1)}


def run(spark: SparkSession, settings: Settings, run_date: dt.date | None = None,
        retain_hours: float = DEFAULT_RETAIN_HOURS, tables: Sequence[str] | None = None) -> dict[str, Any]:
    """Job entry (`cdp.pipeline.run_job("cdp.maintain", ...)`, which holds the lake lock). The run date is not
    used: maintenance looks at the tables as they are."""
    return maintain(spark, settings, retain_hours=retain_hours, tables=tables)


def _maintain_command(args: argparse.Namespace) -> int:
    from cdp.entry import open_spark, settings_from_args
    from cdp.locking import lake_lock

    settings = settings_from_args(args)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    spark = open_spark(settings)
    with lake_lock(settings.lake_dir):
        summary = maintain(spark, settings, retain_hours=args.retain_hours, tables=tables)
    print(json.dumps(summary, indent=2))
    return 0


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("maintain", parents=[common],
                              help="compact small files and vacuum old ones in every Delta table (weekly)")
    p.add_argument("--retain-hours", type=float, default=DEFAULT_RETAIN_HOURS,
                   help="keep the files the versions of the last N hours need (default 168, Delta's default)")
    p.add_argument("--tables", help="comma-separated logical table names (default: every table)")
    p.set_defaults(func=_maintain_command)
