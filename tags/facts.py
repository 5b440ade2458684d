"""gold_order_facts: one row per purchased (or returned) order line across POS, mini-program and e-commerce.

Grain: one row per order line, key `(channel, brand_id, source_record_id, line_key)`; only lines whose record has
a `one_id` (anonymous lines are left out and counted by `count_anonymous_lines`). Amounts are CNY
`decimal(18,2)`, negative for POS returns (`is_return`; a return receipt is its own order); an e-commerce line
whose latest state is `refunded` is a return line with amount 0 (the sale and its refund cancel out).
`paid_date` is the local date (settings.timezone) that marketers reason about.

    facts = build_order_facts(pos, mini, ecom, catalog, "Asia/Shanghai")
    orders = orders_from_facts(facts)        # one row per order, net amount, is_purchase

Silver input columns are declared in SILVER_COLUMNS (the part of the docs/tables.md contract this stage reads).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

MINIPROGRAM_PAID_EVENT = "order_paid"
CHANNELS = ("pos", "miniprogram", "ecommerce")

_PROVENANCE = "source string, source_record_id string, brand_id string, dt date, one_id string"
# The silver columns this stage reads (docs/tables.md). Missing silver tables are read as empty frames of these.
SILVER_COLUMNS: dict[str, str] = {
    "silver_pos_lines": (
        f"{_PROVENANCE}, order_id string, line_no int, store_id string, paid_at timestamp, member_card_no string, "
        "mobile_hash string, sku_id string, sku_name string, category string, quantity decimal(12,3), "
        "unit_price decimal(18,2), amount decimal(18,2), is_return boolean"),
    "silver_miniprogram_events": (
        f"{_PROVENANCE}, event_id string, event_type string, event_at timestamp, appid string, openid_hash string, "
        "unionid_hash string, mobile_hash string, member_card_no string, order_id string, amount decimal(18,2), "
        "items array<struct<sku_id:string,quantity:decimal(12,3),price:decimal(18,2)>>"),
    "silver_wecom_contacts": (
        f"{_PROVENANCE}, external_userid string, guide_userid string, store_id string, name_masked string, "
        "gender string, unionid_hash string, remark_mobile_hashes array<string>, added_at timestamp, "
        "last_change_at timestamp, is_active boolean"),
    "silver_ecommerce_lines": (
        f"{_PROVENANCE}, platform string, shop_id string, order_id string, buyer_id string, "
        "receiver_name_masked string, mobile_hash string, province string, city string, paid_at timestamp, "
        "sku_id string, sku_name string, category string, quantity decimal(12,3), amount decimal(18,2), "
        "status string, member_card_no string"),
    "silver_crm_members": (
        f"{_PROVENANCE}, member_card_no string, mobile_hash string, name_masked string, gender string, "
        "birthday date, level string, is_paid_member boolean, has_app boolean, join_store_id string, "
        "registered_at timestamp, marketing_consent boolean, updated_at timestamp"),
    "silver_catalog": "sku_id string, sku_name string, category string, brand string, list_price decimal(18,2)",
    "silver_stores": "store_id string, store_name string, city string, region string",
}

FACT_SCHEMA = (
    "one_id string, channel string, platform string, brand_id string, store_id string, order_id string, "
    "source_record_id string, line_key string, paid_at timestamp, paid_date date, sku_id string, sku_name string, "
    "category string, quantity decimal(12,3), amount decimal(18,2), is_return boolean")


def schema_fields(ddl: str) -> list[tuple[str, str]]:
    """`"a int, b array<struct<x:int,y:int>>"` -> [("a", "int"), ("b", "array<...>")] (no spaces inside types)."""
    return [tuple(part.strip().split(" ", 1)) for part in ddl.split(", ")]  # type: ignore[misc]


def conform(df: DataFrame, ddl: str) -> DataFrame:
    """Select exactly the columns of `ddl`, in order, cast to their declared types (the published contract)."""
    return df.select(*[F.col(name).cast(kind).alias(name) for name, kind in schema_fields(ddl)])


FACT_COLUMNS = tuple(name for name, _ in schema_fields(FACT_SCHEMA))


def local_date(ts: Column, timezone: str) -> Column:
    """The calendar date of a UTC timestamp in `timezone` (e.g. 2026-01-01 17:00 UTC -> 2026-01-02 Shanghai)."""
    return F.to_date(F.from_utc_timestamp(ts, timezone))


def _signed(value: Column, is_return: Column) -> Column:
    """Returns and refunds count negative whatever sign the source used."""
    return F.when(is_return, -F.abs(value)).otherwise(value)


def _pos_lines(pos: DataFrame) -> DataFrame:
    return pos.select(
        "one_id", F.lit("pos").alias("channel"), F.lit(None).cast("string").alias("platform"), "brand_id",
        "store_id", "order_id", F.col("order_id").alias("source_record_id"),
        F.col("line_no").cast("string").alias("line_key"), "paid_at", "sku_id", "sku_name", "category",
        _signed(F.col("quantity"), F.col("is_return")).alias("quantity"),
        _signed(F.col("amount"), F.col("is_return")).alias("amount"),
        F.coalesce(F.col("is_return"), F.lit(False)).alias("is_return"))


def _miniprogram_lines(events: DataFrame, catalog: DataFrame) -> DataFrame:
    """One row per item of each paid order event; one row with the event amount when the items are absent."""
    paid = events.where(F.col("event_type") == MINIPROGRAM_PAID_EVENT)
    items = paid.select("*", F.posexplode_outer("items").alias("item_pos", "item"))
    has_item = F.col("item").isNotNull()
    lines = items.select(
        "one_id", F.lit("miniprogram").alias("channel"), F.lit(None).cast("string").alias("platform"), "brand_id",
        F.lit(None).cast("string").alias("store_id"), "order_id", F.col("event_id").alias("source_record_id"),
        F.coalesce(F.col("item_pos"), F.lit(0)).cast("string").alias("line_key"),
        F.col("event_at").alias("paid_at"), F.col("item.sku_id").alias("sku_id"),
        F.when(has_item, F.col("item.quantity")).alias("quantity"),
        F.when(has_item, F.col("item.price") * F.col("item.quantity")).otherwise(F.col("amount")).alias("amount"),
        F.lit(False).alias("is_return"))
    names = F.broadcast(catalog.select("sku_id", "sku_name", "category"))
    return lines.join(names, "sku_id", "left")


def _ecommerce_lines(ecom: DataFrame) -> DataFrame:
    """Silver keeps each line's latest state, so a `refunded` line is a sale and its refund at once: it becomes a
    return line (`is_return`) with amount and quantity 0 (netting the refund against the still-present sale would
    count it twice)."""
    refunded = F.col("status") == "refunded"
    return ecom.select(
        "one_id", F.lit("ecommerce").alias("channel"), "platform", "brand_id",
        F.lit(None).cast("string").alias("store_id"), "order_id",
        F.concat_ws(":", "platform", "order_id").alias("source_record_id"), F.col("sku_id").alias("line_key"),
        "paid_at", "sku_id", "sku_name", "category",
        F.when(refunded, F.lit(0)).otherwise(F.col("quantity")).alias("quantity"),
        F.when(refunded, F.lit(0)).otherwise(F.col("amount")).alias("amount"),
        refunded.alias("is_return"))


def order_lines(pos: DataFrame, miniprogram: DataFrame, ecommerce: DataFrame, catalog: DataFrame,
                timezone: str) -> DataFrame:
    """All order lines of the three purchase channels in the gold_order_facts shape, one_id possibly null."""
    parts = [_pos_lines(pos), _miniprogram_lines(miniprogram, catalog), _ecommerce_lines(ecommerce)]
    union = parts[0].unionByName(parts[1]).unionByName(parts[2])
    union = union.withColumn("paid_date", local_date(F.col("paid_at"), timezone))
    return conform(union, FACT_SCHEMA)


def build_order_facts(pos: DataFrame, miniprogram: DataFrame, ecommerce: DataFrame, catalog: DataFrame,
                      timezone: str) -> DataFrame:
    """gold_order_facts: the order lines that belong to a person (one_id not null)."""
    return order_lines(pos, miniprogram, ecommerce, catalog, timezone).where(F.col("one_id").isNotNull())


def count_anonymous_lines(lines: DataFrame) -> DataFrame:
    """Per channel: lines without a one_id (left out of the facts) and all lines."""
    return (lines.groupBy("channel")
            .agg(F.sum(F.col("one_id").isNull().cast("int")).alias("anonymous_lines"), F.count("*").alias("lines")))


ORDER_SCHEMA = ("one_id string, channel string, brand_id string, source_record_id string, store_id string, "
                "paid_at timestamp, paid_date date, net_amount decimal(18,2), is_purchase boolean")


def orders_from_facts(facts: DataFrame) -> DataFrame:
    """One row per order `(one_id, channel, brand_id, source_record_id)` with its net amount.

    An order is a purchase (`is_purchase`) when its net amount (lines minus returns/refunds) is positive; a
    POS return receipt is its own order with a negative net amount that nets the customer's spend.
    `paid_at` is the earliest line time.
    """
    return (facts.groupBy("one_id", "channel", "brand_id", "source_record_id")
            .agg(F.min("store_id").alias("store_id"), F.min("paid_at").alias("paid_at"),
                 F.min("paid_date").alias("paid_date"), F.sum("amount").cast("decimal(18,2)").alias("net_amount"))
            .withColumn("is_purchase", F.col("net_amount") > 0)
            .transform(conform, ORDER_SCHEMA))
