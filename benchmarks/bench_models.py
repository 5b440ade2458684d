"""Benchmark of the models at 100k and 1M customers: Spark compaction, feature building, training and scoring,
with peak memory (driver + JVM).

gold_order_facts is generated directly with Spark built-ins (seeded): each customer has a personal purchase
rhythm (mean gap 15-120 days) and an active period that ends at a random day (so some churn), 1-3 lines per
order over two years, 5 % return lines, four categories, three channels. Steps, in one Spark session (the local
profile's Spark settings):

1. compaction: gold_order_facts -> per customer-day and per customer-category numeric frames on the driver
   (int32 customer codes; the one_id map stays in Spark);
2. features as of the run date (pandas/numpy, includes the BG/NBD fit);
3. training: churn (H=90) on 4 stacked as-of dates (at most `training.max_rows_per_as_of` rows each),
   calibrated, registered (`cdp.train_models.train_task`);
4. scoring: the daily job (`cdp.score_models.run`: compaction, features, churn/repurchase/clv/winback,
   writes gold_model_scores and gold_replenishment). Repurchase is trained on the fly inside this step.

Each step records wall time, CPU seconds of the driver + JVM, peak RSS of both and the load average (the
harness); on a shared machine CPU seconds are the number to compare. For 1M customers give the JVM more room:
`CDP_SPARK_CONF=spark.driver.memory=8g`.

    python -m benchmarks.bench_models --customers 100000 1000000 [--append-docs]
"""
from __future__ import annotations

import argparse
import datetime as dt

from benchmarks.harness import (Measurement, bench_sizes, machine, measure, replace_docs_section, size_label,
                                tree_cpu_s, write_report)

HEADING = "## Models"
RUN_DATE = dt.date(2026, 6, 30)
FACTS_SCHEMA = ("one_id string, channel string, platform string, brand_id string, store_id string, order_id string, "
                "source_record_id string, line_key string, paid_at timestamp, paid_date date, sku_id string, "
                "sku_name string, category string, quantity decimal(12,3), amount decimal(18,2), is_return boolean")


def synthetic_facts(spark, customers: int, seed: int = 11):
    """Seeded gold_order_facts (contract columns) with per-customer rhythms; see the module docstring."""
    from pyspark.sql import functions as F

    c = (spark.range(customers).withColumn("one_id", F.format_string("M%09d", "id"))
         .withColumn("gap", (F.rand(seed) * 105 + 15).cast("int"))
         .withColumn("start", (F.rand(seed + 1) * 700).cast("int"))          # days before the run date
         .withColumn("stop", (F.col("start") * F.rand(seed + 2)).cast("int")))  # active until `stop` days before
    orders = c.select("one_id", F.explode(F.sequence(F.col("stop"), F.col("start"), F.col("gap"))).alias("days_ago"),
                      F.col("gap"))
    orders = orders.withColumn("days_ago", (F.col("days_ago") + (F.rand(seed + 3) * 10).cast("int")))
    orders = orders.withColumn("order_id", F.concat_ws("-", "one_id", F.col("days_ago").cast("string")))
    lines = orders.select("*", F.explode(F.sequence(F.lit(1), (F.rand(seed + 4) * 3).cast("int") + 1)).alias("line"))
    is_return = F.rand(seed + 5) < 0.05
    amount = (F.rand(seed + 6) * 100 + 5).cast("decimal(18,2)")
    paid_date = F.date_sub(F.lit(RUN_DATE), F.col("days_ago"))
    pick = lambda values, s: F.element_at(F.array(*[F.lit(v) for v in values]),  # noqa: E731
                                          (F.rand(s) * len(values)).cast("int") + 1)
    return (lines.withColumn("is_return", is_return).select(
        "one_id", pick(("pos", "pos", "miniprogram", "ecommerce"), seed + 7).alias("channel"),
        F.lit(None).cast("string").alias("platform"), F.lit("main").alias("brand_id"),
        F.lit("ST001").alias("store_id"), "order_id", F.col("order_id").alias("source_record_id"),
        F.col("line").cast("string").alias("line_key"), F.to_timestamp(paid_date).alias("paid_at"),
        paid_date.alias("paid_date"), F.lit("S1").alias("sku_id"), F.lit("sku").alias("sku_name"),
        pick(("tea", "fruit", "snacks", "gift"), seed + 8).alias("category"),
        F.lit(1).cast("decimal(12,3)").alias("quantity"),
        F.when(F.col("is_return"), -amount).otherwise(amount).alias("amount"), "is_return")
        .where(F.col("paid_date") < F.lit(RUN_DATE)))


def bench(spark, settings, customers: int) -> list[Measurement]:
    from cdp import score_models
    from cdp.lake import overwrite_table, read_table
    from cdp.models.config import load_models_config
    from cdp.models.features import build_features
    from cdp.train_models import load_inputs, train_task

    label = size_label(customers)
    results = []
    cpu = tree_cpu_s()
    with measure(f"{label}: write synthetic gold_order_facts") as m:
        overwrite_table(synthetic_facts(spark, customers), settings, "gold_order_facts")
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = read_table(spark, settings, "gold_order_facts").count()
    results.append(m)
    with measure(f"{label}: compaction in Spark -> driver (customer-days)") as m:
        inputs = load_inputs(spark, settings, RUN_DATE)
    compact = inputs.compact
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = len(compact.days)
    m.extra["driver_frames_mb"] = float((compact.days.memory_usage(deep=True).sum()
                                         + compact.categories.memory_usage(deep=True).sum()) / 2**20)
    results.append(m)
    with measure(f"{label}: features as of the run date (incl. BG/NBD fit)") as m:
        features = build_features(compact, RUN_DATE)
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = len(features)
    m.extra["columns"] = features.shape[1]
    m.extra["feature_frame_mb"] = float(features.memory_usage(deep=True).sum() / 2**20)
    results.append(m)
    del features
    cfg = load_models_config(settings)
    with measure(f"{label}: train churn (4 as-of dates, calibrated, registered)") as m:
        trained = train_task(spark, settings, RUN_DATE, "churn", compact, inputs.profiles, inputs.data_version, cfg)
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = trained["metrics"]["train_rows"] + trained["metrics"]["calibration_rows"]
    m.extra["snapshot_rows"] = "/".join(str(n) for n in trained["metrics"]["snapshot_rows"])
    m.extra["calibration_auc"] = trained["metrics"]["calibration_roc_auc"]
    results.append(m)
    inputs.release()
    del compact, inputs
    with measure(f"{label}: daily scoring job (trains repurchase on the fly) -> gold_model_scores") as m:
        summary = score_models.run(spark, settings, RUN_DATE)
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = summary["customers"]
    m.extra["score_rows"] = sum(v.get("rows", 0) for v in summary["models"].values())
    results.append(m)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--append-docs", action="store_true")
    args = parser.parse_args(argv)

    from cdp.entry import setup_logging

    setup_logging()
    results = bench_sizes("bench_models_", args.customers, bench)
    text = write_report("Models", results)
    print(text)
    for m in results:
        if m.extra:
            print(m.name, m.extra)
    if args.append_docs:
        notes = (f"Synthetic gold_order_facts (`python -m benchmarks.bench_models --customers "
                 f"{' '.join(map(str, args.customers))} --append-docs`): per-customer purchase rhythm (15-120 "
                 "days), random active period over two years, 1-3 lines per order, 5 % returns, 4 categories, "
                 "3 channels. Spark local profile (local[*], 8 shuffle partitions, 6 GiB driver); the models run "
                 f"on the driver. Machine shared with other work while measured. {machine()}.\n\n")
        extras = "\n".join(f"- {m.name}: " + ", ".join(f"{k} = {v:,.3g}" if isinstance(v, float) else f"{k} = {v}"
                                                        for k, v in m.extra.items()) for m in results if m.extra)
        replace_docs_section(HEADING, notes + "\n".join(text.splitlines()[4:]) + "\n\n" + extras)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
