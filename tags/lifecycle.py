"""gold_lifecycle (one stage per one_id per day) and gold_lifecycle_transitions (one row per stage change).

Rules, first match wins, with d = days since the last purchase date and thresholds from conf/lifecycle.yaml
(docs/rfm_lifecycle.md has the table):
1. no purchase up to as_of_date: `member_no_purchase` when the profile holds a member card, else `prospect`;
2. d > churned_after_days: `churned`;   3. d > dormant_after_days: `dormant`;
4. first purchase at most new_days ago: `new`;
5. `reactivated`: the previous stage (last earlier run) was dormant or churned, or the latest purchase after a
   gap of more than dormant_after_days between two purchase dates is at most reactivated_days old (the facts
   show the dormancy even when the job did not run on those days);
6. at least loyal_min_orders purchase orders within loyal_window_days: `loyal`;  7. otherwise `active`.
`stage_since` carries over from the previous stage row when the stage is unchanged, else it is as_of_date.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from cdp.tags.facts import conform, orders_from_facts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cdp.tags.profile_rules import LifecycleRules

LIFECYCLE_SCHEMA = "one_id string, as_of_date date, stage string, stage_since date"
TRANSITION_SCHEMA = "one_id string, from_stage string, to_stage string, changed_date date"
PREVIOUS_SCHEMA = "one_id string, stage string, stage_since date"


def purchase_history(orders: DataFrame, as_of_date: dt.date, rules: LifecycleRules) -> DataFrame:
    """Per buyer up to as_of_date: first/last purchase date, orders in the loyal window, last comeback date."""
    as_of = F.lit(as_of_date).cast("date")
    bought = orders.where(F.col("is_purchase") & (F.col("paid_date") <= as_of))
    days = bought.select("one_id", "paid_date").distinct()
    gap = F.datediff("paid_date", F.lag("paid_date").over(Window.partitionBy("one_id").orderBy("paid_date")))
    comebacks = (days.withColumn("gap_days", gap).where(F.col("gap_days") > rules.dormant_after_days)
                 .groupBy("one_id").agg(F.max("paid_date").alias("comeback_date")))
    loyal_since = F.date_sub(as_of, rules.loyal_window_days)
    summary = bought.groupBy("one_id").agg(
        F.min("paid_date").alias("first_purchase_date"), F.max("paid_date").alias("last_purchase_date"),
        F.sum((F.col("paid_date") > loyal_since).cast("int")).alias("orders_in_loyal_window"))
    return summary.join(comebacks, "one_id", "left")


def assign_stages(profiles: DataFrame, history: DataFrame, previous: DataFrame, rules: LifecycleRules,
                  as_of_date: dt.date) -> DataFrame:
    """gold_lifecycle rows for as_of_date, plus `previous_stage` (null for a one_id seen for the first time)."""
    as_of = F.lit(as_of_date).cast("date")
    prev = previous.select("one_id", F.col("stage").alias("previous_stage"),
                           F.col("stage_since").alias("previous_since"))
    df = (profiles.select("one_id", F.coalesce("is_member", F.lit(False)).alias("is_member"))
          .join(history, "one_id", "left").join(prev, "one_id", "left"))
    since_last = F.datediff(as_of, "last_purchase_date")
    comeback = (F.col("previous_stage").isin("dormant", "churned")
                | (F.datediff(as_of, "comeback_date") <= rules.reactivated_days))
    stage = (F.when(F.col("last_purchase_date").isNull(),
                    F.when(F.col("is_member"), F.lit("member_no_purchase")).otherwise(F.lit("prospect")))
             .when(since_last > rules.churned_after_days, F.lit("churned"))
             .when(since_last > rules.dormant_after_days, F.lit("dormant"))
             .when(F.datediff(as_of, "first_purchase_date") <= rules.new_days, F.lit("new"))
             .when(comeback, F.lit("reactivated"))
             .when(F.col("orders_in_loyal_window") >= rules.loyal_min_orders, F.lit("loyal"))
             .otherwise(F.lit("active")))
    return (df.withColumn("stage", stage)
            .withColumn("stage_since", F.when(F.col("stage") == F.col("previous_stage"), F.col("previous_since"))
                        .otherwise(as_of))
            .withColumn("as_of_date", as_of)
            .select("one_id", "as_of_date", "stage", "stage_since", "previous_stage"))


def stage_transitions(stages: DataFrame, previous: DataFrame) -> DataFrame:
    """gold_lifecycle_transitions rows: one per one_id whose stage differs from its previous stage (or who has
    none yet: `from_stage` null). Reads only the two stage tables, not the facts."""
    prev = previous.select("one_id", F.col("stage").alias("from_stage"))
    changed = (stages.join(prev, "one_id", "left")
               .where(F.col("from_stage").isNull() | (F.col("from_stage") != F.col("stage"))))
    return conform(changed.select("one_id", "from_stage", F.col("stage").alias("to_stage"),
                                  F.col("as_of_date").alias("changed_date")), TRANSITION_SCHEMA)


def build_lifecycle(profiles: DataFrame, facts: DataFrame, previous: DataFrame, rules: LifecycleRules,
                    as_of_date: dt.date) -> tuple[DataFrame, DataFrame]:
    """(gold_lifecycle rows, gold_lifecycle_transitions rows) for as_of_date.

    `previous` holds the latest earlier stage per one_id (`one_id, stage, stage_since`); empty on the first run.
    A transition is recorded whenever the stage differs from the previous one, including the first stage of a
    new one_id (`from_stage` null). (The job writes the stages first and derives the transitions from the written
    partition with `stage_transitions`, so the facts are not aggregated twice.)
    """
    history = purchase_history(orders_from_facts(facts), as_of_date, rules)
    stages = conform(assign_stages(profiles, history, previous, rules, as_of_date), LIFECYCLE_SCHEMA)
    return stages, stage_transitions(stages, previous)


def latest_stages(lifecycle: DataFrame, before: dt.date) -> DataFrame:
    """The latest stage row of each one_id strictly before `before` (the previous stage history)."""
    earlier = lifecycle.where(F.col("as_of_date") < F.lit(before))
    order = Window.partitionBy("one_id").orderBy(F.col("as_of_date").desc())
    return conform(earlier.withColumn("rank", F.row_number().over(order)).where(F.col("rank") == 1),
                   PREVIOUS_SCHEMA)
