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
    python -m benchmarks.bench_models --customers 1000000 --driver-only   # the pandas/scikit-learn side alone
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
    print(m.row(), m.extra, flush=True)
    with measure(f"{label}: compaction in Spark -> driver (customer-days)") as m:
        inputs = load_inputs(spark, settings, RUN_DATE)
    compact = inputs.compact
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = len(compact.days)
    m.extra["driver_frames_mb"] = float((compact.days.memory_usage(deep=True).sum()
                                         + compact.categories.memory_usage(deep=True).sum()) / 2**20)
    results.append(m)
    print(m.row(), m.extra, flush=True)
    with measure(f"{label}: features as of the run date (incl. BG/NBD fit)") as m:
        features = build_features(compact, RUN_DATE)
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = len(features)
    m.extra["columns"] = features.shape[1]
    m.extra["feature_frame_mb"] = float(features.memory_usage(deep=True).sum() / 2**20)
    results.append(m)
    print(m.row(), m.extra, flush=True)
    del features
    cfg = load_models_config(settings)
    with measure(f"{label}: train churn (4 as-of dates, calibrated, registered)") as m:
        trained = train_task(spark, settings, RUN_DATE, "churn", compact, inputs.profiles, inputs.data_version, cfg)
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = trained["metrics"]["train_rows"] + trained["metrics"]["calibration_rows"]
    m.extra["snapshot_rows"] = "/".join(str(n) for n in trained["metrics"]["snapshot_rows"])
    m.extra["calibration_auc"] = trained["metrics"]["calibration_roc_auc"]
    results.append(m)
    print(m.row(), m.extra, flush=True)
    inputs.release()
    del compact, inputs
    with measure(f"{label}: daily scoring job (trains repurchase on the fly) -> gold_model_scores") as m:
        summary = score_models.run(spark, settings, RUN_DATE)
    m.extra["cpu_s"], cpu = tree_cpu_s() - cpu, tree_cpu_s()
    m.rows = summary["customers"]
    m.extra["score_rows"] = sum(v.get("rows", 0) for v in summary["models"].values())
    results.append(m)
    print(m.row(), m.extra, flush=True)
    return results


def synthetic_compact(customers: int, seed: int = 11):
    """CompactFacts shaped like the compaction's output for `synthetic_facts` (same rhythms and active periods,
    ~4.1 customer-days per customer), built in numpy: the driver side alone, without Spark."""
    import numpy as np
    import pandas as pd

    from cdp.models.features import DAY_COLUMNS, CompactFacts

    rng = np.random.default_rng(seed)
    gap = rng.integers(15, 120, customers)
    start = rng.integers(0, 700, customers)
    stop = (start * rng.random(customers)).astype(int)
    k = (start - stop) // gap + 1
    customer = np.repeat(np.arange(customers, dtype=np.int32), k)
    step = np.arange(len(customer)) - np.repeat(np.cumsum(k) - k, k)
    days_ago = np.maximum(np.repeat(stop, k) + step * np.repeat(gap, k) + rng.integers(0, 10, len(customer)), 1)
    days = pd.DataFrame({"customer": customer,
                         "paid_date": (pd.Timestamp(RUN_DATE) - pd.to_timedelta(days_ago, unit="D")).values})
    days = days.drop_duplicates().sort_values(["customer", "paid_date"]).reset_index(drop=True)
    n = len(days)
    days["amount"] = rng.random(n) * 200 + 5
    days["n_lines"] = rng.integers(1, 4, n)
    days["return_amount"] = 0.0
    days["return_lines"] = 0
    channel = rng.integers(0, 3, n)
    for i, c in enumerate(("pos", "miniprogram", "ecommerce")):
        days[f"amount_{c}"] = np.where(channel == i, days["amount"], 0.0)
    categories = (days[["customer", "paid_date"]].rename(columns={"paid_date": "first_date"})
                  .groupby("customer").head(4).reset_index(drop=True))
    return CompactFacts(days[list(DAY_COLUMNS)], categories, None)


def bench_driver(customers: int) -> list[Measurement]:
    """The driver side at `customers` without Spark: one feature snapshot, churn training with the configured
    row cap (4 as-of dates, calibrated; not registered) and scoring every customer."""
    from cdp.models.config import load_models_config
    from cdp.models.features import build_features
    from cdp.models.propensity import fit_propensity, snapshot

    label = size_label(customers) + " driver only"
    cfg = load_models_config()
    results = []
    with measure(f"{label}: synthetic compact frames (int32 codes)") as m:
        compact = synthetic_compact(customers)
    m.rows = len(compact.days)
    m.extra["frames_mb"] = float((compact.days.memory_usage().sum() + compact.categories.memory_usage().sum()) / 2**20)
    results.append(m)
    print(m.row(), m.extra, flush=True)
    with measure(f"{label}: features as of the run date (incl. BG/NBD fit)") as m:
        features = build_features(compact, RUN_DATE)
    m.rows = len(features)
    results.append(m)
    print(m.row(), m.extra, flush=True)
    del features
    with measure(f"{label}: train churn (4 as-of dates, capped, calibrated)") as m:
        model, metrics = fit_propensity(compact, RUN_DATE, "churn", cfg.churn.horizon_days, cfg.training, cfg.seed,
                                        snapshots=None)
    m.rows = metrics["train_rows"] + metrics["calibration_rows"]
    m.extra["snapshot_rows"] = "/".join(str(n) for n in metrics["snapshot_rows"])
    m.extra["calibration_auc"] = metrics["calibration_roc_auc"]
    results.append(m)
    print(m.row(), m.extra, flush=True)
    with measure(f"{label}: snapshot + score every customer (200k chunks)") as m:
        scores = model.predict(snapshot(compact, RUN_DATE))
    m.rows = len(scores)
    results.append(m)
    print(m.row(), m.extra, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--append-docs", action="store_true")
    parser.add_argument("--driver-only", action="store_true",
                        help="no Spark: synthetic compact frames, features, capped training and scoring on the driver")
    args = parser.parse_args(argv)

    from cdp.entry import setup_logging

    setup_logging()
    if args.driver_only:
        results = [m for n in args.customers for m in bench_driver(n)]
        print(write_report("Models driver only", results))
        for m in results:
            print(m.name, m.extra)
        return 0
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
