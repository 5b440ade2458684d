"""The Spark side of feature building: gold tables -> compact numeric frames on the driver.

`compact_facts_spark` is the twin of `cdp.models.features.compact_facts` (a Spark test checks they agree):
Spark numbers the one_ids (`customer_codes`: int32 codes in one_id order), reduces order lines to one row per
(customer, paid_date) and one row per (customer, category), and only these numeric frames reach the driver,
through Arrow (`DataFrame.toArrow`, no per-row Python objects): about 60 bytes per customer-day, no strings.
The code -> one_id map stays in Spark; the scoring job joins its scores back to one_ids there. Measured in
benchmarks/bench_models.py (docs/benchmarks.md, section Models).
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pandas as pd

from cdp.models.features import CATEGORY_COLUMNS, CHANNELS, DAY_COLUMNS, PROFILE_FLAGS, CompactFacts, ProfileFacts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def customer_codes(facts: DataFrame, before: dt.date | None = None) -> DataFrame:
    """Spark: one row per one_id with a fact line (before `before`): one_id, customer (int32 code, 0..n-1 in
    one_id order -- the same numbering as the pandas twin's `pd.factorize(sort=True)`).

    The numbering is a row_number over all one_ids (one partition: a sort of n short strings, about a second
    per million); it is deterministic, so recomputing it gives the same codes."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if before is not None:
        facts = facts.where(F.col("paid_date") < F.lit(before))
    ids = facts.where(F.col("one_id").isNotNull()).select("one_id").distinct()
    return ids.select("one_id", (F.row_number().over(Window.orderBy("one_id")) - 1).cast("int").alias("customer"))


def compact_days_df(facts: DataFrame, customers: DataFrame, before: dt.date | None = None) -> DataFrame:
    """Spark: one row per (customer, paid_date) -- see features.DAY_COLUMNS. Pure DataFrame -> DataFrame;
    `customers` is the `customer_codes` map."""
    from pyspark.sql import functions as F

    if before is not None:
        facts = facts.where(F.col("paid_date") < F.lit(before))
    amount = F.col("amount").cast("double")
    is_return = F.col("is_return") | (amount < 0)
    sale = F.when(~is_return & (amount > 0), amount).otherwise(F.lit(0.0))
    aggs = [F.sum(sale).alias("amount"), F.count(F.lit(1)).alias("n_lines"),
            F.sum(F.when(is_return, -amount).otherwise(F.lit(0.0))).alias("return_amount"),
            F.sum(F.when(is_return, 1).otherwise(0)).alias("return_lines")]
    aggs += [F.sum(F.when(F.col("channel") == c, sale).otherwise(F.lit(0.0))).alias(f"amount_{c}") for c in CHANNELS]
    return (facts.groupBy("one_id", "paid_date").agg(*aggs).join(customers, "one_id")
            .select(*DAY_COLUMNS))


def compact_categories_df(facts: DataFrame, customers: DataFrame, before: dt.date | None = None) -> DataFrame:
    """Spark: one row per (customer, category) with the first paid_date of a sales line (the category name
    itself stays in Spark: the features only count categories)."""
    from pyspark.sql import functions as F

    if before is not None:
        facts = facts.where(F.col("paid_date") < F.lit(before))
    amount = F.col("amount").cast("double")
    sales = facts.where(~F.col("is_return") & (amount > 0) & F.col("category").isNotNull())
    return (sales.groupBy("one_id", "category").agg(F.min("paid_date").alias("first_date"))
            .join(customers, "one_id").select(*CATEGORY_COLUMNS))


def _to_pandas(df: DataFrame, sort: list[str], dates: tuple[str, ...] = ()) -> pd.DataFrame:
    """Collect a small numeric DataFrame through Arrow; dates become datetime64[ns], rows sorted by `sort`."""
    pdf = df.toArrow().to_pandas(date_as_object=False)
    for c in dates:
        pdf[c] = pdf[c].astype("datetime64[ns]")
    return pdf.sort_values(sort, kind="mergesort").reset_index(drop=True)


def compact_facts_spark(facts: DataFrame, customers: DataFrame,
                        before: dt.date | None = None) -> CompactFacts:
    """Reduce gold_order_facts in Spark and bring the numeric frames to the driver, typed like the pandas
    twin (customer int32; the one_ids stay in Spark: `customer_ids` is None). `customers` is the
    `customer_codes(facts, before)` map (persist it when it is used again, e.g. to join scores back)."""
    days = _to_pandas(compact_days_df(facts, customers, before), ["customer", "paid_date"], ("paid_date",))
    for c in ("n_lines", "return_lines"):
        days[c] = days[c].astype("int64")
    days["customer"] = days["customer"].astype("int32")
    cats = _to_pandas(compact_categories_df(facts, customers, before), ["customer", "first_date"], ("first_date",))
    cats["customer"] = cats["customer"].astype("int32")
    return CompactFacts(days, cats, None)


def profile_facts(profiles: DataFrame, customers: DataFrame) -> ProfileFacts:
    """gold_profiles -> numbers per customer code (flags as 0/1, one row per dated membership card), through
    Arrow. Profiles without facts have no code and are left out (they get no features)."""
    from pyspark.sql import functions as F

    present = set(profiles.columns)
    coded = profiles.join(customers, "one_id")
    flags = [F.coalesce(F.col(c).cast("double"), F.lit(0.0)).alias(c) for c in PROFILE_FLAGS if c in present]
    flag_frame = _to_pandas(coded.select("customer", *flags), ["customer"]).set_index("customer")
    flag_frame.index = flag_frame.index.astype("int32")
    cards = None
    if "memberships" in present:
        cards = _to_pandas(
            coded.select("customer", F.explode("memberships").alias("m"))
            .select("customer", F.to_date(F.col("m.registered_at")).alias("registered_date"))
            .where(F.col("registered_date").isNotNull()), ["customer", "registered_date"], ("registered_date",))
        cards["customer"] = cards["customer"].astype("int32")
    return ProfileFacts(flag_frame, cards)
