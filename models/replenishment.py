"""Replenishment reminders: for repeat categories, each customer's expected next purchase date.

Steps (Spark, pure DataFrame -> DataFrame):
1. Purchase days per (one_id, category) before the scoring date (sales lines only).
2. Gaps between consecutive purchase days of the same customer in the same category (lag window); a
   customer's own gaps only enter as their sum (last - first day) and count (days - 1).
3. A category is "repeat" when at least `min_category_repeaters` customers bought it on 2+ days; its cycle
   is the median gap over all customers (percentile_approx), kept only if <= `max_cycle_days`.
4. Each customer's cycle = (sum of own gaps + prior_weight * category cycle) / (own gap count + prior_weight):
   a customer with no repeat yet gets the category cycle, a regular one mostly their own rhythm.
5. expected_next_date = last_purchase_date + round(cycle_days).

Output grain: one row per (one_id, category) -- gold_replenishment.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from cdp.models.config import ReplenishmentConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def replenishment_dates(facts: DataFrame, scored_date: dt.date, cfg: ReplenishmentConfig) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # Step 1
    days = (facts.where((F.col("paid_date") < F.lit(scored_date)) & ~F.col("is_return")
                        & (F.col("amount") > 0) & F.col("category").isNotNull())
            .select("one_id", "category", "paid_date").distinct())
    # Step 2: consecutive gaps telescope, so a customer's sum of gaps is last day - first day and their count
    # is days - 1: a plain aggregation. Only the category medians need each gap (one window sort); the
    # distinct days are one shuffle both branches reuse.
    per_customer = days.groupBy("one_id", "category").agg(
        F.max("paid_date").alias("last_purchase_date"),
        F.datediff(F.max("paid_date"), F.min("paid_date")).alias("gap_sum"),
        (F.count(F.lit(1)) - 1).alias("gap_count"))
    w = Window.partitionBy("one_id", "category").orderBy("paid_date")
    gaps = (days.withColumn("gap", F.datediff("paid_date", F.lag("paid_date").over(w)))
            .where(F.col("gap").isNotNull()))
    # Step 3
    repeaters = (per_customer.where(F.col("gap_count") > 0).groupBy("category")
                 .agg(F.count(F.lit(1)).alias("repeaters")))
    categories = (gaps.groupBy("category").agg(F.percentile_approx("gap", 0.5, 1000).alias("category_cycle"))
                  .join(repeaters, "category")
                  .where((F.col("repeaters") >= cfg.min_category_repeaters)
                         & (F.col("category_cycle") <= cfg.max_cycle_days) & (F.col("category_cycle") > 0)))
    # Step 4
    k = F.lit(float(cfg.prior_weight))
    cycle = ((F.coalesce(F.col("gap_sum"), F.lit(0)).cast("double") + k * F.col("category_cycle"))
             / (F.col("gap_count").cast("double") + k))
    return (per_customer.join(categories.select("category", "category_cycle"), "category")
            .withColumn("cycle_days", F.round(cycle, 1))
            # Step 5
            .withColumn("expected_next_date",
                        F.date_add(F.col("last_purchase_date"), F.round(F.col("cycle_days")).cast("int")))
            .withColumn("scored_date", F.lit(scored_date))
            .select("one_id", "category", "last_purchase_date", "expected_next_date", "cycle_days", "scored_date"))
