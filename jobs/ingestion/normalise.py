"""Bronze rows (strings as delivered) -> typed, normalised silver rows. Pure `DataFrame -> DataFrame`, built-ins only.

Each `type_<source>` returns the silver columns of docs/tables.md plus helper columns used by validation and
quarantine, all prefixed `_` (dropped before silver is written):
  `_parse_error` (the line did not split / parse), `_raw_record` (the row as delivered, for quarantine_rows),
  `_raw_<field>` (the trimmed raw value of an optional field, so a rule can say "present but does not parse"),
  `_pii` (array of `{kind, value}`: the raw identifiers of the row, for the protected `pii_values` table).

    >>> typed = bronze.transform(type_pos, key=b"...", default_brand_id="main", timezone="Asia/Shanghai")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from cdp.privacy import hash_col, mask_mobile_col, mask_name_col

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

PROVENANCE_HEAD = ("source", "source_record_id", "brand_id")
PROVENANCE_TAIL = ("dt", "source_file", "source_line", "ingested_at", "one_id")
REFERENCE_TAIL = ("dt", "source_file", "source_line", "ingested_at")

# before 11 digits, or a masked 11 (`+86 138****8000`)
MOBILE_PREFIX = r"^(?:\+86|0086|86)(?=1[\d*]{10}$)"
VALID_MOBILE = r"^1[3-9]\d{9}$"
LOCAL_TS_FORMAT = "yyyy-MM-dd HH:mm:ss"
# ISO 8601 / RFC 3339 with an explicit offset: `T` or a space between date and time, offset Z, +08:00, +0800 or +08
ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}(:?\d{2})?)$"
EPOCH_SECONDS = r"^\d{9,10}$"    # 1973-2286
EPOCH_MILLIS = r"^\d{12,13}$"    # the same span in milliseconds (13 digits from 2001): never a seconds value

# Silver column order per table (docs/tables.md); provenance columns wrap the table's own columns.
SILVER_COLUMNS: dict[str, tuple[str, ...]] = {
    "pos": ("order_id", "line_no", "store_id", "paid_at", "member_card_no", "mobile_hash", "mobile_masked",
            "mobile_status", "sku_id", "sku_name", "category", "quantity", "unit_price", "amount", "is_return",
            "pay_method"),
    "miniprogram": ("event_id", "event_type", "event_at", "appid", "openid_hash", "unionid_hash", "mobile_hash",
                    "mobile_masked", "mobile_status", "member_card_no", "order_id", "amount", "items", "coupon_id"),
    "wecom": ("external_userid", "guide_userid", "store_id", "name_masked", "gender", "unionid_hash",
              "remark_mobile_hashes", "remark_mobiles_masked", "tags", "added_at", "last_change_type",
              "last_change_at", "is_active"),
    "ecommerce": ("platform", "shop_id", "order_id", "buyer_id", "receiver_name_masked", "mobile_hash",
                  "mobile_masked", "mobile_status", "province", "city", "paid_at", "sku_id", "sku_name", "category",
                  "quantity", "amount", "status", "member_card_no"),
    "crm": ("member_card_no", "mobile_hash", "mobile_masked", "mobile_status", "name_masked", "gender", "birthday",
            "level", "is_paid_member", "has_app", "join_store_id", "registered_at", "marketing_consent",
            "updated_at"),
    "catalog": ("sku_id", "sku_name", "category", "brand", "list_price"),
    "stores": ("store_id", "store_name", "city", "region"),
}
REFERENCE = ("catalog", "stores")


def silver_columns(source: str) -> tuple[str, ...]:
    """Full column list of the silver table of `source`, provenance included, in contract order."""
    if source in REFERENCE:
        return ("source", "brand_id", *SILVER_COLUMNS[source], *REFERENCE_TAIL)
    return (*PROVENANCE_HEAD, *SILVER_COLUMNS[source], *PROVENANCE_TAIL)


# ---------------------------------------------------------------- column helpers (all Spark built-ins)

def _F():
    from pyspark.sql import functions as F

    return F


def clean(col: Column) -> Column:
    """Trim ASCII/full-width spaces and control characters at both ends; empty -> null."""
    F = _F()
    trimmed = F.regexp_replace(col, r"^[\s\x{3000}\p{Cc}]+|[\s\x{3000}\p{Cc}]+$", "")
    return F.when(trimmed != "", trimmed)


def strip_controls(col: Column) -> Column:
    return _F().regexp_replace(col, r"\p{Cc}", "")


def local_ts(col: Column, timezone: str) -> Column:
    """'YYYY-MM-DD HH:MM:SS' wall-clock time in `timezone` -> UTC timestamp (null when it does not parse)."""
    F = _F()
    return F.to_utc_timestamp(F.to_timestamp(col, LOCAL_TS_FORMAT), timezone)


def iso_ts(col: Column) -> Column:
    """ISO 8601 with an explicit offset (ISO_WITH_OFFSET) -> UTC timestamp; without an offset -> null (the
    wall clock of an unknown zone is not guessed). The text is brought to `yyyy-MM-ddTHH:mm:ss[.f]+hh:mm`
    before Spark's cast, so the accepted forms do not depend on what the cast happens to allow."""
    F = _F()
    canonical = F.regexp_replace(F.regexp_replace(F.regexp_replace(
        col, r"^(\d{4}-\d{2}-\d{2}) ", "$1T"), r"([+-]\d{2})(\d{2})$", "$1:$2"), r"([+-]\d{2})$", "$1:00")
    return F.when(col.rlike(ISO_WITH_OFFSET), canonical.cast("timestamp"))


def epoch_ts(col: Column) -> Column:
    """Epoch seconds (EPOCH_SECONDS) or milliseconds (EPOCH_MILLIS) -> UTC timestamp; anything else -> null."""
    F = _F()
    return (F.when(col.rlike(EPOCH_SECONDS), F.timestamp_seconds(col.cast("long")))
            .when(col.rlike(EPOCH_MILLIS), F.timestamp_millis(col.cast("long"))))


def epoch_or_iso_ts(col: Column) -> Column:
    return _F().coalesce(epoch_ts(col), iso_ts(col))


def to_decimal(col: Column, precision: int = 18, scale: int = 2) -> Column:
    F = _F()
    return F.when(col.rlike(r"^[+-]?(\d+\.?\d*|\.\d+)$"), col.cast(f"decimal({precision},{scale})"))


def to_int(col: Column) -> Column:
    F = _F()
    return F.when(col.rlike(r"^[+-]?\d{1,9}$"), col.cast("int"))


def to_bool(col: Column) -> Column:
    """1/0, true/false, t/f, y/n, yes/no, 是/否; empty -> false; anything else -> null (a rule rejects it)."""
    F = _F()
    value = F.lower(col)
    return (F.when(col.isNull(), F.lit(False))
            .when(value.isin("1", "true", "t", "y", "yes", "是"), F.lit(True))
            .when(value.isin("0", "false", "f", "n", "no", "否"), F.lit(False)))


def to_gender(col: Column) -> Column:
    F = _F()
    value = F.lower(col)
    return (F.when(value.isin("m", "male", "男", "1"), F.lit("M"))
            .when(value.isin("f", "female", "女", "2"), F.lit("F"))
            .otherwise(F.lit("U")))


def clean_mobile(col: Column) -> Column:
    """Full-width digits to ASCII, drop spaces/dashes/dots/brackets, drop a +86 / 86 / 0086 prefix."""
    F = _F()
    ascii_digits = F.translate(col, "０１２３４５６７８９＋－（）", "0123456789+-()")
    stripped = F.regexp_replace(ascii_digits, r"[\s\x{3000}\-.()\[\]]", "")
    return F.regexp_replace(stripped, MOBILE_PREFIX, "")


def mobile_status(cleaned: Column) -> Column:
    F = _F()
    return (F.when(cleaned.isNull() | (cleaned == ""), F.lit("missing"))
            .when(cleaned.contains("*"), F.lit("masked"))
            .when(cleaned.rlike(VALID_MOBILE), F.lit("valid"))
            .otherwise(F.lit("invalid")))


def with_mobile(df: DataFrame, raw: Column, key: bytes) -> DataFrame:
    """Adds `mobile_hash`, `mobile_masked`, `mobile_status` and `_mobile` (the valid 11 digits, for pii_values)."""
    F = _F()
    df = df.withColumn("_mobile_clean", clean_mobile(raw))
    status = mobile_status(F.col("_mobile_clean"))
    df = df.withColumn("mobile_status", status)
    valid = F.when(F.col("mobile_status") == "valid", F.col("_mobile_clean"))
    return (df.withColumn("_mobile", valid)
            .withColumn("mobile_hash", hash_col(F.col("_mobile"), "mobile", key))
            .withColumn("mobile_masked", F.when(F.col("mobile_status") == "valid", mask_mobile_col(F.col("_mobile")))
                        .when(F.col("mobile_status") == "masked", F.col("_mobile_clean")))
            .drop("_mobile_clean"))


def pii_entry(kind: str, value: Column) -> Column:
    F = _F()
    return F.when(value.isNotNull(), F.struct(F.lit(kind).alias("kind"), value.alias("value")))


def pii_array(*entries: Column) -> Column:
    F = _F()
    return F.filter(F.array(*entries), lambda e: e.isNotNull())


def csv_raw_record(named: tuple[str, ...]) -> Column:
    """The delivered row as JSON (named fields + extra columns), or the raw line when it did not split."""
    F = _F()
    as_json = F.to_json(F.struct(*[F.col(c) for c in named], F.col("extra")))
    return F.coalesce(F.col("raw_line"), as_json)


def _provenance(df: DataFrame, source_record_id: Column, default_brand_id: str, brand: Column | None) -> DataFrame:
    F = _F()
    brand_col = F.coalesce(clean(brand), F.lit(default_brand_id)) if brand is not None else F.lit(default_brand_id)
    return (df.withColumn("source_record_id", source_record_id)
            .withColumn("brand_id", brand_col)
            .withColumn("one_id", F.lit(None).cast("string")))


# ---------------------------------------------------------------- per source

def type_pos(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str, named: tuple[str, ...]) -> DataFrame:
    F = _F()
    c = {name: clean(F.col(name)) for name in named}
    df = bronze.select(
        "*",
        c["order_id"].alias("_order_id"), to_int(c["line_no"]).alias("_line_no"),
    )
    df = (df.withColumn("_raw_record", csv_raw_record(named))
          .withColumn("_parse_error", F.col("parse_error"))
          .withColumn("order_id", F.col("_order_id"))
          .withColumn("line_no", F.col("_line_no"))
          .withColumn("store_id", c["store_id"])
          .withColumn("paid_at", local_ts(c["paid_at"], timezone))
          .withColumn("member_card_no", c["member_card_no"])
          .transform(with_mobile, c["mobile"], key)
          .withColumn("sku_id", c["sku_id"])
          .withColumn("sku_name", strip_controls(c["sku_name"]))
          .withColumn("category", c["category"])
          .withColumn("quantity", to_decimal(c["quantity"], 12, 3))
          .withColumn("unit_price", to_decimal(c["unit_price"]))
          .withColumn("amount", to_decimal(c["amount"]))
          .withColumn("is_return", F.col("amount") < 0)
          .withColumn("pay_method", c["pay_method"])
          .withColumn("_pii", pii_array(pii_entry("mobile", F.col("_mobile")))))
    return _provenance(df, F.col("order_id"), default_brand_id, F.col("brand_id"))


def type_ecommerce(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str,
                   named: tuple[str, ...]) -> DataFrame:
    F = _F()
    c = {name: clean(F.col(name)) for name in named}
    name = strip_controls(c["receiver_name"])
    df = (bronze.withColumn("_raw_record", csv_raw_record(named))
          .withColumn("_parse_error", F.col("parse_error"))
          .withColumn("platform", F.lower(c["platform"]))
          .withColumn("shop_id", c["shop_id"])
          .withColumn("order_id", c["order_id"])
          .withColumn("buyer_id", c["buyer_id"])
          .withColumn("_name", clean(name))
          .withColumn("receiver_name_masked", mask_name_col(F.col("_name")))
          .transform(with_mobile, c["receiver_mobile"], key)
          .withColumn("province", c["province"])
          .withColumn("city", c["city"])
          .withColumn("paid_at", local_ts(c["paid_at"], timezone))
          .withColumn("sku_id", c["sku_id"])
          .withColumn("sku_name", strip_controls(c["sku_name"]))
          .withColumn("category", c["category"])
          .withColumn("quantity", to_decimal(c["quantity"], 12, 3))
          .withColumn("amount", to_decimal(c["amount"]))
          .withColumn("status", F.lower(c["status"]))
          .withColumn("member_card_no", c["member_card_no"])
          .withColumn("_pii", pii_array(pii_entry("mobile", F.col("_mobile")), pii_entry("name", F.col("_name")))))
    return _provenance(df, F.concat_ws(":", F.col("platform"), F.col("order_id")), default_brand_id, F.col("brand_id"))


def type_crm(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str, named: tuple[str, ...]) -> DataFrame:
    F = _F()
    c = {name: clean(F.col(name)) for name in named}
    df = (bronze.withColumn("_raw_record", csv_raw_record(named))
          .withColumn("_parse_error", F.col("parse_error"))
          .withColumn("member_card_no", c["member_card_no"])
          .transform(with_mobile, c["mobile"], key)
          .withColumn("_name", clean(strip_controls(c["name"])))
          .withColumn("name_masked", mask_name_col(F.col("_name")))
          .withColumn("gender", to_gender(c["gender"]))
          .withColumn("_raw_birthday", c["birthday"])
          .withColumn("birthday", F.to_date(c["birthday"], "yyyy-MM-dd"))
          .withColumn("level", c["level"])
          .withColumn("_raw_is_paid_member", c["is_paid_member"])
          .withColumn("is_paid_member", to_bool(c["is_paid_member"]))
          .withColumn("_raw_has_app", c["has_app"])
          .withColumn("has_app", to_bool(c["has_app"]))
          .withColumn("join_store_id", c["join_store_id"])
          .withColumn("_raw_registered_at", c["registered_at"])
          .withColumn("registered_at", local_ts(c["registered_at"], timezone))
          .withColumn("marketing_consent", to_bool(c["marketing_consent"]))
          .withColumn("updated_at", local_ts(c["updated_at"], timezone))
          .withColumn("_pii", pii_array(pii_entry("mobile", F.col("_mobile")), pii_entry("name", F.col("_name")))))
    return _provenance(df, F.col("member_card_no"), default_brand_id, F.col("brand_id"))


def _type_reference(bronze: DataFrame, named: tuple[str, ...], default_brand_id: str,
                    columns: Callable[[dict[str, Column]], dict[str, Column]]) -> DataFrame:
    """Catalog and stores: the typed `columns` (built from the cleaned fields), no personal data, and `brand_id`
    defaulted; no `source_record_id` / `one_id` (they are not customer records)."""
    F = _F()
    c = {name: clean(F.col(name)) for name in named}
    df = (bronze.withColumn("_raw_record", csv_raw_record(named))
          .withColumn("_parse_error", F.col("parse_error"))
          .withColumns(columns(c))
          .withColumn("_pii", pii_array(F.lit(None)).cast("array<struct<kind:string,value:string>>")))
    return df.withColumn("brand_id", F.coalesce(clean(F.col("brand_id")), F.lit(default_brand_id)))


def type_catalog(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str,
                 named: tuple[str, ...]) -> DataFrame:
    return _type_reference(bronze, named, default_brand_id, lambda c: {
        "sku_id": c["sku_id"], "sku_name": strip_controls(c["sku_name"]), "category": c["category"],
        "brand": c["brand"], "list_price": to_decimal(c["list_price"])})


def type_stores(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str,
                named: tuple[str, ...]) -> DataFrame:
    return _type_reference(bronze, named, default_brand_id, lambda c: {
        "store_id": c["store_id"], "store_name": strip_controls(c["store_name"]), "city": c["city"],
        "region": c["region"]})


MINIPROGRAM_SCHEMA = ("struct<event_id:string, event_type:string, event_time:string, appid:string, openid:string, "
                      "unionid:string, mobile:string, member_card_no:string, order_id:string, amount:string, "
                      "brand_id:string, items:array<struct<sku_id:string, quantity:string, price:string>>, "
                      "coupon_id:string>")
WECOM_SCHEMA = ("struct<change_type:string, event_time:string, brand_id:string, "
                "external_contact:struct<external_userid:string, name:string, gender:string, unionid:string>, "
                "follow_user:struct<userid:string, remark_mobiles:array<string>, createtime:string, "
                "tags:array<struct<group_name:string, tag_name:string>>, state:string>>")


def _unreadable(path: str, parsed: str) -> Column:
    """1 when the raw record has a non-null value at JSON `path` that the typed parse could not read (a string where
    the schema has a list, a list of strings where it has objects: from_json turns the field into null), else 0.
    The raw record is parsed again only when the typed field is null and its name occurs in the text (most
    mini-program events carry no `items`: a substring test spares them a second JSON parse)."""
    F = _F()
    name = path.rsplit(".", 1)[-1]
    return F.when(F.col(parsed).isNull() & F.col("_raw_record").contains(f'"{name}"')
                  & F.get_json_object(F.col("_raw_record"), path).isNotNull(), 1).otherwise(0)


def _parsed_json(bronze: DataFrame, schema: str) -> DataFrame:
    F = _F()
    parsed = F.from_json(F.col("raw_record"), schema, {"mode": "PERMISSIVE"})
    return (bronze.withColumn("_j", F.when(F.col("parse_error").isNull(), parsed))
            .withColumn("_raw_record", F.col("raw_record"))
            .withColumn("_parse_error", F.col("parse_error")))


def type_miniprogram(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str,
                     named: tuple[str, ...] = ()) -> DataFrame:
    F = _F()
    j = lambda name: clean(F.col(f"_j.{name}"))  # noqa: E731
    df = _parsed_json(bronze, MINIPROGRAM_SCHEMA)
    items = F.transform(F.col("_j.items"), lambda i: F.struct(
        clean(i["sku_id"]).alias("sku_id"),
        to_decimal(clean(i["quantity"]), 12, 3).alias("quantity"),
        to_decimal(clean(i["price"])).alias("price")))
    df = (df.withColumn("event_id", j("event_id"))
          .withColumn("event_type", j("event_type"))
          .withColumn("event_at", epoch_or_iso_ts(j("event_time")))
          .withColumn("appid", j("appid"))
          .withColumn("_openid", j("openid"))
          .withColumn("_unionid", j("unionid"))
          .withColumn("openid_hash", hash_col(F.col("_openid"), "openid", key))
          .withColumn("unionid_hash", hash_col(F.col("_unionid"), "unionid", key))
          .transform(with_mobile, j("mobile"), key)
          .withColumn("member_card_no", j("member_card_no"))
          .withColumn("order_id", j("order_id"))
          .withColumn("_raw_amount", j("amount"))
          .withColumn("amount", to_decimal(j("amount")))
          .withColumn("items", items)
          .withColumn("coupon_id", j("coupon_id"))  # coupon_redeem: the redeemed coupon (optional, trimmed)
          .withColumn("_bad_items", F.when(F.col("items").isNull(), _unreadable("$.items", "_j.items"))
                      # a price that is delivered but not a number (`¥19.9`) fails too: it would be lost
                      .otherwise(F.size(F.filter(F.arrays_zip(F.col("items").alias("t"), F.col("_j.items").alias("r")),
                                                 lambda z: z["t"]["sku_id"].isNull() | z["t"]["quantity"].isNull()
                                                 | (z["t"]["quantity"] <= 0)
                                                 | (z["t"]["price"].isNull() & clean(z["r"]["price"]).isNotNull())))))
          .withColumn("_pii", pii_array(pii_entry("mobile", F.col("_mobile")), pii_entry("openid", F.col("_openid")),
                                        pii_entry("unionid", F.col("_unionid")))))
    return _provenance(df, F.col("event_id"), default_brand_id, F.col("_j.brand_id"))


def type_wecom(bronze: DataFrame, key: bytes, default_brand_id: str, timezone: str,
               named: tuple[str, ...] = ()) -> DataFrame:
    F = _F()
    df = _parsed_json(bronze, WECOM_SCHEMA)
    contact = lambda name: clean(F.col(f"_j.external_contact.{name}"))  # noqa: E731
    follow = lambda name: clean(F.col(f"_j.follow_user.{name}"))  # noqa: E731
    remarks = F.transform(F.coalesce(F.col("_j.follow_user.remark_mobiles"), F.array().cast("array<string>")),
                          lambda m: F.struct(clean_mobile(clean(m)).alias("c")))
    remarks = F.transform(remarks, lambda r: F.struct(r["c"].alias("c"), mobile_status(r["c"]).alias("s")))
    valid = F.transform(F.filter(remarks, lambda r: r["s"] == "valid"), lambda r: r["c"])
    change = F.lower(clean(F.col("_j.change_type")))
    df = (df.withColumn("external_userid", contact("external_userid"))
          .withColumn("guide_userid", follow("userid"))
          .withColumn("store_id", follow("state"))
          .withColumn("_name", clean(strip_controls(F.col("_j.external_contact.name"))))
          .withColumn("name_masked", mask_name_col(F.col("_name")))
          # absent gender stays null: the pair keeps its earlier one, else U (ingest.carry_absent_fields)
          .withColumn("gender", F.when(contact("gender").isNull(), F.lit(None).cast("string"))
                      .when(contact("gender") == "1", F.lit("M"))
                      .when(contact("gender") == "2", F.lit("F")).otherwise(to_gender(contact("gender"))))
          .withColumn("_unionid", contact("unionid"))
          .withColumn("unionid_hash", hash_col(F.col("_unionid"), "unionid", key))
          .withColumn("_remark_mobiles", F.array_distinct(valid))
          # absent remark_mobiles (a delete carries none) stay null: the pair keeps its earlier ones (ingest)
          .withColumn("remark_mobile_hashes", F.when(F.col("_j.follow_user.remark_mobiles").isNotNull(), F.transform(
              F.col("_remark_mobiles"), lambda m: hash_col(m, "mobile", key))))
          .withColumn("remark_mobiles_masked", F.when(F.col("_j.follow_user.remark_mobiles").isNotNull(),
                                                      F.array_distinct(F.transform(
              F.filter(remarks, lambda r: r["s"].isin("valid", "masked")),
              lambda r: F.when(r["s"] == "valid", mask_mobile_col(r["c"])).otherwise(r["c"])))))
          .withColumn("tags", F.col("_j.follow_user.tags"))
          .withColumn("_bad_lists", _unreadable("$.follow_user.remark_mobiles", "_j.follow_user.remark_mobiles")
                      + _unreadable("$.follow_user.tags", "_j.follow_user.tags"))
          .withColumn("_raw_added_at", follow("createtime"))
          .withColumn("added_at", epoch_ts(follow("createtime")))
          .withColumn("last_change_type", change)
          .withColumn("last_change_at", epoch_or_iso_ts(clean(F.col("_j.event_time"))))
          .withColumn("is_active", ~change.isin("del_external_contact", "del_follow_user"))
          .withColumn("_pii", F.concat(
              pii_array(pii_entry("unionid", F.col("_unionid")), pii_entry("name", F.col("_name"))),
              F.transform(F.col("_remark_mobiles"), lambda m: F.struct(F.lit("mobile").alias("kind"),
                                                                        m.alias("value"))))))
    return _provenance(df, F.col("external_userid"), default_brand_id, F.col("_j.brand_id"))


TYPERS: dict[str, Callable[..., DataFrame]] = {
    "pos": type_pos, "miniprogram": type_miniprogram, "wecom": type_wecom, "ecommerce": type_ecommerce,
    "crm": type_crm, "catalog": type_catalog, "stores": type_stores,
}
