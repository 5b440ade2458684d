"""The identity stage's combination path equals the row-by-row definition of observations, nodes and edges.

The stage reduces silver to one row per record and one per distinct identifier combination
(`edges.record_keys`, `edges.identifier_combos`) and derives nodes, edges, the guardrails' daily counts and the
record map from combinations weighted by their number of records. The oracle is the plain row-by-row form
(`edges.extract_observations` / `extract_edges`, a record per identifier) on seeded random silver rows built to
hit the hard cases: orders whose lines carry different identifiers, duplicated and empty values in array
identifiers, blank strings, missing scopes, a link rule with a `where` condition, one record id in two sources.
"""
from __future__ import annotations

import datetime as dt
import random
from functools import reduce

import pytest

pytestmark = pytest.mark.spark

T0 = dt.datetime(2026, 11, 1, 8, 0)


def _rules():
    import yaml

    from cdp.config import default_conf_dir
    from cdp.identity.config import IDENTITY_FILE, parse_identity_rules

    raw = yaml.safe_load((default_conf_dir() / IDENTITY_FILE).read_text(encoding="utf-8"))
    raw["link_rules"].append({"name": "pos_big_card_mobile", "source": "pos", "left": "member_card",
                              "right": "mobile", "rank": 45, "where": "amount > 100"})
    return parse_identity_rules(raw)


def _silver(spark, seed: int):
    """Random silver frames (only the columns the rules read) with small value pools, so values repeat."""
    rnd = random.Random(seed)

    def pick(pool, blank=0.15):
        r = rnd.random()
        return None if r < blank else ("  " if r < blank + 0.03 else rnd.choice(pool))

    mobiles, cards, unions, opens = ([f"{p}{i}" for i in range(n)] for p, n in
                                     (("m", 30), ("c", 25), ("u", 20), ("o", 25)))
    days = [dt.date(2026, 11, d) for d in (1, 2, 3)]

    def when(day):
        return dt.datetime.combine(day, dt.time(rnd.randrange(24), rnd.randrange(60)))

    pos = []
    for order in range(120):
        day, card, mobile = rnd.choice(days), pick(cards), pick(mobiles)
        paid = when(day)
        for _ in range(rnd.randint(1, 3)):
            if rnd.random() < 0.2:   # a line with other identifiers than the order's first line
                card, mobile, paid = pick(cards), pick(mobiles), when(day)
            pos.append((f"O{order}", day, paid, rnd.choice(["main", "fresh", None]), card, mobile,
                        rnd.choice([50, 150])))
    mp = [(f"E{i}", d, when(d), rnd.choice(["wxA", "wxB"]), pick(opens), pick(unions), pick(mobiles, 0.6),
           pick(cards, 0.7), "main") for i, d in ((i, rnd.choice(days)) for i in range(150))]
    wecom = []
    for contact in range(40):
        for _ in range(rnd.randint(1, 3)):   # one row per guide who added the contact
            d = rnd.choice(days)
            remarks = [rnd.choice(mobiles + ["", None]) for _ in range(rnd.randint(0, 3))]
            wecom.append((f"wm{contact}", d, when(d), f"wm{contact}", pick(unions, 0.4), remarks))
    crm = [(f"c{i}", days[0], when(days[0]), "main", f"c{i}", pick(mobiles)) for i in range(25)]
    ecom = [(f"O{i}", d, when(d), rnd.choice(["tmall", "jd"]), pick([f"b{j}" for j in range(15)]), pick(cards, 0.5),
             "main") for i, d in ((i, rnd.choice(days)) for i in range(60))]   # record ids shared with POS
    return {
        "pos": spark.createDataFrame(pos, "source_record_id string, dt date, paid_at timestamp, brand_id string, "
                                          "member_card_no string, mobile_hash string, amount int"),
        "miniprogram": spark.createDataFrame(mp, "source_record_id string, dt date, event_at timestamp, appid string, "
                                                 "openid_hash string, unionid_hash string, mobile_hash string, "
                                                 "member_card_no string, brand_id string"),
        "wecom": spark.createDataFrame(wecom, "source_record_id string, dt date, added_at timestamp, "
                                              "external_userid string, unionid_hash string, "
                                              "remark_mobile_hashes array<string>"),
        "crm": spark.createDataFrame(crm, "source_record_id string, dt date, registered_at timestamp, brand_id string, "
                                          "member_card_no string, mobile_hash string"),
        "ecommerce": spark.createDataFrame(ecom, "source_record_id string, dt date, paid_at timestamp, platform string, "
                                                 "buyer_id string, member_card_no string, brand_id string"),
    }


def _combination_path(silver, rules):
    from cdp.identity.edges import graph_from_combos, identifier_combos, record_keys

    records = record_keys(silver, rules).localCheckpoint()
    combos = {name: c.localCheckpoint() for name, c in identifier_combos(silver, rules).items()}
    nodes, edges = graph_from_combos(records, combos, rules, materialise=lambda df: df.localCheckpoint())
    return records, combos, nodes, edges


def _rows(df, order):
    return sorted((tuple(r) for r in df.select(*order).collect()), key=repr)


@pytest.mark.parametrize("seed", [1])
def test_combination_path_equals_the_row_by_row_definition(spark, seed):
    from cdp.identity.edges import extract_observations

    rules = _rules()
    silver = _silver(spark, seed)
    records, combos, nodes, edges = _combination_path(silver, rules)
    oracle_obs = extract_observations(silver, rules).localCheckpoint()
    _check(rules, silver, records, combos, nodes, edges, oracle_obs)


def _check(rules, silver, records, combos, nodes, edges, oracle_obs):
    from pyspark.sql import functions as F

    from cdp.identity.edges import EDGE_COLUMNS, build_nodes, combo_best_nodes, daily_record_counts, extract_edges
    from cdp.identity.persist import record_one_ids

    node_cols = ["node_key", "id_type", "id_priority", "scope", "display", "first_seen_at", "last_seen_at",
                 "anchor_at", "record_count"]
    expected_nodes = _rows(build_nodes(oracle_obs, rules.type_names), node_cols)
    assert len(expected_nodes) > 100
    assert _rows(nodes, node_cols) == expected_nodes

    expected_edges = _rows(extract_edges(silver, rules), EDGE_COLUMNS)
    assert {r[2] for r in expected_edges} >= {"pos_card_mobile", "pos_big_card_mobile", "wecom_remark_mobile",
                                              "mp_openid_unionid", "ecom_buyer_card"}
    assert _rows(edges, EDGE_COLUMNS) == expected_edges

    # the guardrails' daily counts: distinct records carrying the identifier in a row of that day (plain Python)
    expected_daily: dict[tuple, set] = {}
    for name, df in silver.items():
        source = rules.sources[name]
        for id_type in ("mobile", "member_card"):
            ident = source.identifiers.get(id_type)
            if ident is None:
                continue
            for row in df.collect():
                values = row[ident.value] or [] if ident.array else [row[ident.value]]
                scope = (row[ident.scope] or "").strip() if ident.scope else None
                for v in {(v or "").strip() for v in values} - {""}:
                    if ident.scope and not scope:
                        continue
                    key = f"{id_type}:{scope}:{v}" if ident.scope else f"{id_type}:{v}"
                    day = row[source.seen_at].date()
                    expected_daily.setdefault((key, id_type, name, day), set()).add(row["source_record_id"])
    got_daily = _rows(daily_record_counts(silver, rules, ["mobile", "member_card"]),
                      ["node_key", "id_type", "source", "day", "records"])
    assert got_daily == sorted(((*k, len(v)) for k, v in expected_daily.items()), key=repr)

    # record map: every record takes its most trusted identifier that has a One-ID (here: every third node has none)
    node_map = (nodes.select("node_key", F.concat(F.lit("OID"), F.substring(F.sha2("node_key", 256), 1, 8)).alias("one_id"))
                .where(F.abs(F.hash("node_key")) % 3 != 0))
    best = reduce(lambda a, b: a.unionByName(b),
                  [combo_best_nodes(c, name, rules, node_map) for name, c in combos.items()])
    got = _rows(record_one_ids(records, best), ["source", "source_record_id", "one_id"])
    expected = (oracle_obs.select("source", "source_record_id").distinct()
                .join(oracle_obs.join(node_map, "node_key").groupBy("source", "source_record_id")
                      .agg(F.min(F.struct("id_priority", "node_key", "one_id")).alias("b"))
                      .select("source", "source_record_id", "b.one_id"), ["source", "source_record_id"], "left"))
    all_records = (reduce(lambda a, b: a.unionByName(b),
                          [df.select(F.lit(n).alias("source"), "source_record_id") for n, df in silver.items()])
                   .distinct())
    expected = all_records.join(expected, ["source", "source_record_id"], "left")
    assert got == _rows(expected, ["source", "source_record_id", "one_id"])
    assert sum(1 for r in got if r[2] is None) > 0   # records without any identifier with a One-ID stay null
    assert records.where(F.size("ckeys") > 1).count() > 0   # the several-combinations path was exercised
