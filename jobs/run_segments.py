"""Job `segments`: materialise every segment of conf/segments into gold_segment_members for one run date.

One row per (segment, one_id, run_date); the run date's partition is replaced, so running twice equals running
once, and earlier dates stay as the history of who was in which segment. Needs gold_segment_base of the same
date (job `tags`, which runs first).

    spark-submit jobs/run_segments.py --date 2026-11-27
"""
from __future__ import annotations

import datetime as dt
import sys
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from cdp.tags.segments import run_segments

    return run_segments(spark, settings, run_date)


def main(argv: Sequence[str] | None = None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
