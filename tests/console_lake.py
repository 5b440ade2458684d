"""A tiny lake for the console tests: six customers in the gold/silver contract (docs/tables.md).

Why these six (as of 2026-06-30, behaviour window 180 days => paid_date > 2026-01-01):
  OID_A  bought 巨峰葡萄 at store S1 (pos) 30 days ago; consent; WeCom guide G1          -> in the Kyoho segment
  OID_B  bought 巨峰葡萄 and 黑藤巨峰                                                       -> out (bought black-vine)
  OID_C  bought 巨峰葡萄 200 days ago only                                                 -> out (outside 180 days)
  OID_D  bought 巨峰葡萄 in the mini-program 10 days ago; NO consent                        -> in, but not exported
  OID_E  prospect, no purchase                                                             -> out
  OID_F  bought 巨峰葡萄 on Tmall 100 days ago; consent; WeCom guide G2 whose external_userid
         starts with "=" (formula injection)                                               -> in, exported escaped
So the segment "bought 巨峰葡萄 but never 黑藤巨峰 in 180 days" holds exactly A, D, F; its WeCom export holds
A and F (D lacks consent).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from cdp.lake import overwrite_table
from cdp.privacy import hash_value, load_secret
from cdp.tags.engine import MODEL_SCORES_SCHEMA
from cdp.tags.facts import FACT_SCHEMA
from cdp.tags.lifecycle import LIFECYCLE_SCHEMA, TRANSITION_SCHEMA
from cdp.tags.profiles import PROFILE_SCHEMA
from cdp.tags.rfm import RFM_SCHEMA

AS_OF = dt.date(2026, 6, 30)
KYOHO, BLACK = "S20101", "S20102"  # the skus of conf/segments/kyoho_not_black_vine.yaml
MOBILE_A = "13912345678"  # raw mobile of OID_A (only its hash goes into silver)
CARD_A = "M00012345"
FORMULA_EXTERNAL_ID = "=HYPERLINK(\"http://x\")"


def _d(days_ago: int) -> dt.date:
    return AS_OF - dt.timedelta(days=days_ago)


def _ts(days_ago: int) -> dt.datetime:
    d = _d(days_ago)
    return dt.datetime(d.year, d.month, d.day, 3, 0, 0)


def write_tiny_lake(spark, settings) -> None:
    """Write the tables above, then build gold_segment_base and the tags with the real tags job."""
    key = load_secret(settings)
    mobile_a_hash = hash_value(MOBILE_A, "mobile", key)

    def member(card, consent, paid=False):
        return [("main", card, "gold" if paid else "silver", paid, consent, _ts(400))]

    def profile(one_id, name, cards, consent, store, guides, channels, first, last, orders, amount, stage_city="上海"):
        per = {c: (orders if c in channels else 0) for c in ("pos", "miniprogram", "ecommerce")}
        amt = {c: (Decimal(amount) if c in channels else Decimal(0)) for c in ("pos", "miniprogram", "ecommerce")}
        return (one_id, 1, len(cards), 0, 0, len(guides), 0, name, "F", dt.date(1990, 1, 1), stage_city,
                cards, bool(cards), False, consent, False, store, stage_city, guides, bool(guides), channels,
                _ts(first) if first is not None else None, _ts(last) if last is not None else None,
                _d(first) if first is not None else None, _d(last) if last is not None else None,
                orders, Decimal(amount), per["pos"], per["miniprogram"], per["ecommerce"],
                amt["pos"], amt["miniprogram"], amt["ecommerce"], AS_OF)

    profiles = [
        profile("OID_A", "张*", member(CARD_A, True), True, "S1", ["G1"], ["pos"], 30, 30, 1, "39.90"),
        profile("OID_B", "李*", member("M00022222", True), True, "S1", [], ["pos"], 20, 5, 2, "99.80"),
        profile("OID_C", "王*", member("M00033333", True), True, "S2", [], ["pos"], 200, 200, 1, "39.90"),
        profile("OID_D", "赵*", member("M00044444", False), False, None, [], ["miniprogram"], 10, 10, 1, "39.90"),
        profile("OID_E", "钱*", [], False, None, [], [], None, None, 0, "0.00"),
        profile("OID_F", "孙*", member("M00066666", True), True, None, ["G2"], ["ecommerce"], 100, 100, 1, "45.00"),
    ]
    overwrite_table(spark.createDataFrame(profiles, PROFILE_SCHEMA), settings, "gold_profiles")

    def line(one_id, channel, order, days, sku, amount, store=None, platform=None):
        name = {KYOHO: "巨峰葡萄", BLACK: "黑藤巨峰"}[sku]
        return (one_id, channel, platform, "main", store, order, order, "1", _ts(days), _d(days), sku, name, "葡萄",
                Decimal("1.000"), Decimal(amount), False)

    facts = [
        line("OID_A", "pos", "P1", 30, KYOHO, "39.90", store="S1"),
        line("OID_B", "pos", "P2", 20, KYOHO, "39.90", store="S1"),
        line("OID_B", "pos", "P3", 5, BLACK, "59.90", store="S1"),
        line("OID_C", "pos", "P4", 200, KYOHO, "39.90", store="S2"),
        line("OID_D", "miniprogram", "E1", 10, KYOHO, "39.90"),
        line("OID_F", "ecommerce", "tmall:T1", 100, KYOHO, "45.00", platform="tmall"),
    ]
    overwrite_table(spark.createDataFrame(facts, FACT_SCHEMA), settings, "gold_order_facts")

    rfm = [("OID_A", AS_OF, 365, 30, 1, Decimal("39.90"), 4, 2, 2, 2, "Promising"),
           ("OID_B", AS_OF, 365, 5, 2, Decimal("99.80"), 5, 5, 5, 5, "Champions"),
           ("OID_C", AS_OF, 365, 200, 1, Decimal("39.90"), 1, 2, 2, 2, "Hibernating"),
           ("OID_D", AS_OF, 365, 10, 1, Decimal("39.90"), 5, 1, 2, 1, "New"),
           ("OID_F", AS_OF, 365, 100, 1, Decimal("45.00"), 2, 3, 3, 3, "Need Attention")]
    overwrite_table(spark.createDataFrame(rfm, RFM_SCHEMA), settings, "gold_rfm")

    stages = {"OID_A": "active", "OID_B": "loyal", "OID_C": "churned", "OID_D": "new", "OID_E": "prospect",
              "OID_F": "dormant"}
    earlier = AS_OF - dt.timedelta(days=30)
    lifecycle = [(o, AS_OF, s, _d(3)) for o, s in stages.items()]
    lifecycle += [(o, earlier, "active" if o in ("OID_A", "OID_F", "OID_B") else s, _d(60)) for o, s in stages.items()]
    overwrite_table(spark.createDataFrame(lifecycle, LIFECYCLE_SCHEMA), settings, "gold_lifecycle")
    transitions = [("OID_F", "active", "dormant", _d(3)), ("OID_A", "new", "active", _d(25))]
    overwrite_table(spark.createDataFrame(transitions, TRANSITION_SCHEMA), settings, "gold_lifecycle_transitions")

    scores = [("OID_A", "churn", 0.1, "low", "v1", AS_OF), ("OID_A", "repurchase", 0.8, "high", "v1", AS_OF),
              ("OID_F", "churn", 0.9, "high", "v1", AS_OF), ("OID_D", "churn", 0.5, "medium", "v1", AS_OF)]
    overwrite_table(spark.createDataFrame(scores, MODEL_SCORES_SCHEMA), settings, "gold_model_scores")

    members = [("old_seg", o, AS_OF) for o in ("OID_A", "OID_B")] + [("other_seg", o, AS_OF) for o in ("OID_B", "OID_C")]
    overwrite_table(spark.createDataFrame(members, "segment string, one_id string, run_date date"),
                    settings, "gold_segment_members", partition_by=("run_date",))

    wecom_schema = ("source string, source_record_id string, brand_id string, external_userid string, "
                    "guide_userid string, store_id string, name_masked string, gender string, unionid_hash string, "
                    "tags array<struct<group_name:string,tag_name:string>>, remark_mobile_hashes array<string>, added_at timestamp, "
                    "last_change_type string, is_active boolean, one_id string")
    wecom = [("wecom", "wmEXT_A_0001", "main", "wmEXT_A_0001", "G1", "S1", "张*", "F", "u" * 64,
              [("偏好", "葡萄")], [mobile_a_hash], _ts(50), "add_external_contact", True, "OID_A"),
             ("wecom", FORMULA_EXTERNAL_ID, "main", FORMULA_EXTERNAL_ID, "G2", "S2", "孙*", "F", None,
              [], [], _ts(90), "add_external_contact", True, "OID_F")]
    overwrite_table(spark.createDataFrame(wecom, wecom_schema), settings, "silver_wecom_contacts")

    crm_schema = ("source string, source_record_id string, brand_id string, member_card_no string, "
                  "mobile_hash string, mobile_masked string, mobile_status string, one_id string")
    crm = [("crm", CARD_A, "main", CARD_A, mobile_a_hash, "139****5678", "valid", "OID_A"),
           ("crm", "M00022222", "main", "M00022222", None, None, "missing", "OID_B")]
    overwrite_table(spark.createDataFrame(crm, crm_schema), settings, "silver_crm_members")
    pos = [("pos", "P1", "main", CARD_A, mobile_a_hash, "139****5678", "valid", "OID_A")]
    overwrite_table(spark.createDataFrame(pos, crm_schema), settings, "silver_pos_lines")

    summary = [("r1", _d(1), "pos", 1, 10, 9, 1, True), ("r1", _d(1), "crm", 1, 5, 5, 0, True),
               ("r2", AS_OF, "pos", 1, 8, 6, 2, True)]
    overwrite_table(spark.createDataFrame(summary, "run_id string, run_date date, source string, files int, "
                                                   "rows_landed long, rows_accepted long, rows_quarantined long, "
                                                   "is_balanced boolean"), settings, "ingest_run_summary")
    from cdp.resolve_identity import RUN_SUMMARY_SCHEMA, run_summary_row
    identity_runs = [run_summary_row({"run_date": str(_d(1)), "mode": "full", "full_pass_reason": "first run",
                                      "records": 7, "one_ids": 3, "events": {"create": 3}}, _ts(1), 61.25),
                     run_summary_row({"run_date": str(AS_OF), "mode": "incremental", "records": 8, "records_touched": 2,
                                      "one_ids": 2, "nodes_shared": 1, "events": {"merge": 1}}, _ts(0), 12.04)]
    overwrite_table(spark.createDataFrame(identity_runs, RUN_SUMMARY_SCHEMA), settings, "identity_run_summary")
    # a quarantined row keeps the delivered line (with a raw mobile): engineers read its reason, never the line
    overwrite_table(spark.createDataFrame([("pos", "/landing/pos/dt=x/a.csv", "c1", 2, "amount_parses", "amount is not a number",
                                            f"P9,1,S1,2026-06-30 10:00:00,,{MOBILE_A},K1,x,x,1,abc,abc,cash")],
                                          "source string, file_path string, content_hash string, source_line long, "
                                          "rule string, reason string, raw_record string"), settings, "quarantine_rows")
    # raw personal data: must never be served by the console
    overwrite_table(spark.createDataFrame([("mobile", mobile_a_hash, MOBILE_A, _ts(400))],
                                          "kind string, value_hash string, value string, first_seen_at timestamp"),
                    settings, "pii_values")
    overwrite_table(spark.createDataFrame([(CARD_A, MOBILE_A)], "member_card_no string, mobile string"),
                    settings, "bronze_crm_members")
    from cdp.build_tags import run as build_tags

    build_tags(spark, settings, AS_OF)
