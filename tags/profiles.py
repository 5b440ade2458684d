"""gold_profiles: one row per one_id, built from silver records and gold_order_facts (current state).

Steps (each a pure DataFrame transform, combined by `build_profiles`):
1. `identifier_counts`: distinct identifiers per type (mobiles, member cards, unionids, openids, WeCom external
   users, marketplace buyers) counted from the hashed silver columns; no raw values.
2. `survive_attributes`: name, gender, birthday, city chosen among conflicting sources by the declared rules of
   conf/survivorship.yaml (source priority / most recent / most frequent; ties broken deterministically).
3. `memberships`: one struct per brand member card (一码双会员: a person may hold cards of several brands).
4. `home_stores`: the POS store with the most orders (ties: latest order, then store_id).
5. `wecom_guides`: active store guides who added the person on WeCom.
6. `purchase_summary`: channels, first/last purchase, order count and net spend, in total and per channel;
   an "order" is a distinct `(channel, brand_id, source_record_id)` with a positive net amount.
"""
from __future__ import annotations

import datetime as dt
from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import Window
from pyspark.sql import functions as F

from cdp.tags.facts import CHANNELS, conform, orders_from_facts, schema_fields

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from cdp.tags.profile_rules import SurvivorshipRules

IDENTIFIER_KINDS = ("mobile", "member_card", "unionid", "openid", "external_userid", "buyer_id")
SURVIVED_ATTRIBUTES = ("name_masked", "gender", "birthday", "city")

PROFILE_SCHEMA = (
    "one_id string, mobile_count int, member_card_count int, unionid_count int, openid_count int, "
    "external_userid_count int, buyer_id_count int, name_masked string, gender string, birthday date, city string, "
    "memberships array<struct<brand_id:string,member_card_no:string,level:string,is_paid_member:boolean,"
    "marketing_consent:boolean,registered_at:timestamp>>, is_member boolean, is_paid_member boolean, "
    "has_marketing_consent boolean, has_app boolean, home_store_id string, home_city string, "
    "wecom_guide_userids array<string>, is_wecom_added boolean, channels array<string>, "
    "first_purchase_at timestamp, last_purchase_at timestamp, first_purchase_date date, last_purchase_date date, "
    "order_count int, total_amount decimal(18,2), order_count_pos int, order_count_miniprogram int, "
    "order_count_ecommerce int, amount_pos decimal(18,2), amount_miniprogram decimal(18,2), "
    "amount_ecommerce decimal(18,2), as_of_date date")
PROFILE_COLUMNS = tuple(name for name, _ in schema_fields(PROFILE_SCHEMA))


def _ids(df: DataFrame, kind: str, value: Column) -> DataFrame:
    return df.select("one_id", F.lit(kind).alias("kind"), value.alias("value"))


def identifier_counts(pos: DataFrame, miniprogram: DataFrame, wecom: DataFrame, ecommerce: DataFrame,
                      crm: DataFrame) -> DataFrame:
    """One row per one_id with `<kind>_count` = distinct identifiers of that kind seen in silver.

    Member cards are per brand (`brand_id:member_card_no`), marketplace buyers per platform.
    """
    card = F.concat_ws(":", "brand_id", "member_card_no")
    parts = [
        _ids(pos, "mobile", F.col("mobile_hash")), _ids(miniprogram, "mobile", F.col("mobile_hash")),
        _ids(ecommerce, "mobile", F.col("mobile_hash")), _ids(crm, "mobile", F.col("mobile_hash")),
        _ids(wecom, "mobile", F.explode_outer("remark_mobile_hashes")),
        _ids(crm.where(F.col("member_card_no").isNotNull()), "member_card", card),
        _ids(pos.where(F.col("member_card_no").isNotNull()), "member_card", card),
        _ids(miniprogram.where(F.col("member_card_no").isNotNull()), "member_card", card),
        _ids(ecommerce.where(F.col("member_card_no").isNotNull()), "member_card", card),
        _ids(miniprogram, "unionid", F.col("unionid_hash")), _ids(wecom, "unionid", F.col("unionid_hash")),
        _ids(miniprogram, "openid", F.col("openid_hash")),
        _ids(wecom, "external_userid", F.col("external_userid")),
        _ids(ecommerce.where(F.col("buyer_id").isNotNull()), "buyer_id", F.concat_ws(":", "platform", "buyer_id")),
    ]
    ids = reduce(lambda a, b: a.unionByName(b), parts).where(F.col("one_id").isNotNull() & F.col("value").isNotNull())
    counts = ids.groupBy("one_id").pivot("kind", list(IDENTIFIER_KINDS)).agg(F.countDistinct("value"))
    return counts.select("one_id", *[F.coalesce(F.col(k), F.lit(0)).cast("int").alias(f"{k}_count")
                                     for k in IDENTIFIER_KINDS])


def attribute_candidates(pos: DataFrame, wecom: DataFrame, ecommerce: DataFrame, crm: DataFrame,
                         stores: DataFrame) -> DataFrame:
    """Long table of candidate values: one_id, attribute, value (string), source, observed_at, record_key.

    `record_key` identifies the record that carried the value, so `most_frequent` counts records (a POS order
    with ten lines counts once).
    """
    store_city = F.broadcast(stores.select("store_id", F.col("city").alias("store_city")))

    def cand(df: DataFrame, source: str, attribute: str, value: Column, observed: Column, key: Column) -> DataFrame:
        return df.select("one_id", F.lit(attribute).alias("attribute"), value.cast("string").alias("value"),
                         F.lit(source).alias("source"), observed.alias("observed_at"), key.alias("record_key"))

    crm_key = F.concat_ws(":", "brand_id", "member_card_no")
    crm_city = crm.join(store_city, crm["join_store_id"] == store_city["store_id"], "left")
    wecom_at = F.coalesce("last_change_at", "added_at")
    wecom_key = F.concat_ws(":", "external_userid", "guide_userid")
    ecom_key = F.concat_ws(":", "platform", "order_id")
    pos_city = pos.join(store_city, "store_id", "left")
    parts = [
        cand(crm, "crm", "name_masked", F.col("name_masked"), F.col("updated_at"), crm_key),
        cand(crm, "crm", "gender", F.col("gender"), F.col("updated_at"), crm_key),
        cand(crm, "crm", "birthday", F.col("birthday"), F.col("updated_at"), crm_key),
        cand(crm_city, "crm", "city", F.col("store_city"), F.col("updated_at"), crm_key),
        cand(wecom, "wecom", "name_masked", F.col("name_masked"), wecom_at, wecom_key),
        cand(wecom, "wecom", "gender", F.col("gender"), wecom_at, wecom_key),
        cand(ecommerce, "ecommerce", "name_masked", F.col("receiver_name_masked"), F.col("paid_at"), ecom_key),
        cand(ecommerce, "ecommerce", "city", F.col("city"), F.col("paid_at"), ecom_key),
        cand(pos_city, "pos", "city", F.col("store_city"), F.col("paid_at"),
             F.concat_ws(":", "brand_id", "order_id")),
    ]
    union = reduce(lambda a, b: a.unionByName(b), parts)
    return union.where(F.col("one_id").isNotNull() & F.col("value").isNotNull() & (F.trim("value") != ""))


def survive_attributes(candidates: DataFrame, rules: SurvivorshipRules) -> DataFrame:
    """One row per one_id with the winning value of each attribute under `rules` (null when no candidate).

    1. keep candidates from the attribute's allowed sources, drop `ignore_values`;
    2. aggregate per (one_id, attribute, source, value): records, last observation;
    3. order per (one_id, attribute) by the rule's keys (see conf/survivorship.yaml), all ending in
       `value` ascending so equal keys give the same winner on every run; keep the first.
    """
    allowed = F.lit(False)
    priority = F.lit(None).cast("int")
    rule_kind = F.lit(None).cast("string")
    for name, rule in rules.attributes.items():
        is_attr = F.col("attribute") == name
        ok = F.col("source").isin(*rule.sources)
        if rule.ignore_values:
            ok = ok & ~F.col("value").isin(*rule.ignore_values)
        allowed = allowed | (is_attr & ok)
        for index, source in enumerate(rule.sources):
            priority = F.when(is_attr & (F.col("source") == source), F.lit(index)).otherwise(priority)
        rule_kind = F.when(is_attr, F.lit(rule.rule)).otherwise(rule_kind)

    per_source = (candidates.where(allowed)
                  .groupBy("one_id", "attribute", "source", "value")
                  .agg(F.countDistinct("record_key").alias("records"), F.max("observed_at").alias("last_at"))
                  .withColumn("priority", priority).withColumn("rule", rule_kind))
    by_value = Window.partitionBy("one_id", "attribute", "value")
    per_source = (per_source.withColumn("value_records", F.sum("records").over(by_value))
                  .withColumn("value_last_at", F.max("last_at").over(by_value)))
    is_rule = {name: F.col("rule") == name for name in ("source_priority", "most_recent", "most_frequent")}
    # Sort keys per rule (ascending); nulls (unused keys) are equal for all rows of one attribute.
    key1 = (F.when(is_rule["source_priority"], F.col("priority"))
            .when(is_rule["most_frequent"], -F.col("value_records")))
    key2 = F.when(is_rule["most_recent"] | is_rule["source_priority"], F.col("last_at")).when(
        is_rule["most_frequent"], F.col("value_last_at"))
    key3 = F.when(is_rule["most_recent"] | is_rule["most_frequent"], F.col("priority"))
    order = Window.partitionBy("one_id", "attribute").orderBy(
        key1.asc_nulls_last(), key2.desc_nulls_last(), key3.asc_nulls_last(), F.col("value").asc())
    winners = per_source.withColumn("rank", F.row_number().over(order)).where(F.col("rank") == 1)
    wide = winners.groupBy("one_id").pivot("attribute", list(SURVIVED_ATTRIBUTES)).agg(F.first("value"))
    return wide.select("one_id", "name_masked", "gender", F.col("birthday").cast("date").alias("birthday"), "city")


def memberships(crm: DataFrame) -> DataFrame:
    """One row per one_id with member cards of any brand: memberships array (sorted by brand, card) and flags."""
    card = F.struct("brand_id", "member_card_no", "level", F.coalesce("is_paid_member", F.lit(False)).alias(
        "is_paid_member"), F.coalesce("marketing_consent", F.lit(False)).alias("marketing_consent"), "registered_at")
    return (crm.where(F.col("one_id").isNotNull())
            .groupBy("one_id")
            .agg(F.sort_array(F.collect_list(card)).alias("memberships"),
                 F.max(F.coalesce("is_paid_member", F.lit(False))).alias("is_paid_member"),
                 F.max(F.coalesce("marketing_consent", F.lit(False))).alias("has_marketing_consent"),
                 F.max(F.coalesce("has_app", F.lit(False))).alias("has_app")))


def home_stores(orders: DataFrame, stores: DataFrame) -> DataFrame:
    """One row per POS buyer: the store with most purchase orders (ties: latest order, then lowest store_id)."""
    per_store = (orders.where((F.col("channel") == "pos") & F.col("is_purchase") & F.col("store_id").isNotNull())
                 .groupBy("one_id", "store_id").agg(F.count("*").alias("n"), F.max("paid_at").alias("last_at")))
    order = Window.partitionBy("one_id").orderBy(F.col("n").desc(), F.col("last_at").desc(), F.col("store_id"))
    home = per_store.withColumn("rank", F.row_number().over(order)).where(F.col("rank") == 1)
    return (home.join(F.broadcast(stores.select("store_id", F.col("city").alias("home_city"))), "store_id", "left")
            .select("one_id", F.col("store_id").alias("home_store_id"), "home_city"))


def wecom_guides(wecom: DataFrame) -> DataFrame:
    """One row per one_id with active WeCom guides (sorted userids)."""
    return (wecom.where(F.col("one_id").isNotNull() & F.coalesce("is_active", F.lit(True)))
            .groupBy("one_id").agg(F.sort_array(F.collect_set("guide_userid")).alias("wecom_guide_userids")))


def purchase_summary(orders: DataFrame) -> DataFrame:
    """One row per one_id with orders: channels, first/last purchase, counts and net spend (total, per channel)."""
    purchase = F.col("is_purchase")
    aggs = [
        F.sort_array(F.collect_set(F.when(purchase, F.col("channel")))).alias("channels"),
        F.min(F.when(purchase, F.col("paid_at"))).alias("first_purchase_at"),
        F.max(F.when(purchase, F.col("paid_at"))).alias("last_purchase_at"),
        F.min(F.when(purchase, F.col("paid_date"))).alias("first_purchase_date"),
        F.max(F.when(purchase, F.col("paid_date"))).alias("last_purchase_date"),
        F.sum(purchase.cast("int")).cast("int").alias("order_count"),
        F.sum("net_amount").cast("decimal(18,2)").alias("total_amount"),
    ]
    for channel in CHANNELS:
        in_channel = F.col("channel") == channel
        aggs.append(F.sum((purchase & in_channel).cast("int")).cast("int").alias(f"order_count_{channel}"))
        aggs.append(F.coalesce(F.sum(F.when(in_channel, F.col("net_amount"))), F.lit(0))
                    .cast("decimal(18,2)").alias(f"amount_{channel}"))
    return orders.groupBy("one_id").agg(*aggs)


def build_profiles(one_ids: DataFrame, pos: DataFrame, miniprogram: DataFrame, wecom: DataFrame,
                   ecommerce: DataFrame, crm: DataFrame, stores: DataFrame, facts: DataFrame,
                   rules: SurvivorshipRules, as_of_date: dt.date) -> DataFrame:
    """gold_profiles as of `as_of_date`: one row per one_id of `one_ids` (plus any one_id seen in silver).

    Facts after `as_of_date` are ignored, so a rerun for a past date gives that date's purchase summary.
    """
    orders = orders_from_facts(facts.where(F.col("paid_date") <= F.lit(as_of_date)))
    silver_ids = [df.select("one_id") for df in (pos, miniprogram, wecom, ecommerce, crm)]
    everyone = (reduce(lambda a, b: a.unionByName(b), [one_ids.select("one_id"), *silver_ids])
                .where(F.col("one_id").isNotNull()).distinct())
    candidates = attribute_candidates(pos, wecom, ecommerce, crm, stores)
    profile = (everyone
               .join(identifier_counts(pos, miniprogram, wecom, ecommerce, crm), "one_id", "left")
               .join(survive_attributes(candidates, rules), "one_id", "left")
               .join(memberships(crm), "one_id", "left")
               .join(home_stores(orders, stores), "one_id", "left")
               .join(wecom_guides(wecom), "one_id", "left")
               .join(purchase_summary(orders), "one_id", "left"))
    zero_int = [f"{k}_count" for k in IDENTIFIER_KINDS] + ["order_count"] + [f"order_count_{c}" for c in CHANNELS]
    zero_amount = ["total_amount"] + [f"amount_{c}" for c in CHANNELS]
    empty_cards = F.array().cast(
        "array<struct<brand_id:string,member_card_no:string,level:string,is_paid_member:boolean,"
        "marketing_consent:boolean,registered_at:timestamp>>")
    profile = profile.select(
        "*",
        F.coalesce("memberships", empty_cards).alias("_memberships"),
        F.coalesce("wecom_guide_userids", F.array().cast("array<string>")).alias("_guides"),
        F.coalesce("channels", F.array().cast("array<string>")).alias("_channels"),
    )
    out = profile.select(
        "one_id", *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in zero_int[:6]],
        "name_masked", F.coalesce("gender", F.lit("U")).alias("gender"), "birthday", "city",
        F.col("_memberships").alias("memberships"), (F.size("_memberships") > 0).alias("is_member"),
        F.coalesce("is_paid_member", F.lit(False)).alias("is_paid_member"),
        F.coalesce("has_marketing_consent", F.lit(False)).alias("has_marketing_consent"),
        F.coalesce("has_app", F.lit(False)).alias("has_app"), "home_store_id", "home_city",
        F.col("_guides").alias("wecom_guide_userids"), (F.size("_guides") > 0).alias("is_wecom_added"),
        F.col("_channels").alias("channels"),
        "first_purchase_at", "last_purchase_at", "first_purchase_date", "last_purchase_date",
        *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in zero_int[6:7]],
        *[F.coalesce(F.col(c), F.lit(0)).cast("decimal(18,2)").alias(c) for c in zero_amount[:1]],
        *[F.coalesce(F.col(c), F.lit(0)).cast("int").alias(c) for c in zero_int[7:]],
        *[F.coalesce(F.col(c), F.lit(0)).cast("decimal(18,2)").alias(c) for c in zero_amount[1:]],
        F.lit(as_of_date).cast("date").alias("as_of_date"))
    return conform(out, PROFILE_SCHEMA)
