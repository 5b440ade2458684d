"""Job `tags`: the per-one_id base table and the declared tags for one run date.

Reads gold_profiles, gold_order_facts, gold_lifecycle, gold_rfm (helper "profiles"), gold_model_scores (models;
optional), silver_wecom_contacts (guide tags), silver_catalog/silver_stores (product brand, store city),
manual lists declared in conf/tags, and gold_segment_members + silver_miniprogram_events for campaign feedback.
Writes:
- gold_segment_base: one row per one_id (whole-table overwrite) — what segment previews scan;
- gold_tags_long: the `computed_date = run_date` partition (replaceWhere);
- gold_tags_wide: one row per one_id, one column per tag (whole-table overwrite);
- gold_tag_history: the `changed_date = run_date` slice: enter/leave/value against the previous long snapshot.
Then partitions older than the declared retention (conf/tags.yaml `retention_days`) are deleted.
Running a date twice leaves the lake as after one run.

    spark-submit jobs/build_tags.py --date 2026-11-27
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from cdp.errors import ConfigError
from cdp.lake import overwrite_table, read_table, table_exists
from cdp.tags.retention import TAG_TABLES, apply_retention

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings
    from cdp.tags.engine import TagDef

log = logging.getLogger(__name__)


def _read_or_empty(spark: SparkSession, settings: Settings, name: str, ddl: str) -> DataFrame:
    if table_exists(spark, settings, name):
        return read_table(spark, settings, name)
    log.warning("%s does not exist yet: read as empty", name)
    return spark.createDataFrame([], ddl)


def _write_slice(df: DataFrame, spark: SparkSession, settings: Settings, name: str, column: str,
                 run_date: dt.date) -> None:
    exists = table_exists(spark, settings, name)
    overwrite_table(df, settings, name, partition_by=(column,),
                    replace_where=f"{column} = '{run_date.isoformat()}'" if exists else None)


def manual_path(settings: Settings, tag: TagDef) -> Path:
    assert tag.manual is not None
    path = Path(tag.manual.path)
    return path if path.is_absolute() else Path(settings.landing_dir) / path


def read_manual_lists(spark: SparkSession, settings: Settings, tags: Sequence[TagDef]) -> list[tuple[TagDef, DataFrame]]:
    """Each manual tag's uploaded CSV (header row; the id column named by `column` or `id_type`) as one `id` column."""
    from pyspark.sql import functions as F

    lists = []
    for tag in tags:
        if tag.kind != "manual" or tag.manual is None:
            continue
        path = manual_path(settings, tag)
        if not path.exists() and not tag.manual.required:
            log.warning("tag %s: manual list %s not uploaded yet: the tag is empty", tag.name, path)
            continue
        if not path.exists():
            raise ConfigError(f"{tag.source}: tag {tag.name!r}: manual.path: {path} not found. Fix: upload the list "
                              "there (CSV with a header row) or correct the path (relative to the landing folder)")
        column = tag.manual.column or tag.manual.id_type
        df = spark.read.option("header", "true").option("encoding", "UTF-8").csv(str(path))
        columns = [c.lstrip("\ufeff") for c in df.columns]
        df = df.toDF(*columns)
        if column not in columns:
            raise ConfigError(f"{tag.source}: tag {tag.name!r}: manual.column: {path} has no column {column!r} "
                              f"(columns: {columns}). Fix: set `column:` to the id column's header")
        lists.append((tag, df.select(F.col(column).cast("string").alias("id"))))
    return lists


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from cdp.tags import engine as E
    from cdp.tags.segments import clear_cache, load_segments, tag_catalog

    catalog = tag_catalog(settings)
    campaigns = [s.campaign for s in load_segments(settings) if s.campaign]
    feedback = []
    for c in campaigns:
        if c.feedback_tag in catalog.names:
            raise ConfigError(f"segment {c.segment!r}: campaign.feedback_tag {c.feedback_tag!r} is also a declared "
                              "tag in conf/tags. Fix: give the feedback tag its own name")
        feedback.append(E.TagDef(name=c.feedback_tag, kind="campaign", source=f"segment {c.segment}",
                                 description=f"redeemed a coupon after the {c.segment} campaign"))
    tags = catalog.with_tags(feedback)

    profiles = read_table(spark, settings, "gold_profiles")
    facts = read_table(spark, settings, "gold_order_facts")
    lifecycle = _read_or_empty(spark, settings, "gold_lifecycle", E.LIFECYCLE_SCHEMA)
    rfm = _read_or_empty(spark, settings, "gold_rfm", E.RFM_SCHEMA)
    scores = _read_or_empty(spark, settings, "gold_model_scores", E.MODEL_SCORES_SCHEMA)
    contacts = _read_or_empty(spark, settings, "silver_wecom_contacts", E.WECOM_CONTACTS_SCHEMA)
    products = _read_or_empty(spark, settings, "silver_catalog", E.CATALOG_SCHEMA)
    stores = _read_or_empty(spark, settings, "silver_stores", E.STORES_SCHEMA)

    list_parts = []
    card_map = profiles.select("one_id", F.explode("memberships").alias("m")).select(
        "one_id", F.col("m.member_card_no").alias("member_card_no"))
    manual = E.manual_list_tags(read_manual_lists(spark, settings, tags.tags), card_map)
    if manual is not None:
        list_parts.append(manual)
    if campaigns and table_exists(spark, settings, "gold_segment_members"):
        events = _read_or_empty(spark, settings, "silver_miniprogram_events",
                                "event_id string, event_type string, event_at timestamp, coupon_id string, "
                                "one_id string")
        fed = E.campaign_feedback_tags(campaigns, read_table(spark, settings, "gold_segment_members"), events,
                                       run_date, settings.timezone)
        if fed is not None:
            list_parts.append(fed)
    list_tags = spark.createDataFrame([], E.LIST_TAGS_SCHEMA)
    for part in list_parts:
        list_tags = list_tags.unionByName(part)

    base = E.build_base(profiles, facts, lifecycle, rfm, scores, contacts, products, stores, list_tags, run_date)
    overwrite_table(E.with_tag_map(base, tags, run_date), settings, "gold_segment_base")
    clear_cache()  # previews in this process must see the new base at once
    base = read_table(spark, settings, "gold_segment_base")

    if table_exists(spark, settings, "gold_tags_long"):
        previous = E.latest_snapshot(read_table(spark, settings, "gold_tags_long").filter(
            F.col("computed_date") < F.lit(run_date)), "computed_date", run_date)
    else:
        previous = spark.createDataFrame([], "one_id string, tag string, value string, computed_date date")
    changes = E.tag_changes(previous, E.tags_long(base, run_date), run_date)
    # history first (it reads the previous snapshot), then today's long partition, then the wide table
    _write_slice(changes, spark, settings, "gold_tag_history", "changed_date", run_date)
    _write_slice(E.tags_long(base, run_date), spark, settings, "gold_tags_long", "computed_date", run_date)
    overwrite_table(E.tags_wide(base, tags, run_date), settings, "gold_tags_wide")
    # last: the partitions just written (the next run's previous snapshot) are never older than the retention
    retention = apply_retention(spark, settings, run_date, TAG_TABLES)

    long_today = read_table(spark, settings, "gold_tags_long").filter(F.col("computed_date") == F.lit(run_date))
    sizes = {r["tag"]: int(r["count"]) for r in long_today.groupBy("tag").count().collect()}
    history = read_table(spark, settings, "gold_tag_history").filter(F.col("changed_date") == F.lit(run_date))
    moved = {r["change"]: int(r["count"]) for r in history.groupBy("change").count().collect()}
    summary = {"run_date": run_date.isoformat(), "profiles": base.count(), "tags": len(tags.tags),
               "tag_sizes": {t.name: sizes.get(t.name, 0) for t in tags.tags}, "changes": moved,
               "retention_kept_from": retention}
    log.info("tags for %s: %d tags, changes %s", run_date, len(tags.tags), moved)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description=__doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
