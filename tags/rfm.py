"""gold_rfm: recency, frequency, monetary value, quintile scores and the named R x FM segment per purchaser.

Grain: one row per `(one_id, as_of_date)` for every one_id with at least one purchase order in the window
`(as_of_date - window_days, as_of_date]` (conf/rfm.yaml). Steps:
1. orders of the window (`orders_from_facts`): frequency = purchase orders (positive net amount), monetary = net
   amount of all orders in the window (returns and refunds netted), recency_days = days from the last purchase
   date to as_of_date;
2. quintile scores 1-5 by `ntile(5)` over all purchasers, 5 = best (most recent / most frequent / highest
   spend). Ties are broken by the other two measures, then by one_id, so scores are deterministic and the five
   groups differ in size by at most one (equal values may straddle a quintile boundary);
3. fm_score = ceil((f_score + m_score) / 2); rfm_segment = grid[r_score][fm_score] from conf/rfm.yaml.
See docs/rfm_lifecycle.md for the grid.
"""
from __future__ import annotations

import datetime as dt
from itertools import chain
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from cdp.tags.facts import conform, orders_from_facts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cdp.tags.profile_rules import RfmRules

RFM_SCHEMA = ("one_id string, as_of_date date, window_days int, recency_days int, frequency int, "
              "monetary decimal(18,2), r_score int, f_score int, m_score int, fm_score int, rfm_segment string")


def rfm_measures(orders: DataFrame, as_of_date: dt.date, window_days: int) -> DataFrame:
    """Per purchaser in the window: recency_days, frequency, monetary (net)."""
    as_of = F.lit(as_of_date).cast("date")
    in_window = orders.where((F.col("paid_date") <= as_of) & (F.col("paid_date") > F.date_sub(as_of, window_days)))
    purchase = F.col("is_purchase")
    return (in_window.groupBy("one_id")
            .agg(F.sum(purchase.cast("int")).cast("int").alias("frequency"),
                 F.sum("net_amount").cast("decimal(18,2)").alias("monetary"),
                 F.max(F.when(purchase, F.col("paid_date"))).alias("last_purchase_date"))
            .where(F.col("frequency") >= 1)
            .withColumn("recency_days", F.datediff(as_of, F.col("last_purchase_date"))))


def score_rfm(measures: DataFrame, rules: RfmRules) -> DataFrame:
    """Add r/f/m quintile scores (1-5, 5 best), fm_score and rfm_segment to `rfm_measures` output."""
    recent_first = F.col("recency_days").desc()  # ascending order of "goodness": longest ago first
    r_order = Window.orderBy(recent_first, F.col("frequency"), F.col("monetary"), F.col("one_id"))
    f_order = Window.orderBy(F.col("frequency"), F.col("monetary"), recent_first, F.col("one_id"))
    m_order = Window.orderBy(F.col("monetary"), F.col("frequency"), recent_first, F.col("one_id"))
    grid = F.create_map(*chain.from_iterable(
        (F.lit(f"{r}:{fm}"), F.lit(rules.segment_of(r, fm))) for r in range(1, 6) for fm in range(1, 6)))
    return (measures
            .withColumn("r_score", F.ntile(5).over(r_order))
            .withColumn("f_score", F.ntile(5).over(f_order))
            .withColumn("m_score", F.ntile(5).over(m_order))
            .withColumn("fm_score", F.ceil((F.col("f_score") + F.col("m_score")) / 2).cast("int"))
            .withColumn("rfm_segment", grid[F.concat_ws(":", "r_score", "fm_score")]))


def build_rfm(facts: DataFrame, rules: RfmRules, as_of_date: dt.date) -> DataFrame:
    """gold_rfm for `as_of_date` from gold_order_facts."""
    measures = rfm_measures(orders_from_facts(facts), as_of_date, rules.window_days)
    scored = score_rfm(measures, rules)
    return conform(scored.withColumn("as_of_date", F.lit(as_of_date))
                   .withColumn("window_days", F.lit(rules.window_days)), RFM_SCHEMA)
