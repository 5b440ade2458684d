"""Order facts and profiles from tiny silver tables (real Spark), and the survivorship rules' validation."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from profiles_helpers import d, dec, silver, ts

from cdp.config import default_conf_dir
from cdp.errors import ConfigError
from cdp.tags.profile_rules import load_survivorship_rules

CONF = default_conf_dir()


def test_shipped_survivorship_rules_load():
    rules = load_survivorship_rules(CONF / "survivorship.yaml")
    assert rules.attributes["gender"].rule == "source_priority"
    assert rules.attributes["gender"].sources == ("crm", "wecom")
    assert rules.attributes["birthday"].rule == "most_recent"
    assert rules.attributes["city"].rule == "most_frequent"


@pytest.mark.parametrize("attributes, message", [
    ({"gender": {"rule": "loudest", "sources": ["crm"]}}, "attributes.gender.rule"),
    ({"birthday": {"rule": "most_recent", "sources": ["wecom"]}}, r"cannot supply birthday; use some of \['crm'\]"),
    ({"shoe_size": {"rule": "most_recent", "sources": ["crm"]}}, "shoe_size: unknown attribute"),
])
def test_wrong_survivorship_rule_names_file_key_and_fix(tmp_path: Path, attributes, message):
    raw = yaml.safe_load((CONF / "survivorship.yaml").read_text())
    raw["attributes"].update(attributes)
    path = tmp_path / "survivorship.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message) as err:
        load_survivorship_rules(path)
    assert str(path) in str(err.value)


def _silver_world(spark):
    """Four people: A (multi-brand member, POS buyer with a return), B (mini-program + Tmall buyer), C (WeCom
    contact only), D (member card only), plus one anonymous POS order."""
    pos = silver(spark, "silver_pos_lines", [
        # A: order P1 (two lines) in store S1 (杭州); P2 in S2 (上海) paid 17:00 UTC = next day in Shanghai
        dict(one_id="A", brand_id="b1", order_id="P1", line_no=1, store_id="S1", paid_at=ts("2026-03-01 02:00"),
             member_card_no="M1", mobile_hash="hA", sku_id="K1", sku_name="巨峰葡萄", category="grape",
             quantity=dec("2.000"), amount=dec("10.00"), is_return=False),
        dict(one_id="A", brand_id="b1", order_id="P1", line_no=2, store_id="S1", paid_at=ts("2026-03-01 02:00"),
             member_card_no="M1", mobile_hash="hA", sku_id="K2", sku_name="猫山王榴莲", category="durian",
             quantity=dec("1.000"), amount=dec("5.50"), is_return=False),
        dict(one_id="A", brand_id="b1", order_id="P2", line_no=1, store_id="S2", paid_at=ts("2026-03-10 17:00"),
             mobile_hash="hA", sku_id="K1", sku_name="巨峰葡萄", category="grape", quantity=dec("4.000"),
             amount=dec("20.00"), is_return=False),
        dict(one_id="A", brand_id="b1", order_id="P3", line_no=1, store_id="S1", paid_at=ts("2026-04-01 03:00"),
             sku_id="K1", sku_name="巨峰葡萄", category="grape", quantity=dec("1.000"), amount=dec("8.00"),
             is_return=False),
        # A returns the durian: the source sends a positive amount with is_return, facts make it negative
        dict(one_id="A", brand_id="b1", order_id="R1", line_no=1, store_id="S1", paid_at=ts("2026-04-02 03:00"),
             sku_id="K2", sku_name="猫山王榴莲", category="durian", quantity=dec("1.000"), amount=dec("5.50"),
             is_return=True),
        # anonymous walk-in: no one_id, so not a fact (counted as excluded)
        dict(one_id=None, brand_id="b1", order_id="P4", line_no=1, store_id="S2", paid_at=ts("2026-04-03 03:00"),
             sku_id="K1", quantity=dec("1.000"), amount=dec("8.00"), is_return=False),
    ])
    mini = silver(spark, "silver_miniprogram_events", [
        dict(one_id="B", brand_id="b1", event_id="E1", event_type="order_paid", event_at=ts("2026-05-01 04:00"),
             openid_hash="oB", unionid_hash="uB", mobile_hash="hB", order_id="MO1", amount=dec("16.00"),
             items=[("K1", dec("2.000"), dec("3.00")), ("K2", dec("1.000"), dec("10.00"))]),
        dict(one_id="B", brand_id="b1", event_id="E2", event_type="order_paid", event_at=ts("2026-05-02 04:00"),
             openid_hash="oB", order_id="MO2", amount=dec("7.00"), items=None),
        dict(one_id="B", brand_id="b1", event_id="E3", event_type="page_view", event_at=ts("2026-05-02 05:00"),
             openid_hash="oB"),
    ])
    ecom = silver(spark, "silver_ecommerce_lines", [
        dict(one_id="B", brand_id="b1", platform="tmall", order_id="T1", buyer_id="tb", receiver_name_masked="李*",
             mobile_hash="hB", city="上海", paid_at=ts("2026-05-03 04:00"), sku_id="K1", sku_name="巨峰葡萄",
             category="grape", quantity=dec("3.000"), amount=dec("30.00"), status="paid"),
        dict(one_id="B", brand_id="b1", platform="tmall", order_id="T1", buyer_id="tb", receiver_name_masked="李*",
             mobile_hash="hB", city="上海", paid_at=ts("2026-05-03 04:00"), sku_id="K2", sku_name="猫山王榴莲",
             category="durian", quantity=dec("1.000"), amount=dec("12.00"), status="refunded"),
        # A's JD order was refunded entirely: net 0, not a purchase
        dict(one_id="A", brand_id="b1", platform="jd", order_id="J1", buyer_id="ja", receiver_name_masked="王五",
             city="北京", paid_at=ts("2026-03-05 04:00"), sku_id="K1", sku_name="巨峰葡萄", category="grape",
             quantity=dec("1.000"), amount=dec("9.00"), status="refunded"),
    ])
    crm = silver(spark, "silver_crm_members", [
        # A holds cards of two brands (一码双会员); b1 says gender U (unknown), b2 says F
        dict(one_id="A", brand_id="b1", member_card_no="M1", mobile_hash="hA", name_masked="王*", gender="U",
             birthday=d("1990-01-01"), level="gold", is_paid_member=True, has_app=False, join_store_id="S2",
             registered_at=ts("2024-01-01 00:00"), marketing_consent=False, updated_at=ts("2025-01-01 00:00")),
        dict(one_id="A", brand_id="b2", member_card_no="N1", mobile_hash="hA3", name_masked="王**", gender="F",
             birthday=d("1990-02-01"), level="silver", is_paid_member=False, has_app=True,
             registered_at=ts("2025-06-01 00:00"), marketing_consent=True, updated_at=ts("2026-01-01 00:00")),
        dict(one_id="D", brand_id="b1", member_card_no="M9", gender="U", level="basic", is_paid_member=False,
             has_app=False, registered_at=ts("2026-02-01 00:00"), marketing_consent=True,
             updated_at=ts("2026-02-01 00:00")),
    ])
    wecom = silver(spark, "silver_wecom_contacts", [
        dict(one_id="A", external_userid="W1", guide_userid="G1", name_masked="小*", gender="M", unionid_hash="uA",
             remark_mobile_hashes=["hA", "hA4"], added_at=ts("2026-01-05 00:00"), is_active=True),
        dict(one_id="A", external_userid="W1", guide_userid="G2", gender="M", added_at=ts("2025-01-05 00:00"),
             is_active=False),
        dict(one_id="C", external_userid="W3", guide_userid="G1", name_masked="赵*", gender="M",
             added_at=ts("2026-02-05 00:00"), is_active=True),
    ])
    catalog = spark.createDataFrame([("K1", "巨峰葡萄", "grape", "own", dec("9.90")),
                                     ("K2", "猫山王榴莲", "durian", "own", dec("99.00"))],
                                    "sku_id string, sku_name string, category string, brand string, list_price decimal(18,2)")
    stores = spark.createDataFrame([("S1", "西湖店", "杭州", "east"), ("S2", "徐汇店", "上海", "east")],
                                   "store_id string, store_name string, city string, region string")
    return pos, mini, wecom, ecom, crm, catalog, stores


@pytest.mark.spark
def test_facts_and_profiles_from_silver(spark):
    from cdp.tags.facts import FACT_COLUMNS, build_order_facts, count_anonymous_lines, order_lines
    from cdp.tags.profiles import PROFILE_COLUMNS, build_profiles

    pos, mini, wecom, ecom, crm, catalog, stores = _silver_world(spark)
    facts = build_order_facts(pos, mini, ecom, catalog, "Asia/Shanghai")
    assert tuple(facts.columns) == FACT_COLUMNS
    got = sorted(tuple(r) for r in facts.collect())
    g, u = ("K1", "巨峰葡萄", "grape"), ("K2", "猫山王榴莲", "durian")
    # One row per line; mini-program E1 explodes into its 2 items (amount = price x quantity), E2 without items is
    # one line with the event amount, E3 is not a paid order; the POS return is negative; a refunded e-commerce
    # line (silver holds its latest state) is a return line of amount 0; P2 paid 17:00 UTC is the next local day.
    assert got == sorted([
        ("A", "pos", None, "b1", "S1", "P1", "P1", "1", ts("2026-03-01 02:00"), d("2026-03-01"), *g, dec("2.000"), dec("10.00"), False),
        ("A", "pos", None, "b1", "S1", "P1", "P1", "2", ts("2026-03-01 02:00"), d("2026-03-01"), *u, dec("1.000"), dec("5.50"), False),
        ("A", "pos", None, "b1", "S2", "P2", "P2", "1", ts("2026-03-10 17:00"), d("2026-03-11"), *g, dec("4.000"), dec("20.00"), False),
        ("A", "pos", None, "b1", "S1", "P3", "P3", "1", ts("2026-04-01 03:00"), d("2026-04-01"), *g, dec("1.000"), dec("8.00"), False),
        ("A", "pos", None, "b1", "S1", "R1", "R1", "1", ts("2026-04-02 03:00"), d("2026-04-02"), *u, dec("-1.000"), dec("-5.50"), True),
        ("A", "ecommerce", "jd", "b1", None, "J1", "jd:J1", "K1", ts("2026-03-05 04:00"), d("2026-03-05"), *g, dec("0.000"), dec("0.00"), True),
        ("B", "miniprogram", None, "b1", None, "MO1", "E1", "0", ts("2026-05-01 04:00"), d("2026-05-01"), *g, dec("2.000"), dec("6.00"), False),
        ("B", "miniprogram", None, "b1", None, "MO1", "E1", "1", ts("2026-05-01 04:00"), d("2026-05-01"), *u, dec("1.000"), dec("10.00"), False),
        ("B", "miniprogram", None, "b1", None, "MO2", "E2", "0", ts("2026-05-02 04:00"), d("2026-05-02"), None, None, None, None, dec("7.00"), False),
        ("B", "ecommerce", "tmall", "b1", None, "T1", "tmall:T1", "K1", ts("2026-05-03 04:00"), d("2026-05-03"), *g, dec("3.000"), dec("30.00"), False),
        ("B", "ecommerce", "tmall", "b1", None, "T1", "tmall:T1", "K2", ts("2026-05-03 04:00"), d("2026-05-03"), *u, dec("0.000"), dec("0.00"), True),
    ], key=str)
    anonymous = {r["channel"]: (r["anonymous_lines"], r["lines"])
                 for r in count_anonymous_lines(order_lines(pos, mini, ecom, catalog, "Asia/Shanghai")).collect()}
    assert anonymous == {"pos": (1, 6), "miniprogram": (0, 3), "ecommerce": (0, 3)}

    from cdp.tags.profile_rules import load_survivorship_rules

    rules = load_survivorship_rules(CONF / "survivorship.yaml")
    one_ids = spark.createDataFrame([("A",), ("B",), ("C",), ("D",), ("E",)], "one_id string")
    profiles = build_profiles(one_ids, pos, mini, wecom, ecom, crm, stores, facts, rules, d("2026-06-01"))
    assert tuple(profiles.columns) == PROFILE_COLUMNS
    rows = {r["one_id"]: r.asDict(recursive=True) for r in profiles.collect()}
    m1 = dict(brand_id="b1", member_card_no="M1", level="gold", is_paid_member=True, marketing_consent=False,
              registered_at=ts("2024-01-01 00:00"))
    n1 = dict(brand_id="b2", member_card_no="N1", level="silver", is_paid_member=False, marketing_consent=True,
              registered_at=ts("2025-06-01 00:00"))
    m9 = dict(brand_id="b1", member_card_no="M9", level="basic", is_paid_member=False, marketing_consent=True,
              registered_at=ts("2026-02-01 00:00"))
    no_purchase = dict(channels=[], first_purchase_at=None, last_purchase_at=None, first_purchase_date=None,
                       last_purchase_date=None, order_count=0, total_amount=dec("0.00"), order_count_pos=0,
                       order_count_miniprogram=0, order_count_ecommerce=0, amount_pos=dec("0.00"),
                       amount_miniprogram=dec("0.00"), amount_ecommerce=dec("0.00"))
    as_of = dict(as_of_date=d("2026-06-01"))
    expected = {
        "A": dict(one_id="A",
                  # mobiles hA (POS, CRM b1, WeCom remark), hA3 (CRM b2), hA4 (WeCom remark); cards b1:M1, b2:N1
                  mobile_count=3, member_card_count=2, unionid_count=1, openid_count=0, external_userid_count=1,
                  buyer_id_count=1,
                  # name: CRM before WeCom/e-commerce, most recent CRM card (b2, 2026) wins; gender: CRM b1 says
                  # U (ignored), CRM b2 F beats WeCom M; birthday: most recent CRM record (b2);
                  # city: most orders/records: 杭州 (P1, P3, R1) over 上海 (P2, CRM join store) and 北京 (J1)
                  name_masked="王**", gender="F", birthday=d("1990-02-01"), city="杭州",
                  memberships=[m1, n1], is_member=True, is_paid_member=True, has_marketing_consent=True,
                  has_app=True,
                  # home store: S1 has 2 purchase orders (P1, P3; the return R1 is no purchase), S2 one
                  home_store_id="S1", home_city="杭州", wecom_guide_userids=["G1"], is_wecom_added=True,
                  # the return receipt nets the spend: 15.5 + 20 + 8 - 5.5 = 38; the refunded JD order adds 0
                  channels=["pos"], first_purchase_at=ts("2026-03-01 02:00"), last_purchase_at=ts("2026-04-01 03:00"),
                  first_purchase_date=d("2026-03-01"), last_purchase_date=d("2026-04-01"), order_count=3,
                  total_amount=dec("38.00"), order_count_pos=3, order_count_miniprogram=0, order_count_ecommerce=0,
                  amount_pos=dec("38.00"), amount_miniprogram=dec("0.00"), amount_ecommerce=dec("0.00"), **as_of),
        "B": dict(one_id="B", mobile_count=1, member_card_count=0, unionid_count=1, openid_count=1,
                  external_userid_count=0, buyer_id_count=1,
                  # only the Tmall receiver name and delivery city are known
                  name_masked="李*", gender="U", birthday=None, city="上海", memberships=[], is_member=False,
                  is_paid_member=False, has_marketing_consent=False, has_app=False, home_store_id=None,
                  home_city=None, wecom_guide_userids=[], is_wecom_added=False,
                  # E1 16 + E2 7 + T1 30 (its refunded 12.00 line counts 0) = 53
                  channels=["ecommerce", "miniprogram"], first_purchase_at=ts("2026-05-01 04:00"),
                  last_purchase_at=ts("2026-05-03 04:00"), first_purchase_date=d("2026-05-01"),
                  last_purchase_date=d("2026-05-03"), order_count=3, total_amount=dec("53.00"), order_count_pos=0,
                  order_count_miniprogram=2, order_count_ecommerce=1, amount_pos=dec("0.00"),
                  amount_miniprogram=dec("23.00"), amount_ecommerce=dec("30.00"), **as_of),
        # WeCom is the only source for C, so its gender and name survive
        "C": dict(one_id="C", mobile_count=0, member_card_count=0, unionid_count=0, openid_count=0,
                  external_userid_count=1, buyer_id_count=0, name_masked="赵*", gender="M", birthday=None, city=None,
                  memberships=[], is_member=False, is_paid_member=False, has_marketing_consent=False, has_app=False,
                  home_store_id=None, home_city=None, wecom_guide_userids=["G1"], is_wecom_added=True,
                  **no_purchase, **as_of),
        # D's only gender value is U (never wins a rule), so the profile says U: unknown
        "D": dict(one_id="D", mobile_count=0, member_card_count=1, unionid_count=0, openid_count=0,
                  external_userid_count=0, buyer_id_count=0, name_masked=None, gender="U", birthday=None, city=None,
                  memberships=[m9], is_member=True, is_paid_member=False, has_marketing_consent=True, has_app=False,
                  home_store_id=None, home_city=None, wecom_guide_userids=[], is_wecom_added=False,
                  **no_purchase, **as_of),
        # E is in the identity map but has no silver record left: a bare profile
        "E": dict(one_id="E", mobile_count=0, member_card_count=0, unionid_count=0, openid_count=0,
                  external_userid_count=0, buyer_id_count=0, name_masked=None, gender="U", birthday=None, city=None,
                  memberships=[], is_member=False, is_paid_member=False, has_marketing_consent=False, has_app=False,
                  home_store_id=None, home_city=None, wecom_guide_userids=[], is_wecom_added=False,
                  **no_purchase, **as_of),
    }
    assert rows == expected


@pytest.mark.spark
def test_profiles_job_runs_twice_like_once(spark, settings):
    """The job on a tiny silver lake: every gold table written, keys unique, a second run changes nothing."""
    from cdp.lake import overwrite_table, read_table
    from cdp.pipeline import STAGES

    names = [s.name for s in STAGES]  # after ingest (and identity when present), before the tag engine
    assert names.index("ingest") < names.index("profiles") < names.index("tags" if "tags" in names else "profiles") + 1
    assert "identity" not in names or names.index("identity") < names.index("profiles")
    import cdp.build_profiles as job

    pos, mini, wecom, ecom, crm, catalog, stores = _silver_world(spark)
    for name, df in [("silver_pos_lines", pos), ("silver_miniprogram_events", mini), ("silver_wecom_contacts", wecom),
                     ("silver_ecommerce_lines", ecom), ("silver_crm_members", crm), ("silver_catalog", catalog),
                     ("silver_stores", stores)]:
        overwrite_table(df, settings, name)
    tables = ("gold_order_facts", "gold_profiles", "gold_rfm", "gold_lifecycle", "gold_lifecycle_transitions")

    def snapshot():
        return {t: sorted(map(str, read_table(spark, settings, t).collect())) for t in tables}

    first = job.run(spark, settings, d("2026-06-01"))
    after_first = snapshot()
    second = job.run(spark, settings, d("2026-06-01"))
    assert snapshot() == after_first and first == second
    # 11 fact lines (the anonymous POS line excluded), the 4 people seen in silver (no identity map here),
    # 2 purchasers; A last bought 2026-04-01 (61 days: active), B 2026-05-03 (first purchase 31 days ago: active),
    # C is a WeCom prospect, D a member without purchase; every one_id enters its first stage.
    assert first == {
        "run_date": "2026-06-01", "order_fact_lines": 11, "anonymous_lines_excluded": {"pos": 1},
        "profiles": 4, "rfm_purchasers": 2, "rfm_segments": first["rfm_segments"],
        "lifecycle_stages": {"active": 2, "prospect": 1, "member_no_purchase": 1}, "lifecycle_transitions": 4}
    assert sum(first["rfm_segments"].values()) == 2
    # the next day keeps the stages, so no transition, and day 1's partitions stay as they were
    job.run(spark, settings, d("2026-06-02"))
    lifecycle = read_table(spark, settings, "gold_lifecycle")
    assert sorted((r.as_of_date.isoformat(), r.stage_since.isoformat()) for r in lifecycle.collect() if r.one_id == "A") \
        == [("2026-06-01", "2026-06-01"), ("2026-06-02", "2026-06-01")]
    assert read_table(spark, settings, "gold_lifecycle_transitions").count() == 4
