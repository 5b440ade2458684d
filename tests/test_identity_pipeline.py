"""The identity stage end to end on tiny silver tables (real Spark + Delta): edges and evidence, guardrails,
stable ids across runs, merge/split history and redirects, overrides, explain, record-map export, contracts.

One story over three run dates in one lake keeps the JVM work small:
  day 1: persons A and B from several sources, a junk phone, a store phone, a family phone, a card with four
         phones (limit 3), an anonymous walk-in.
  day 2: a JD buyer is bound to B's card -> the buyer's profile merges into B (redirect); re-running day 2 and a
         full rebuild change nothing.
  day 3: steward overrides: never-link A's card and A's openid (split), always-link a card and a lone phone
         (merge), block B's Tmall buyer.
"""
from __future__ import annotations

import csv
import datetime as dt
import re

import pytest

from identity_silver import h, write_silver

D1, D2, D3 = dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3)


def t(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour))


M1, M2 = "13911110001", "13911110002"
JUNK, STORE, FAMILY = "13800000000", "13922220000", "13933330000"
M9 = ["13911119001", "13911119002", "13911119003", "13911119004"]


def pos(order, card=None, mobile=None, at=None, line=1):
    return {"order_id": order, "line_no": line, "store_id": "S1", "paid_at": at, "member_card_no": card,
            "mobile": mobile, "sku_id": "K1", "quantity": 1, "unit_price": 10, "amount": 10, "is_return": False}


DAY1 = {
    "silver_crm_members": [
        {"member_card_no": "C001", "mobile": M1, "registered_at": t(D1, 1)},
        {"member_card_no": "C002", "mobile": M2, "registered_at": t(D1, 2)},
        {"member_card_no": "C007", "mobile": FAMILY, "registered_at": t(D1, 3)},
        {"member_card_no": "C008", "mobile": FAMILY, "registered_at": t(D1, 4)},
    ],
    "silver_pos_lines": [
        pos("O1", "C001", M1, t(D1, 5), 1), pos("O1", "C001", M1, t(D1, 5), 2),
        pos("O2", "C003", JUNK, t(D1, 6)), pos("O3", None, JUNK, t(D1, 6)),
        pos("O4", "C004", STORE, t(D1, 7)), pos("O5", "C005", STORE, t(D1, 7)), pos("O6", "C006", STORE, t(D1, 7)),
        pos("O7", None, None, t(D1, 8)),
        # four phones on one card, seen one hour apart: the fourth (latest) link breaks the limit of 3
        *[pos(f"O9{i}", "C009", m, t(D1, 9 + i)) for i, m in enumerate(M9)],
    ],
    "silver_miniprogram_events": [
        {"event_id": "E1", "event_type": "login", "event_at": t(D1, 10), "appid": "wxapp", "openid": "oA", "unionid": "uA"},
        {"event_id": "E2", "event_type": "bind_mobile", "event_at": t(D1, 11), "appid": "wxapp", "openid": "oA", "mobile": M1},
    ],
    "silver_wecom_contacts": [
        {"external_userid": "wmB", "guide_userid": "g1", "unionid": "uB", "remark_mobiles": [M2], "added_at": t(D1, 12)},
    ],
    "silver_ecommerce_lines": [
        {"platform": "tmall", "order_id": "T1", "buyer_id": "b1", "member_card_no": "C002", "paid_at": t(D1, 13),
         "sku_id": "K1", "amount": 5},
        {"platform": "jd", "order_id": "J1", "buyer_id": "b2", "paid_at": t(D1, 14), "sku_id": "K1", "amount": 5},
    ],
}
DAY2 = {"silver_ecommerce_lines": [
    {"platform": "jd", "order_id": "J2", "buyer_id": "b2", "member_card_no": "C002", "paid_at": t(D2, 9),
     "sku_id": "K1", "amount": 5}]}


def card(c):
    return f"member_card:main:{c}"


def mob(m):
    return f"mobile:{h('mobile', m)}"


def profiles(spark, settings):
    """{frozenset(node_keys): one_id} of the active nodes."""
    from cdp.lake import read_table

    groups: dict[str, set] = {}
    for r in read_table(spark, settings, "identity_nodes").where("status = 'active'").collect():
        groups.setdefault(r.one_id, set()).add(r.node_key)
    return {frozenset(v): k for k, v in groups.items()}


def record_map(spark, settings):
    from cdp.lake import read_table

    return {(r.source, r.source_record_id): r.one_id for r in read_table(spark, settings, "identity_record_map").collect()}


@pytest.mark.spark
def test_identity_stage_story(spark, settings, tmp_path, capsys):
    from cdp.cli import main as cdp_main
    from cdp.lake import read_table
    from cdp.resolve_identity import rebuild, run

    A = {card("C001"), mob(M1), f"openid:wxapp:{h('openid', 'oA')}", f"unionid:{h('unionid', 'uA')}"}
    B = {card("C002"), mob(M2), "external_userid:wmB", f"unionid:{h('unionid', 'uB')}", "buyer_id:tmall:b1"}
    lone = [{card(c)} for c in ("C003", "C004", "C005", "C006", "C007", "C008")]
    C9 = {card("C009"), *(mob(m) for m in M9[:3])}
    expected_day1 = [A, B, *lone, C9, {mob(M9[3])}, {"buyer_id:jd:b2"}]

    # ---- day 1 ----------------------------------------------------------------------------------------------
    write_silver(spark, settings, D1, DAY1)
    s1 = run(spark, settings, D1)
    p1 = profiles(spark, settings)
    assert sorted(map(sorted, p1)) == sorted(map(sorted, expected_day1))
    # ids derive from the anchor (earliest first seen): A's anchor is its CRM card (registered 01:00)
    import hashlib
    assert p1[frozenset(A)] == "OID" + hashlib.sha256(card("C001").encode()).hexdigest()[:16]

    nodes = {r.node_key: r for r in read_table(spark, settings, "identity_nodes").collect()}
    assert (nodes[mob(JUNK)].status, nodes[mob(STORE)].status, nodes[mob(FAMILY)].status) == ("blocked", "shared", "shared")
    assert nodes[mob(JUNK)].one_id is None and nodes[mob(M1)].display == f"mobile:#{h('mobile', M1)[:8]}"
    rej = {(r.kind, r.node_key, r.reason): r.detail for r in read_table(spark, settings, "identity_rejections").collect()}
    assert rej[("node", mob(STORE), "shared")] == "linked to 3 distinct member_card (main) identifiers (shared_threshold 1)"
    assert rej[("node", mob(FAMILY), "shared")] == "linked to 2 distinct member_card (main) identifiers (shared_threshold 1)"
    assert rej[("node", mob(JUNK), "blocklist")] == "mobile blocklist pattern #2 of conf/identity.yaml"
    limit = [k for k in rej if k[0] == "edge"]
    assert limit == [("edge", min(card("C009"), mob(M9[3])), "limit")]

    # evidence of the POS card-mobile edge of person A: two lines of one order count as one record
    ev = {(r.src_key, r.dst_key, r.rule): r for r in read_table(spark, settings, "identity_edges").collect()}
    e = ev[(min(card("C001"), mob(M1)), max(card("C001"), mob(M1)), "pos_card_mobile")]
    assert (e.source, e.rank, e.sample_record_id, e.record_count, e.first_seen_at, e.status) == \
        ("pos", 40, "O1", 1, t(D1, 5), "kept")
    assert ev[(min(card("C009"), mob(M9[3])), max(card("C009"), mob(M9[3])), "pos_card_mobile")].status == "dropped_limit"

    rm = record_map(spark, settings)
    a_id, b_id = p1[frozenset(A)], p1[frozenset(B)]
    c9_id, m94_id, b2_id = p1[frozenset(C9)], p1[frozenset({mob(M9[3])})], p1[frozenset({"buyer_id:jd:b2"})]
    assert rm[("pos", "O1")] == a_id and rm[("miniprogram", "E2")] == a_id and rm[("wecom", "wmB")] == b_id
    assert rm[("pos", "O3")] is None and rm[("pos", "O7")] is None       # junk phone only / anonymous
    assert rm[("pos", "O93")] == c9_id                                     # card outranks the phone over the limit
    assert rm[("ecommerce", "tmall:T1")] == b_id and rm[("ecommerce", "jd:J1")] == b2_id
    assert rm[("crm", "C007")] == p1[frozenset({card("C007")})]
    assert (s1["records"], s1["records_without_one_id"], s1["nodes_blocked"], s1["nodes_shared"]) == (20, 2, 1, 2)
    silver = {(r.order_id, r.line_no): r.one_id for r in read_table(spark, settings, "silver_pos_lines").collect()}
    assert silver[("O1", 1)] == silver[("O1", 2)] == a_id and silver[("O7", 1)] is None
    history1 = read_table(spark, settings, "identity_history").collect()
    assert sorted(r.event_type for r in history1) == ["create"] * len(expected_day1)

    # ---- day 2: merge, redirect; re-run and rebuild change nothing ------------------------------------------
    write_silver(spark, settings, D2, DAY2)
    run(spark, settings, D2)
    p2 = profiles(spark, settings)
    assert p2[frozenset(B | {"buyer_id:jd:b2"})] == b_id                   # B's anchor is older: B's id survives
    red = {r.old_one_id: r.current_one_id for r in read_table(spark, settings, "identity_redirects").collect()}
    assert red == {b2_id: b_id}
    merges = [r for r in read_table(spark, settings, "identity_history").collect() if r.event_type == "merge"]
    assert [(r.one_id, r.related_one_id, r.event_at) for r in merges] == [(b2_id, b_id, t(D2, 0))]
    assert record_map(spark, settings)[("ecommerce", "jd:J1")] == b_id
    history_before = read_table(spark, settings, "identity_history").count()
    again = run(spark, settings, D2)
    assert profiles(spark, settings) == p2 and again["events"] == {}
    assert read_table(spark, settings, "identity_history").count() == history_before
    report = rebuild(spark, settings, D2, dry_run=True)
    assert (report["profiles_merged"], report["profiles_split"], report["nodes_id_changed"]) == (0, 0, 0)

    assert cdp_main(["identity", "current-id", "--lake", settings.lake_dir, b2_id]) == 0
    assert capsys.readouterr().out.strip() == f"{b2_id}\t{b_id}"
    assert cdp_main(["identity", "current-id", "--lake", settings.lake_dir, b_id, "OIDbogus"]) == 2
    assert capsys.readouterr().out.strip() == f"{b_id}\t{b_id}"

    # ---- day 3: steward overrides ---------------------------------------------------------------------------
    lake = ["--lake", settings.lake_dir]
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "never_link", "--card", "main:C001",
                     "--openid", "wxapp:oA", "--reason", "two people", "--by", "steward1"]) == 0
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "always_link", "--card", "main:C004",
                     "--mobile", M9[3], "--reason", "confirmed at the counter"]) == 0
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "block", "--node-key", "buyer_id:tmall:b1",
                     "--reason", "shared shop account"]) == 0
    capsys.readouterr()
    # the same decision twice is recorded once; an unseen identifier is noted; removing an unknown id is an error
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "never_link", "--card", "main:C001",
                     "--openid", "wxapp:oA", "--reason", "again", "--by", "steward2"]) == 0
    assert "already recorded; nothing changed" in capsys.readouterr().out
    # the masked label `explain` prints names the same identifier; a label or a key no identifier has is an error
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "block", "--node-key", "buyer_id:tmall:b1****",
                     "--reason", "pasted from explain"]) == 0
    assert "already recorded; nothing changed" in capsys.readouterr().out
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "block", "--node-key", "mobile:#00000000",
                     "--reason", "typo"]) == 2
    assert "no identifier of this lake is shown with that label" in capsys.readouterr().err
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "block", "--node-key", "phone:123",
                     "--reason", "typo"]) == 2
    assert "a node key starts with its identifier type" in capsys.readouterr().err
    assert read_table(spark, settings, "identity_overrides").count() == 3
    assert cdp_main(["identity", "overrides", "remove", *lake, "0123456789ab"]) == 2
    assert "no override 0123456789ab in this lake" in capsys.readouterr().err
    assert cdp_main(["identity", "overrides", "add", *lake, "--action", "block", "--card", "main:NEVERSEEN",
                     "--reason", "typo check"]) == 0
    noted = capsys.readouterr().out
    assert "1 of the identifiers is not in identity_nodes yet" in noted
    added = re.search(r"override ([0-9a-f]{12}) \(block\) recorded", noted).group(1)
    assert cdp_main(["identity", "overrides", "remove", *lake, added]) == 0
    assert read_table(spark, settings, "identity_overrides").count() == 3
    capsys.readouterr()
    run(spark, settings, D3)
    p3 = profiles(spark, settings)
    o_a, u_a = f"openid:wxapp:{h('openid', 'oA')}", f"unionid:{h('unionid', 'uA')}"
    assert p3[frozenset({card("C001"), mob(M1)})] == a_id                  # the anchor's side keeps the id
    new_a = p3[frozenset({o_a, u_a})]
    assert new_a != a_id
    assert p3[frozenset({card("C004"), mob(M9[3])})] == p1[frozenset({card("C004")})]
    assert p3[frozenset((B - {"buyer_id:tmall:b1"}) | {"buyer_id:jd:b2"})] == b_id
    events3 = {(r.one_id, r.event_type, r.related_one_id) for r in read_table(spark, settings, "identity_history")
               .where(f"run_date = '{D3}'").collect()}
    assert events3 == {(new_a, "split", a_id), (m94_id, "merge", p1[frozenset({card("C004")})])}
    assert record_map(spark, settings)[("miniprogram", "E2")] == new_a    # openid outranks the phone
    cut = [r for r in read_table(spark, settings, "identity_rejections").collect() if r.reason == "never_link"]
    assert [(r.node_key, r.other_node_key) for r in cut] == [tuple(sorted((mob(M1), o_a)))]

    # ---- the run log: every stage run above, oldest first (the dry-run rebuild is not a run) -----------------
    assert cdp_main(["identity", "runs", *lake, "--last", "3"]) == 0
    header, *logged = [line.split("\t") for line in capsys.readouterr().out.strip().splitlines()]
    col = {name: i for i, name in enumerate(header)}
    assert [(r[col["run_date"]], r[col["merges"]], r[col["splits"]], r[col["mode"]]) for r in logged] == [
        (str(D2), "1", "0", "incremental"), (str(D2), "0", "0", "incremental"), (str(D3), "1", "1", "full")]
    assert logged[-1][col["full_pass_reason"]] == "steward overrides changed since the last run"

    # ---- explain and export ---------------------------------------------------------------------------------
    assert cdp_main(["identity", "explain", *lake, "--one-id", "OIDdoesnotexist"]) == 2
    assert "no profile carries One-ID OIDdoesnotexist" in capsys.readouterr().err
    assert cdp_main(["identity", "explain", *lake, "--card", "main:C001", "--openid", "wxapp:oA"]) == 0
    out = capsys.readouterr().out
    assert f"One-ID {a_id}: 2 identifiers" in out and f"One-ID {new_a}: 2 identifiers" in out
    assert "NOT one profile" in out and "dropped_never_link" in out and "never_link: link mp_bind_mobile cut" in out
    assert M1 not in out and M1 not in out.replace("-", "")  # never a raw phone
    assert cdp_main(["identity", "explain", *lake, "--mobile", STORE]) == 0
    assert "identifier is shared" in capsys.readouterr().out
    out_csv = tmp_path / "rm.csv"
    assert cdp_main(["export", "record-map", *lake, "--out", str(out_csv)]) == 0
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["source", "source_record_id", "one_id"] and len(rows) == 1 + 21
    assert ["pos", "O1", a_id] in rows and ["pos", "O7", ""] in rows

    # ---- contracts: a broken identity table fails the stage's check -------------------------------------------
    from pyspark.sql import functions as F

    from cdp.identity.config import load_identity_rules
    from cdp.lake import append_table
    from cdp.resolve_identity import IdentityContractError, check_contracts

    rules = load_identity_rules(settings)
    assert not any(check_contracts(spark, settings, rules).values())
    append_table(read_table(spark, settings, "identity_record_map").where("source_record_id = 'O1'"), settings,
                 "identity_record_map")
    with pytest.raises(IdentityContractError, match="record_map_rows_not_one_per_record"):
        check_contracts(spark, settings, rules)
    nodes = read_table(spark, settings, "identity_nodes")
    second_unionid = nodes.where(f"node_key = '{u_a}'").withColumn("node_key", F.lit("unionid:another"))  # limit 1
    append_table(second_unionid.unionByName(nodes.where(f"node_key = '{card('C001')}'")), settings, "identity_nodes")
    with pytest.raises(IdentityContractError) as broken:
        check_contracts(spark, settings, rules)
    assert {"nodes_duplicate_key", "one_ids_above_limit"} <= set(broken.value.problems)


@pytest.mark.spark
def test_a_retired_one_id_is_reported_as_retired(spark, settings, capsys):
    """A steward who blocked a profile's only identifier looks the One-ID up: the error says it was retired and
    why (identity_history), instead of suggesting it never existed."""
    import datetime as dt

    from cdp.cli import main as cdp_main
    from cdp.lake import overwrite_table

    overwrite_table(spark.createDataFrame(
        [("OIDgone", "retire", None, 1, "retired: every identifier blocked or shared", dt.datetime(2026, 3, 2),
          dt.date(2026, 3, 2))],
        "one_id string, event_type string, related_one_id string, node_count long, reason string, "
        "event_at timestamp, run_date date"), settings, "identity_history")
    assert cdp_main(["identity", "current-id", "--lake", settings.lake_dir, "OIDgone"]) == 2
    err = capsys.readouterr().err
    assert "OIDgone was retired on 2026-03-02 (retired: every identifier blocked or shared)" in err


def test_a_phone_on_many_orders_a_day_is_shared(spark):
    """The store phone typed for walk-ins: no card links it to anyone, only its daily record count betrays it."""
    from cdp.config import load_settings
    from cdp.identity.config import load_identity_rules
    from cdp.identity.edges import daily_record_counts
    from cdp.identity.guardrails import busy_nodes

    rules = load_identity_rules(load_settings("local"))
    limit = next(t.max_records_per_day for t in rules.identifier_types if t.name == "mobile")
    assert limit == 5  # the shipped rule this test is about

    def seen(mobile, day, n, card=None):   # n orders of one day, two lines each
        return [(f"{mobile or card}-{day}-{i}", day, t(day, 8 + i % 12), mobile, card, "main")
                for i in range(n) for _ in range(2)]

    pos = (seen("store", D1, limit + 1)                 # one busy day -> shared
           + seen("loyal", D1, limit) + seen("loyal", D2, limit)   # at the limit every day: a person
           + seen("split", D1, 3)                       # 3 here and 3 in the mini-program: counted per source
           + seen(None, D1, 9, card="C1")               # no daily limit for cards
           + seen("junk", D1, 8))                       # already blocked: reported as blocked, not again
    mp = [(f"E{i}", D1, t(D1, 9 + i), "split", None, "main") for i in range(3)]
    silver = {"pos": spark.createDataFrame(pos, "source_record_id string, dt date, paid_at timestamp, "
                                                "mobile_hash string, member_card_no string, brand_id string"),
              "miniprogram": spark.createDataFrame(mp, "source_record_id string, dt date, event_at timestamp, "
                                                       "mobile_hash string, member_card_no string, brand_id string")}
    daily = daily_record_counts(silver, rules, ["mobile", "member_card"])
    blocked = spark.createDataFrame([("mobile:junk",)], "node_key string")
    got = [tuple(r) for r in busy_nodes(daily, rules, blocked).collect()]
    assert got == [("mobile:store", "shared", "seen on 6 pos records in one day (max_records_per_day 5)")]


def test_a_record_id_delivered_by_two_brands_is_counted(spark, settings, caplog):
    """Card C100 and POS order O1 exist in brands main and b2 (the contract asks for ids unique across brands):
    the graph keeps the two brands' cards apart, and the stage counts and logs the records that span brands,
    over all records in a full pass and over the records it reads in an increment. The lake's run log was
    written by a release without the count: its row stays and reads null."""
    import logging

    from cdp.lake import append_table, read_table
    from cdp.resolve_identity import RUN_SUMMARY_SCHEMA, RUN_SUMMARY_TABLE, run

    from pyspark.sql import functions as F

    earlier_schema = RUN_SUMMARY_SCHEMA.removesuffix(", records_spanning_brands long")
    earlier_columns = spark.createDataFrame([], earlier_schema).schema
    earlier_row = spark.createDataFrame([(None,) * len(earlier_columns)], earlier_columns)
    append_table(earlier_row.withColumn("mode", F.lit("full")), settings, RUN_SUMMARY_TABLE)

    day1 = {"silver_crm_members": [{"member_card_no": "C100", "mobile": M1, "registered_at": t(D1, 1)},
                                   {"member_card_no": "C100", "mobile": M2, "registered_at": t(D1, 2), "brand_id": "b2"},
                                   {"member_card_no": "C101", "mobile": FAMILY, "registered_at": t(D1, 3)}],
            "silver_pos_lines": [pos("O1", "C100", None, t(D1, 5)), {**pos("O1", "C200", None, t(D1, 6)), "brand_id": "b2"},
                                 pos("O2", "C101", None, t(D1, 7))]}
    write_silver(spark, settings, D1, day1)
    with caplog.at_level(logging.WARNING, logger="cdp.resolve_identity"):
        first = run(spark, settings, D1)
    assert first["mode"] == "full" and first["records_spanning_brands"] == 2
    assert "2 source record id(s) were delivered by more than one brand" in caplog.text
    ids = {r.node_key: r.one_id for r in read_table(spark, settings, "identity_nodes").collect()}
    assert ids["member_card:main:C100"] != ids["member_card:b2:C100"]

    # day 2 touches b2's order O1 (one more line) and a new main order: the increment reads one spanning record
    write_silver(spark, settings, D2, {"silver_pos_lines": [{**pos("O1", "C200", None, t(D2, 5), line=2), "brand_id": "b2"},
                                                            pos("O3", "C101", None, t(D2, 6))]})
    second = run(spark, settings, D2)
    assert second["mode"] == "incremental" and second["records_spanning_brands"] == 1
    logged = read_table(spark, settings, "identity_run_summary").orderBy(F.col("finished_at").asc_nulls_first()).collect()
    assert [(r.mode, r.records_spanning_brands) for r in logged] == [("full", None), ("full", 2), ("incremental", 1)]


def test_a_lake_given_relative_to_the_working_directory(spark, settings, monkeypatch):
    """`make demo` passes `--lake data/demo/lake`: the stage's Delta SQL (table properties of its state tables)
    must get the folder as an absolute path, not a table name relative to nothing."""
    from pathlib import Path

    from cdp.cli import main as cdp_main
    from cdp.lake import read_table

    write_silver(spark, settings, D1, DAY1)
    lake = Path(settings.lake_dir)
    monkeypatch.chdir(lake.parent)
    assert cdp_main(["identity", "resolve", "--lake", lake.name, "--date", D1.isoformat()]) == 0
    assert read_table(spark, settings, "identity_nodes").where("one_id is not null").count() > 0
