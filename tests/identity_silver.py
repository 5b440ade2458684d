"""Test helper: write tiny silver tables (the docs/tables.md schemas) and pii_values to a tmp lake.

Rows are dicts with raw identifiers (`mobile`, `unionid`, `openid`, `remark_mobiles`); the helper hashes them with
the test secret exactly like ingestion does (`cdp.privacy.hash_value`), masks mobiles, and records the raw values
in the protected `pii_values` table so the identity stage's blocklist can check them.
"""
from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

from cdp.privacy import hash_value, mask_mobile

PROVENANCE = ("source string, source_record_id string, brand_id string, dt date, source_file string, source_line int, "
              "ingested_at timestamp, one_id string")
SCHEMAS = {
    "silver_pos_lines": ("order_id string, line_no int, store_id string, paid_at timestamp, member_card_no string, "
                         "mobile_hash string, mobile_masked string, mobile_status string, sku_id string, "
                         "sku_name string, category string, quantity decimal(12,3), unit_price decimal(18,2), "
                         "amount decimal(18,2), is_return boolean, pay_method string"),
    "silver_miniprogram_events": ("event_id string, event_type string, event_at timestamp, appid string, "
                                  "openid_hash string, unionid_hash string, mobile_hash string, mobile_masked string, "
                                  "mobile_status string, member_card_no string, order_id string, amount decimal(18,2), "
                                  "items array<struct<sku_id:string,quantity:decimal(12,3),price:decimal(18,2)>>"),
    "silver_wecom_contacts": ("external_userid string, guide_userid string, store_id string, name_masked string, "
                              "gender string, unionid_hash string, remark_mobile_hashes array<string>, "
                              "remark_mobiles_masked array<string>, tags array<struct<group_name:string,tag_name:string>>, "
                              "added_at timestamp, last_change_type string, last_change_at timestamp, is_active boolean"),
    "silver_ecommerce_lines": ("platform string, shop_id string, order_id string, buyer_id string, "
                               "receiver_name_masked string, mobile_hash string, mobile_masked string, "
                               "mobile_status string, province string, city string, paid_at timestamp, sku_id string, "
                               "sku_name string, category string, quantity decimal(12,3), amount decimal(18,2), "
                               "status string, member_card_no string"),
    "silver_crm_members": ("member_card_no string, mobile_hash string, mobile_masked string, mobile_status string, "
                           "name_masked string, gender string, birthday date, level string, is_paid_member boolean, "
                           "has_app boolean, join_store_id string, registered_at timestamp, marketing_consent boolean, "
                           "updated_at timestamp"),
}
SOURCE_OF = {"silver_pos_lines": "pos", "silver_miniprogram_events": "miniprogram", "silver_wecom_contacts": "wecom",
             "silver_ecommerce_lines": "ecommerce", "silver_crm_members": "crm"}
RECORD_ID = {"silver_pos_lines": "order_id", "silver_miniprogram_events": "event_id",
             "silver_wecom_contacts": "external_userid", "silver_crm_members": "member_card_no"}


def _key() -> bytes:
    return os.environ["CDP_HMAC_SECRET"].encode("utf-8")


def h(kind: str, value: str) -> str:
    return hash_value(value, kind, _key())


def _columns(ddl: str) -> list[str]:
    depth, cols, current = 0, [], ""
    for ch in ddl:
        depth += ch in "<("
        depth -= ch in ">)"
        if ch == "," and depth == 0:
            cols.append(current.strip().split(" ")[0])
            current = ""
        else:
            current += ch
    cols.append(current.strip().split(" ")[0])
    return cols


def silver_rows(table: str, rows: list[dict], day: dt.date, pii: dict) -> list[tuple]:
    """Complete the given rows to the contract's columns (hashing raw identifiers, filling provenance)."""
    cols = _columns(PROVENANCE) + _columns(SCHEMAS[table])
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        mobile = row.pop("mobile", None)
        if mobile:
            row.update(mobile_hash=h("mobile", mobile), mobile_masked=mask_mobile(mobile), mobile_status="valid")
            pii[("mobile", row["mobile_hash"])] = mobile
        for kind in ("unionid", "openid"):
            raw = row.pop(kind, None)
            if raw:
                row[f"{kind}_hash"] = h(kind, raw)
                pii[(kind, row[f"{kind}_hash"])] = raw
        remarks = row.pop("remark_mobiles", None)
        if remarks is not None:
            row["remark_mobile_hashes"] = [h("mobile", m) for m in remarks]
            row["remark_mobiles_masked"] = [mask_mobile(m) for m in remarks]
            pii.update({("mobile", h("mobile", m)): m for m in remarks})
        if table == "silver_ecommerce_lines":
            rid = f"{row['platform']}:{row['order_id']}"
        else:
            rid = row[RECORD_ID[table]]
        row.setdefault("brand_id", "main")
        row.update(source=SOURCE_OF[table], source_record_id=rid, dt=day, source_file=f"{table}.x",
                   source_line=i + 1, ingested_at=dt.datetime.combine(day, dt.time(1)))
        for money in ("amount", "unit_price", "quantity"):
            if money in row and row[money] is not None:
                row[money] = Decimal(str(row[money]))
        unknown = set(row) - set(cols)
        assert not unknown, f"{table}: unknown columns {unknown}"
        out.append(tuple(row.get(c) for c in cols))
    return out


def write_silver(spark, settings, day: dt.date, tables: dict[str, list[dict]]) -> None:
    """Append one landing day of rows to the silver tables (+ pii_values), as ingestion would."""
    from cdp.lake import append_table

    pii: dict = {}
    for table, rows in tables.items():
        schema = PROVENANCE + ", " + SCHEMAS[table]
        df = spark.createDataFrame(silver_rows(table, rows, day, pii), schema)
        append_table(df, settings, table)
    if pii:
        first = dt.datetime.combine(day, dt.time())
        pv = spark.createDataFrame([(k, hsh, v, first) for (k, hsh), v in sorted(pii.items())],
                                   "kind string, value_hash string, value string, first_seen_at timestamp")
        from cdp.lake import merge_table

        merge_table(spark, pv, settings, "pii_values", keys=["kind", "value_hash"], update=False)
