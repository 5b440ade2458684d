"""The file ledger (`ingest_file_ledger`, one row per landed file content) and the run summary.

The ledger is the memory of ingestion: a file whose `(source, content_hash)` is in it was fully processed
(bronze, quarantine, silver and pii_values written before its ledger row), so it is skipped, whatever its name
or dt folder. A crash before the ledger write means the file is processed again; every earlier write is keyed
(replace by content hash / MERGE on keys), so the re-run lands the same rows.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cdp.lake import read_table, table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings

LEDGER_SCHEMA = ("source string, file_path string, dt date, content_hash string, rows_landed long, "
                 "rows_accepted long, rows_quarantined long, status string, reason string, ingested_at timestamp, "
                 "run_id string")
SUMMARY_SCHEMA = ("run_id string, run_date date, source string, files int, rows_landed long, rows_accepted long, "
                  "rows_quarantined long, is_balanced boolean")


@dataclass(frozen=True)
class FileCount:
    source: str
    file_path: str
    dt: str
    content_hash: str
    rows_landed: int
    rows_accepted: int
    rows_quarantined: int
    status: str  # accepted | quarantined_file
    reason: str | None

    @property
    def is_balanced(self) -> bool:
        return self.rows_landed == self.rows_accepted + self.rows_quarantined


def known_contents(spark: SparkSession, settings: Settings) -> dict[tuple[str, str], str]:
    """`(source, content_hash) -> file_path` of every file already in the ledger (one small row per file)."""
    if not table_exists(spark, settings, "ingest_file_ledger"):
        return {}
    rows = read_table(spark, settings, "ingest_file_ledger").select("source", "content_hash", "file_path").collect()
    return {(r.source, r.content_hash): r.file_path for r in rows}


def ledger_frame(spark: SparkSession, counts: Sequence[FileCount], run_id: str, ingested_at: dt.datetime) -> DataFrame:
    rows = [(c.source, c.file_path, dt.date.fromisoformat(c.dt), c.content_hash, c.rows_landed, c.rows_accepted,
             c.rows_quarantined, c.status, c.reason, ingested_at, run_id) for c in counts]
    return spark.createDataFrame(rows, LEDGER_SCHEMA)


def summary_frame(spark: SparkSession, rows: Sequence[tuple]) -> DataFrame:
    return spark.createDataFrame(list(rows), SUMMARY_SCHEMA)
