"""Pure checks (no JVM): identity quality metrics, rule validation errors, redirects, never-link cutting,
and deterministic linking on the external labelled data (Splink's fake_1000)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from cdp.errors import ConfigError
from cdp.identity.config import load_identity_rules, parse_identity_rules
from cdp.identity.persist import compare_maps, resolve_one_id, resolve_with_overrides, update_redirects
from cdp.identity.quality import pairwise_quality, reachable_groups
from conftest import EXTERNAL_DATA


def _frame(rows, cols):
    return pd.DataFrame(rows, columns=cols)


def test_pairwise_quality_on_hand_cases():
    # truth: person 1 = a,b,c ; person 2 = d,e ; person 3 = f
    truth = _frame([("pos", r, p) for r, p in zip("abcdef", [1, 1, 1, 2, 2, 3])], ["source", "source_record_id", "person_id"])
    # predicted: {a,b} X, {c} none, {d,e,f} Y  -> over-merge of persons 2 and 3, person 1 split
    rm = _frame([("pos", r, o) for r, o in zip("abcdef", ["X", "X", None, "Y", "Y", "Y"])],
                ["source", "source_record_id", "one_id"])
    q = pairwise_quality(rm, truth, rejections=4)
    # pairs: true = 3 + 1 = 4; predicted = 1 (X) + 3 (Y) = 4; TP = ab + de = 2
    assert q == {"records": 6, "records_without_one_id": 1, "persons": 3, "profiles": 2, "true_pairs": 4,
                 "predicted_pairs": 4, "true_positive_pairs": 2, "precision": 0.5, "recall": 0.5,
                 "over_merged_profiles": 1, "under_merged_persons": 1, "largest_profile_records": 3,
                 "guardrail_rejections": 4}
    # links: a-b share a card, c carries nothing shared with them -> the links allow only the pair ab for person 1;
    # d, e, f share a phone (f is another person: the phone is split per person, so f reaches nobody)
    ident = _frame([("pos", "a", "k1"), ("pos", "b", "k1"), ("pos", "c", "k2"), ("pos", "d", "m"),
                    ("pos", "e", "m"), ("pos", "f", "m")], ["source", "source_record_id", "node_key"])
    reach = reachable_groups(ident, truth)
    q2 = pairwise_quality(rm, truth, reachable=reach)
    assert (q2["allowed_pairs"], q2["recall_of_allowed"], q2["under_merged_persons_linkable"]) == (2, 1.0, 0)


def test_fake_1000_deterministic_email_linking():
    """Exact-email linking on Splink's fake_1000: precise, but it cannot reach records without an email or
    with a typo in it (honest ceiling: recall of about a third of the true pairs)."""
    df = pd.read_csv(EXTERNAL_DATA / "splink" / "fake_1000.csv", dtype={"unique_id": str})
    df["source"] = "fake_1000"
    df = df.rename(columns={"unique_id": "source_record_id", "cluster": "person_id"})
    email = df["email"].str.strip().str.lower()
    rm = df.assign(one_id=np.where(email.notna(), "email:" + email.fillna(""), None))
    ident = df.assign(node_key="email:" + email)[email.notna()]
    q = pairwise_quality(rm, df, reachable=reachable_groups(ident, df))
    assert q["precision"] == 1.0 and q["over_merged_profiles"] == 0         # no email is shared by two people
    assert 0.2 < q["recall"] < 0.5                                           # typos and missing emails
    assert q["recall_of_allowed"] == 1.0                                     # everything the links allow
    assert q["records_without_one_id"] == int(df["email"].isna().sum())


def test_rules_validation_names_file_key_and_fix(tmp_path):
    rules = load_identity_rules()
    assert rules.type_names[0] == "unionid" and rules.priority("mobile") == len(rules.type_names) - 1
    raw = yaml.safe_load(open(rules_path()))
    raw["link_rules"][0]["left"] = "buyer_id"
    with pytest.raises(ConfigError, match=r"identity.yaml: key link_rules\[0\] \(mp_openid_unionid\).left: 'buyer_id' is not an identifier of source 'miniprogram'; use one of"):
        parse_identity_rules(raw, "identity.yaml")
    raw = yaml.safe_load(open(rules_path()))
    raw["identifier_types"][1]["blocklist"]["patterns"] = ["(unclosed"]
    with pytest.raises(ConfigError, match=r"key identifier_types.1.blocklist: pattern '\(unclosed' is not a valid"):
        parse_identity_rules(raw, "identity.yaml")
    raw = yaml.safe_load(open(rules_path()))
    del raw["sources"]["pos"]["identifiers"]["member_card"]["scope"]
    with pytest.raises(ConfigError, match=r"sources.pos.identifiers.member_card: type is scoped by brand; add `scope"):
        parse_identity_rules(raw, "identity.yaml")
    raw = yaml.safe_load(open(rules_path()))
    raw["identifier_types"][0]["max_per_one_id"] = -1
    with pytest.raises(ConfigError, match=r"key identifier_types.0.max_per_one_id: Input should be greater than"):
        parse_identity_rules(raw, "identity.yaml")


def rules_path():
    from cdp.config import default_conf_dir

    return default_conf_dir() / "identity.yaml"


def test_redirects_follow_merges_and_reactivation():
    t = pd.Timestamp("2026-11-02")
    ev = _frame([("B", "merge", "A", 3, "merged", t)], ["one_id", "event_type", "related_one_id", "node_count", "reason", "event_at"])
    red = update_redirects(pd.DataFrame(columns=["old_one_id", "current_one_id", "redirected_at", "reason"]), ev)
    ev2 = _frame([("A", "merge", "C", 5, "merged", t + pd.Timedelta(days=1))], list(ev.columns))
    red2 = update_redirects(red, ev2)
    assert sorted(zip(red2.old_one_id, red2.current_one_id)) == [("A", "C"), ("B", "C")]  # chains stay one hop
    assert resolve_one_id("B", red2) == "C" and resolve_one_id("C", red2) == "C"
    ev3 = _frame([("B", "split", "C", 1, "re-activated", t + pd.Timedelta(days=2))], list(ev.columns))
    assert list(update_redirects(red2, ev3).old_one_id) == ["A"]


def test_never_link_cuts_the_weakest_link_on_the_path():
    # 0 - 1 - 2 - 3 chain, ranks 1, 5, 2: never-link(0, 3) cuts the rank-5 edge (1-2)
    comps = resolve_with_overrides(np.zeros(4, np.int16), np.array([0, 1, 2]), np.array([1, 2, 3]),
                                   np.array([1, 5, 2]), np.array([0], np.int32), never_link=[(0, 3)])
    assert comps.labels.tolist() == [0, 0, 2, 2] and comps.edge_reason.tolist() == [0, 2, 0]


def test_compare_maps_counts_merges_and_splits():
    cur = _frame([("a", "X"), ("b", "X"), ("c", "Y"), ("d", "Z")], ["node_key", "one_id"])
    new = _frame([("a", "X"), ("b", "W"), ("c", "X"), ("e", "V")], ["node_key", "one_id"])
    r = compare_maps(cur, new)
    assert (r["profiles_merged"], r["profiles_split"], r["nodes_id_changed"], r["nodes_losing_one_id"],
            r["nodes_gaining_one_id"]) == (1, 1, 2, 1, 1)
