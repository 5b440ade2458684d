"""Job `profiles`: gold_order_facts, gold_profiles, gold_rfm, gold_lifecycle(+_transitions) for one run date.

Reads silver (with `one_id` filled by the identity stage) and identity_record_map; writes:
- gold_order_facts, gold_profiles: current state, whole-table overwrite;
- gold_rfm, gold_lifecycle: the `as_of_date = run_date` partition (replaceWhere);
- gold_lifecycle_transitions: the `changed_date = run_date` slice (replaceWhere).
So running a date twice leaves the lake as after one run.

    spark-submit jobs/build_profiles.py --date 2026-11-27
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import TYPE_CHECKING, Any, Sequence

from cdp.errors import CdpError
from cdp.lake import overwrite_table, read_table, table_exists

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)


class ContractViolation(CdpError):
    """A gold table broke its key contract (duplicate or null keys) right after being built."""


def _silver(spark: SparkSession, settings: Settings, name: str) -> DataFrame:
    """The contract columns of a silver table; an empty frame of that schema when the table does not exist yet."""
    from cdp.tags.facts import SILVER_COLUMNS, conform

    ddl = SILVER_COLUMNS[name]
    if not table_exists(spark, settings, name):
        log.warning("%s does not exist yet: read as empty", name)
        return spark.createDataFrame([], ddl)
    return conform(read_table(spark, settings, name), ddl)


def _check_keys(df: DataFrame, table: str, keys: Sequence[str], nullable: Sequence[str] = ()) -> None:
    """Data contract after a write: keys unique and (except `nullable` ones) not null, in one aggregation job."""
    from pyspark.sql import functions as F

    any_null = F.lit(False)
    for key in (k for k in keys if k not in nullable):
        any_null = any_null | F.col(key).isNull()
    per_key = df.groupBy(*keys).agg(F.count("*").alias("n"), F.max(any_null.cast("int")).alias("null_key"))
    row = per_key.agg(F.max("n").alias("max_n"), F.max("null_key").alias("null_key")).first()
    if row is not None and ((row["max_n"] or 0) > 1 or (row["null_key"] or 0) > 0):
        raise ContractViolation(f"{table}: keys {list(keys)} must be unique and not null "
                                f"(duplicates: {(row['max_n'] or 0) > 1}, null keys: {(row['null_key'] or 0) > 0})")


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from cdp.tags.facts import build_order_facts, count_anonymous_lines, order_lines
    from cdp.tags.lifecycle import LIFECYCLE_SCHEMA, build_lifecycle, latest_stages, stage_transitions
    from cdp.tags.profile_rules import load_lifecycle_rules, load_rfm_rules, load_survivorship_rules
    from cdp.tags.profiles import build_profiles
    from cdp.tags.rfm import build_rfm

    survivorship = load_survivorship_rules(settings.conf_path("survivorship.yaml"))
    rfm_rules = load_rfm_rules(settings.conf_path("rfm.yaml"))
    lifecycle_rules = load_lifecycle_rules(settings.conf_path("lifecycle.yaml"))
    silver = {name: _silver(spark, settings, name) for name in (
        "silver_pos_lines", "silver_miniprogram_events", "silver_wecom_contacts", "silver_ecommerce_lines",
        "silver_crm_members", "silver_catalog", "silver_stores")}
    pos, mini, wecom = silver["silver_pos_lines"], silver["silver_miniprogram_events"], silver["silver_wecom_contacts"]
    ecom, crm = silver["silver_ecommerce_lines"], silver["silver_crm_members"]

    # 1. facts (current state: identity may have re-assigned one_ids of old records)
    lines = order_lines(pos, mini, ecom, silver["silver_catalog"], settings.timezone)
    anonymous = {r["channel"]: int(r["anonymous_lines"]) for r in count_anonymous_lines(lines).collect()}
    overwrite_table(build_order_facts(pos, mini, ecom, silver["silver_catalog"], settings.timezone),
                    settings, "gold_order_facts")
    facts = read_table(spark, settings, "gold_order_facts")
    _check_keys(facts, "gold_order_facts", ("channel", "brand_id", "source_record_id", "line_key"),
                nullable=("brand_id",))

    # 2. profiles: everyone the identity stage knows, plus anyone seen in silver
    if table_exists(spark, settings, "identity_record_map"):
        one_ids = read_table(spark, settings, "identity_record_map").select("one_id")
    else:
        one_ids = spark.createDataFrame([], "one_id string")
    overwrite_table(build_profiles(one_ids, pos, mini, wecom, ecom, crm, silver["silver_stores"], facts,
                                   survivorship, run_date), settings, "gold_profiles")
    profiles = read_table(spark, settings, "gold_profiles")
    _check_keys(profiles, "gold_profiles", ("one_id",))

    # 3. RFM partition of run_date
    day = f"as_of_date = '{run_date.isoformat()}'"
    overwrite_table(build_rfm(facts, rfm_rules, run_date), settings, "gold_rfm", partition_by=("as_of_date",),
                    replace_where=day)

    # 4. lifecycle: previous stages from the latest earlier run
    previous = spark.createDataFrame([], LIFECYCLE_SCHEMA)
    if table_exists(spark, settings, "gold_lifecycle"):
        history = read_table(spark, settings, "gold_lifecycle")
        previous_date = history.where(F.col("as_of_date") < F.lit(run_date)).agg(F.max("as_of_date")).first()[0]
        if previous_date is not None:
            previous = history.where(F.col("as_of_date") == F.lit(previous_date))
    previous = latest_stages(previous, run_date)
    stages, _ = build_lifecycle(profiles, facts, previous, lifecycle_rules, run_date)
    overwrite_table(stages, settings, "gold_lifecycle", partition_by=("as_of_date",), replace_where=day)
    written = read_table(spark, settings, "gold_lifecycle").where(F.col("as_of_date") == F.lit(run_date))
    overwrite_table(stage_transitions(written, previous), settings, "gold_lifecycle_transitions",
                    replace_where=f"changed_date = '{run_date.isoformat()}'")

    rfm = read_table(spark, settings, "gold_rfm").where(F.col("as_of_date") == F.lit(run_date))
    lifecycle = read_table(spark, settings, "gold_lifecycle").where(F.col("as_of_date") == F.lit(run_date))
    _check_keys(rfm, "gold_rfm", ("one_id",))
    _check_keys(lifecycle, "gold_lifecycle", ("one_id",))
    segments = {r["rfm_segment"]: r["count"] for r in rfm.groupBy("rfm_segment").count().collect()}
    stages_count = {r["stage"]: r["count"] for r in lifecycle.groupBy("stage").count().collect()}
    summary = {
        "run_date": run_date.isoformat(),
        "order_fact_lines": facts.count(),
        "anonymous_lines_excluded": {k: v for k, v in anonymous.items() if v},
        "profiles": profiles.count(),
        "rfm_purchasers": sum(segments.values()),
        "rfm_segments": segments,
        "lifecycle_stages": stages_count,
        "lifecycle_transitions": read_table(spark, settings, "gold_lifecycle_transitions")
        .where(F.col("changed_date") == F.lit(run_date)).count(),
    }
    log.info("profiles %s: %s profiles, %s RFM purchasers", run_date, summary["profiles"], summary["rfm_purchasers"])
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
