"""Benchmark of tags and segments: tag computation (base table + all declared tags) and segment preview at
100k and 1M profiles, with peak memory (driver + JVM).

The gold input tables (gold_profiles, gold_order_facts, gold_lifecycle, gold_rfm, gold_model_scores,
silver_wecom_contacts, catalog, stores) are generated directly with Spark built-ins (seeded), so this does not
depend on the ingestion and identity stages. Then, in one Spark session:

1. `tags build` (jobs/build_tags.py: base table + 16 shipped tags -> long, wide, history);
2. preview cold (read gold_segment_base, cache it, first preview) and warm (each shipped segment plus an ad-hoc
   AND/OR/NOT definition, 3 runs each, the median reported), as the console does in its long-lived session;
3. `segment run` (all shipped segments -> gold_segment_members).

    python -m benchmarks.bench_segments --profiles 100000 1000000 [--lines-per-profile 6] [--append-docs]
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
from pathlib import Path

from benchmarks.harness import Measurement, bench_settings, measure, size_label, write_report

RUN_DATE = dt.date(2026, 6, 30)
SKUS = [  # (sku, category, product brand): a slice of the generator's catalog
    ("S10101", "榴莲", "泰国进口"), ("S10102", "榴莲", "马来西亚进口"), ("S10104", "榴莲", "熊猫大鲜"),
    ("S20101", "葡萄", "自营"), ("S20102", "葡萄", "自营"), ("S20104", "葡萄", "熊猫大鲜"),
    ("S30101", "樱桃", "智利进口"), ("S40101", "芒果", "自营"), ("S50101", "柑橘", "自营"), ("S50102", "柑橘", "自营"),
    ("S60101", "苹果", "自营"), ("S60102", "苹果", "自营"), ("S70101", "猕猴桃", "佳沛"), ("S80101", "莓果", "自营"),
    ("S80103", "莓果", "熊猫大鲜"), ("S90101", "香蕉", "都乐"), ("S90201", "瓜类", "自营"), ("S90301", "果切", "自营"),
]
STAGES = ["prospect", "member_no_purchase", "new", "active", "loyal", "dormant", "churned", "reactivated"]
RFM = ["Champions", "Loyal", "Potential Loyalists", "New", "Promising", "Need Attention", "At Risk",
       "Can't Lose Them", "Hibernating", "Lost"]
CITIES = ["上海", "杭州", "南京", "苏州", "深圳", "广州", "北京", "成都", "武汉", "西安"]
GUIDE_TAGS = [("偏好", "爱吃榴莲"), ("偏好", "葡萄控"), ("偏好", "高端礼盒"), ("客户等级", "重要客户"),
              ("客户等级", "普通客户"), ("家庭", "有孩子")]
ADHOC = {"name": "adhoc", "where": {"all": [
    {"any": [{"bought": {"category": "榴莲", "within_days": 90}}, {"tag": "guide_durian_fan"}]},
    {"not": {"model": {"name": "churn", "grade": "high"}}},
    {"lifecycle": ["active", "loyal", "reactivated"]},
    {"attribute": {"name": "has_marketing_consent", "eq": True}}]}}


def synthetic_gold(spark, profiles: int, lines_per_profile: int, seed: int = 7) -> dict:
    """Seeded synthetic gold/silver inputs in the contract schemas; ~`lines_per_profile` fact lines per profile."""
    from pyspark.sql import functions as F

    from cdp.tags import engine as E

    def pick(values: list[str], r):
        return F.element_at(F.array(*[F.lit(v) for v in values]), (r * len(values)).cast("int") + 1)

    ids = spark.range(profiles).withColumn("one_id", F.format_string("O%09d", "id"))
    r = lambda k: F.rand(seed + k)  # noqa: E731
    p = ids.select(
        "id", "one_id", (r(1) < 0.7).alias("is_member"), (r(2) < 0.1).alias("paid"), (r(3) < 0.6).alias("consent"),
        (r(4) < 0.4).alias("has_app"), (r(5) < 0.3).alias("is_wecom_added"),
        F.format_string("ST%03d", (r(6) * 200).cast("int")).alias("home_store_id"), pick(CITIES, r(7)).alias("city"),
        (r(8) * 7).cast("int").alias("ch"))
    membership = F.struct(F.lit("main").alias("brand_id"), F.concat(F.lit("C"), "one_id").alias("member_card_no"),
                          F.lit("普通会员").alias("level"), F.col("paid").alias("is_paid_member"),
                          F.col("consent").alias("marketing_consent"),
                          F.lit(dt.datetime(2025, 1, 1)).alias("registered_at"))
    channels = F.filter(F.array(
        F.when(F.col("ch").bitwiseAND(1) > 0, F.lit("pos")), F.when(F.col("ch").bitwiseAND(2) > 0, F.lit("miniprogram")),
        F.when(F.col("ch").bitwiseAND(4) > 0, F.lit("ecommerce"))), lambda c: c.isNotNull())
    profile_cols = {
        "one_id": F.col("one_id"),
        "memberships": F.when(F.col("is_member"), F.array(membership)).otherwise(F.array().cast(
            "array<struct<brand_id:string,member_card_no:string,level:string,is_paid_member:boolean,"
            "marketing_consent:boolean,registered_at:timestamp>>")),
        "is_member": F.col("is_member"), "is_paid_member": F.col("is_member") & F.col("paid"),
        "has_marketing_consent": F.col("is_member") & F.col("consent"), "has_app": F.col("has_app"),
        "home_store_id": F.col("home_store_id"), "home_city": F.col("city"), "city": F.col("city"),
        "is_wecom_added": F.col("is_wecom_added"), "channels": channels,
        "name_masked": F.lit("张*"), "gender": pick(["M", "F", "U"], r(9)),
        "wecom_guide_userids": F.when(F.col("is_wecom_added"), F.array(F.lit("g1"))).otherwise(F.array().cast("array<string>")),
        "order_count": (r(10) * 20).cast("int"), "as_of_date": F.lit(RUN_DATE)}
    gold_profiles = p.select(*[profile_cols.get(name, F.lit(None)).cast(kind).alias(name)
                               for name, kind in (part.strip().split(" ", 1) for part in E.PROFILES_SCHEMA.split(", "))])

    skus = spark.createDataFrame([(i, s, c, b) for i, (s, c, b) in enumerate(SKUS)], "i int, sku_id string, category string, brand string")
    lines = (ids.select("one_id", F.explode(F.sequence(F.lit(1), (F.rand(seed + 11) * 2 * lines_per_profile).cast("int")
                                                      + 1)).alias("line"))
             .filter(F.col("line") > 1)
             .withColumn("order_no", (F.col("line") / 2).cast("int"))
             .withColumn("i", (F.rand(seed + 12) * len(SKUS)).cast("int"))
             .withColumn("paid_date", F.date_sub(F.lit(RUN_DATE), (F.rand(seed + 13) * 365).cast("int")))
             .join(F.broadcast(skus), "i"))
    channel = pick(["pos", "pos", "miniprogram", "ecommerce"], F.rand(seed + 14))
    facts = lines.select(
        "one_id", channel.alias("channel"), F.lit(None).cast("string").alias("platform"), F.lit("main").alias("brand_id"),
        F.format_string("ST%03d", (F.rand(seed + 15) * 200).cast("int")).alias("store_id"),
        F.concat_ws("-", "one_id", "order_no").alias("order_id"), F.concat_ws("-", "one_id", "order_no").alias("source_record_id"),
        F.col("sku_id").alias("line_key"), F.to_timestamp(F.col("paid_date")).alias("paid_at"), "paid_date", "sku_id",
        F.col("sku_id").alias("sku_name"), "category", F.lit(1).cast("decimal(12,3)").alias("quantity"),
        (F.rand(seed + 16) * 100 + 5).cast("decimal(18,2)").alias("amount"), (F.rand(seed + 17) < 0.02).alias("is_return"))
    lifecycle = ids.select("one_id", F.lit(RUN_DATE).alias("as_of_date"), pick(STAGES, F.rand(seed + 20)).alias("stage"),
                           F.lit(RUN_DATE).alias("stage_since"))
    rfm = ids.filter(F.rand(seed + 21) < 0.6).select(
        "one_id", F.lit(RUN_DATE).alias("as_of_date"), F.lit(365).alias("window_days"),
        (F.rand(seed + 22) * 365).cast("int").alias("recency_days"), (F.rand(seed + 23) * 20).cast("int").alias("frequency"),
        (F.rand(seed + 24) * 3000).cast("decimal(18,2)").alias("monetary"), *[
            (F.rand(seed + 25 + i) * 5 + 1).cast("int").alias(c) for i, c in enumerate(["r_score", "f_score", "m_score", "fm_score"])],
        pick(RFM, F.rand(seed + 30)).alias("rfm_segment"))
    scores = ids.select("one_id", F.explode(F.array(F.lit("churn"), F.lit("repurchase"))).alias("model")).select(
        "one_id", "model", F.rand(seed + 31).alias("score")).select(
        "one_id", "model", "score", F.when(F.col("score") > 0.7, "high").when(F.col("score") > 0.3, "medium")
        .otherwise("low").alias("grade"), F.lit("v1").alias("model_version"), F.lit(RUN_DATE).alias("scored_date"))
    tag_structs = F.array(*[F.struct(F.lit(g).alias("group_name"), F.lit(t).alias("tag_name")) for g, t in GUIDE_TAGS])
    contacts = gold_profiles.filter("is_wecom_added").select(
        F.concat(F.lit("wm"), "one_id").alias("external_userid"), F.lit("g1").alias("guide_userid"),
        F.col("home_store_id").alias("store_id"), "one_id", F.lit(True).alias("is_active"),
        F.filter(tag_structs, lambda t: F.rand(seed + 40) < 0.3).alias("tags"))
    catalog = spark.createDataFrame([(s, s, c, b, None) for s, c, b in SKUS], E.CATALOG_SCHEMA)
    stores = spark.range(200).select(F.format_string("ST%03d", "id").alias("store_id"), F.lit("store").alias("store_name"),
                                     pick(CITIES, F.rand(seed + 50)).alias("city"), F.lit("east").alias("region"))
    return {"gold_profiles": gold_profiles, "gold_order_facts": facts, "gold_lifecycle": lifecycle, "gold_rfm": rfm,
            "gold_model_scores": scores, "silver_wecom_contacts": contacts, "silver_catalog": catalog,
            "silver_stores": stores}


def bench(spark, settings, profiles: int, lines_per_profile: int) -> list[Measurement]:
    from cdp.build_tags import run as build_tags
    from cdp.lake import overwrite_table, read_table
    from cdp.tags.segments import clear_cache, load_base, load_segments, preview, run_segments

    results = []
    label = size_label(profiles)
    with measure(f"{label}: write synthetic gold inputs") as m:
        for name, df in synthetic_gold(spark, profiles, lines_per_profile).items():
            overwrite_table(df, settings, name)
    m.rows = read_table(spark, settings, "gold_order_facts").count()
    m.extra["fact_lines"] = m.rows
    results.append(m)
    with measure(f"{label}: tags build (base + 16 tags: long, wide, history)", rows=profiles) as m:
        summary = build_tags(spark, settings, RUN_DATE)
    m.extra["tags"] = summary["tags"]
    results.append(m)
    clear_cache()
    segments = load_segments(settings)
    with measure(f"{label}: preview cold (read + cache base, first preview)", rows=profiles) as m:
        load_base(spark, settings)
        preview(spark, settings, segments[0])
    results.append(m)
    for definition in [*segments, ADHOC]:
        name = definition.name if hasattr(definition, "name") else definition["name"]
        times, peak = [], 0.0
        count = 0
        for _ in range(3):
            with measure(name) as one:
                count = preview(spark, settings, definition).count
            times.append(one.wall_s)
            peak = max(peak, one.peak_rss_mb)
        warm = Measurement(f"{label}: preview warm `{name}` (median of 3; {count:,} members)",
                           wall_s=statistics.median(times), peak_rss_mb=peak, rows=profiles)
        results.append(warm)
    with measure(f"{label}: segment run ({len(segments)} segments)", rows=profiles) as m:
        run_segments(spark, settings, RUN_DATE)
    results.append(m)
    clear_cache()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--lines-per-profile", type=int, default=6)
    parser.add_argument("--work", default="data/bench/segments")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--keep", action="store_true", help="keep the generated lake")
    args = parser.parse_args(argv)

    from cdp.config import load_settings
    from cdp.spark import build_spark

    settings0 = load_settings()
    spark = build_spark(settings0.spark, extra_conf={"spark.driver.memory": args.driver_memory,
                                                     "spark.sql.shuffle.partitions": "8",
                                                     "spark.databricks.delta.snapshotPartitions": "2",
                                                     "spark.ui.enabled": "false"})
    results: list[Measurement] = []
    for n in args.profiles:
        lake = Path(args.work) / f"p{n}"
        shutil.rmtree(lake, ignore_errors=True)
        settings = bench_settings(lake / "lake", lake / "landing", profile=None)
        results.extend(bench(spark, settings, n, args.lines_per_profile))
        print(write_report("Tags and segments", results))
        if not args.keep:
            shutil.rmtree(lake, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
