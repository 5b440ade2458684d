"""Benchmark of RFM and lifecycle (stage `profiles`) at 100k and 1M customers, with peak memory (driver + JVM).

gold_order_facts is generated directly with Spark built-ins (seeded), so this does not depend on the ingestion
and identity stages: each customer has Poisson-ish 1..2*orders_per_customer orders of 1-3 lines over two years
(recent days more likely), 5 % of orders are return receipts (negative amounts); 20 % more profiles than buyers
(prospects and members without purchase). Then, in one Spark session (the local profile's Spark settings):

1. RFM for the run date (build + write the gold_rfm partition);
2. lifecycle day 1 (no previous stages; every profile gets a first stage and transition);
3. lifecycle day 2 (previous stages read from the day-1 partition; stage_since carried, changes recorded).

    python -m benchmarks.bench_profiles --customers 100000 1000000 [--append-docs]
"""
from __future__ import annotations

import argparse
import datetime as dt

from benchmarks.harness import (Measurement, bench_sizes, machine, measure, replace_docs_section, size_label,
                                write_report)

HEADING = "## Profiles, RFM, lifecycle"
RUN_DATE = dt.date(2026, 6, 30)


def synthetic_facts(spark, customers: int, orders_per_customer: int, seed: int = 7):
    """Seeded gold_order_facts in the contract schema (cdp.tags.facts.FACT_SCHEMA)."""
    from pyspark.sql import functions as F

    from cdp.tags.facts import FACT_SCHEMA, conform

    ids = spark.range(customers).withColumn("one_id", F.format_string("O%09d", "id"))
    orders = (ids.select("one_id", F.explode(F.sequence(
        F.lit(1), (F.rand(seed + 1) * 2 * orders_per_customer).cast("int") + 1)).alias("order_no"))
        # days ago: squared uniform over 730 days, so recent days are more likely
        .withColumn("days_ago", (F.pow(F.rand(seed + 2), 2) * 730).cast("int"))
        .withColumn("is_return", F.rand(seed + 3) < 0.05))
    lines = orders.select("*", F.explode(F.sequence(F.lit(1), (F.rand(seed + 4) * 3).cast("int") + 1)).alias("line"))
    paid_date = F.date_sub(F.lit(RUN_DATE), F.col("days_ago"))
    amount = (F.rand(seed + 5) * 100 + 5).cast("decimal(18,2)")
    channel = F.element_at(F.array(*[F.lit(c) for c in ("pos", "pos", "miniprogram", "ecommerce")]),
                           (F.rand(seed + 6) * 4).cast("int") + 1)
    order_id = F.concat_ws("-", "one_id", "order_no")
    return conform(lines.select(
        "one_id", channel.alias("channel"), F.lit(None).alias("platform"), F.lit("main").alias("brand_id"),
        F.format_string("ST%03d", (F.rand(seed + 7) * 200).cast("int")).alias("store_id"), order_id.alias("order_id"),
        order_id.alias("source_record_id"), F.col("line").cast("string").alias("line_key"),
        F.to_timestamp(paid_date).alias("paid_at"), paid_date.alias("paid_date"),
        F.format_string("S%05d", (F.rand(seed + 8) * 500).cast("int")).alias("sku_id"), F.lit("sku").alias("sku_name"),
        F.lit("fruit").alias("category"), F.lit(1).alias("quantity"),
        F.when(F.col("is_return"), -amount).otherwise(amount).alias("amount"), "is_return"), FACT_SCHEMA)


def synthetic_profiles(spark, customers: int, seed: int = 7):
    """one_id + is_member for buyers and 20 % more non-buyers (the columns lifecycle reads from gold_profiles)."""
    from pyspark.sql import functions as F

    return spark.range(int(customers * 1.2)).select(F.format_string("O%09d", "id").alias("one_id"),
                                                    (F.rand(seed + 9) < 0.6).alias("is_member"))


def bench(spark, settings, customers: int, orders_per_customer: int) -> list[Measurement]:
    from pyspark.sql import functions as F

    from cdp.lake import overwrite_table, read_table
    from cdp.tags.lifecycle import build_lifecycle, latest_stages, stage_transitions
    from cdp.tags.profile_rules import load_lifecycle_rules, load_rfm_rules
    from cdp.tags.rfm import build_rfm

    label = size_label(customers)
    results = []
    with measure(f"{label}: write synthetic gold_order_facts") as m:
        overwrite_table(synthetic_facts(spark, customers, orders_per_customer), settings, "gold_order_facts")
        overwrite_table(synthetic_profiles(spark, customers), settings, "gold_profiles")
    facts = read_table(spark, settings, "gold_order_facts")
    m.rows = facts.count()
    results.append(m)
    profiles = read_table(spark, settings, "gold_profiles")

    rfm_rules = load_rfm_rules(settings.conf_path("rfm.yaml"))
    life_rules = load_lifecycle_rules(settings.conf_path("lifecycle.yaml"))
    with measure(f"{label}: RFM (365-day window, scores, segments) -> gold_rfm") as m:
        overwrite_table(build_rfm(facts, rfm_rules, RUN_DATE), settings, "gold_rfm", partition_by=("as_of_date",),
                        replace_where=f"as_of_date = '{RUN_DATE}'")
    m.rows = read_table(spark, settings, "gold_rfm").count()
    results.append(m)

    empty = spark.createDataFrame([], "one_id string, stage string, stage_since date")
    for day, label_day in ((RUN_DATE, "day 1, no history"), (RUN_DATE + dt.timedelta(days=1), "day 2, with history")):
        with measure(f"{label}: lifecycle {label_day} -> gold_lifecycle + transitions") as m:
            if day == RUN_DATE:
                previous = empty
            else:
                previous = latest_stages(read_table(spark, settings, "gold_lifecycle")
                                         .where(F.col("as_of_date") == F.lit(RUN_DATE)), day)
            stages, _ = build_lifecycle(profiles, facts, previous, life_rules, day)  # as cdp.build_profiles does
            overwrite_table(stages, settings, "gold_lifecycle", partition_by=("as_of_date",),
                            replace_where=f"as_of_date = '{day}'")
            written = read_table(spark, settings, "gold_lifecycle").where(F.col("as_of_date") == F.lit(day))
            overwrite_table(stage_transitions(written, previous), settings, "gold_lifecycle_transitions",
                            replace_where=f"changed_date = '{day}'")
        m.rows = profiles.count()
        m.extra["transitions"] = read_table(spark, settings, "gold_lifecycle_transitions").where(
            F.col("changed_date") == F.lit(day)).count()
        results.append(m)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--orders-per-customer", type=int, default=3)
    parser.add_argument("--append-docs", action="store_true")
    args = parser.parse_args(argv)

    from cdp.entry import setup_logging

    setup_logging()
    results = bench_sizes("bench_profiles_", args.customers,
                          lambda spark, settings, n: bench(spark, settings, n, args.orders_per_customer))
    text = write_report("Profiles, RFM, lifecycle", results)
    print(text)
    if args.append_docs:
        notes = (f"Synthetic gold_order_facts (`python -m benchmarks.bench_profiles --customers "
                 f"{' '.join(map(str, args.customers))} --append-docs`): {args.orders_per_customer} orders per "
                 "customer on average, 1-3 lines each, over two years, 5 % returns; 20 % extra profiles without "
                 "purchase. Spark local profile (local[*], 8 shuffle partitions, 6 GiB driver). Machine shared "
                 f"with other work while measured. {machine()}.\n\n")
        replace_docs_section(HEADING, notes + "\n".join(text.splitlines()[4:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
