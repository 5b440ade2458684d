"""Quarantine: rows GX rejected (`quarantine_rows`) and files that could not be read (`quarantine_files`).

Both tables are protected: `raw_record` holds the row as delivered, personal data included.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.ingestion.readers import FileRejection

QUARANTINE_ROWS_COLUMNS = ("source", "file_path", "dt", "content_hash", "source_line", "rule", "reason",
                           "raw_record", "quarantined_at", "run_id")
QUARANTINE_ROWS_SCHEMA = ("source string, file_path string, dt date, content_hash string, source_line int, rule string, "
                          "reason string, raw_record string, quarantined_at timestamp, run_id string")
QUARANTINE_FILES_SCHEMA = ("source string, file_path string, dt date, content_hash string, reason string, "
                           "quarantined_at timestamp, run_id string")


def flag_failures(typed: DataFrame, failures: DataFrame) -> DataFrame:
    """`typed` with `rule` / `rule_reasons` of its first failing rule (null for accepted rows)."""
    from pyspark.sql import functions as F

    renamed = failures.withColumnRenamed("rule", "_rule").withColumnRenamed("rule_reasons", "_rule_reasons")
    return typed.join(F.broadcast(renamed), ["content_hash", "source_line"], "left")


def quarantined_rows(flagged: DataFrame, run_id: str, quarantined_at: dt.datetime) -> DataFrame:
    """quarantine_rows of the flagged frame: the rule, every reason (plus the parse error), the raw record."""
    from pyspark.sql import functions as F

    reason = F.when(F.col("_parse_error").isNotNull(),
                    F.concat(F.col("_rule_reasons"), F.lit(" ("), F.col("_parse_error"), F.lit(")"))
                    ).otherwise(F.col("_rule_reasons"))
    return (flagged.where(F.col("_rule").isNotNull())
            .select(F.col("source"), F.col("source_file").alias("file_path"), F.col("dt"), F.col("content_hash"),
                    F.col("source_line"), F.col("_rule").alias("rule"), reason.alias("reason"),
                    F.col("_raw_record").alias("raw_record"), F.lit(quarantined_at).alias("quarantined_at"),
                    F.lit(run_id).alias("run_id")))


def accepted_rows(flagged: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return flagged.where(F.col("_rule").isNull())


def quarantined_files(spark: SparkSession, rejections: Sequence[FileRejection], run_id: str,
                      quarantined_at: dt.datetime) -> DataFrame:
    rows = [(r.landed.source, r.landed.relative_path, dt.date.fromisoformat(r.landed.dt), r.landed.content_hash,
             r.reason, quarantined_at, run_id) for r in rejections]
    return spark.createDataFrame(rows, QUARANTINE_FILES_SCHEMA)
