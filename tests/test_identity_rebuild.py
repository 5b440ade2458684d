"""Rule changes applied by `cdp identity rebuild` (without --dry-run), and `method: spark` through the real stage.

Silver of day 1 is the story of test_identity_pipeline (persons A and B, junk/store/family phones, card C009
with four phones where the limit is 3, ...). The changed rules (a copy of conf/identity.yaml):
  - link rule `mp_bind_mobile` removed: A's openid+unionid no longer join A's card+phone -> A splits;
  - mobile `max_per_one_id` 3 -> 4: C009's fourth phone (its own profile on day 1) joins C009 -> a merge.
Everything else keeps its One-ID.

Both tests start from the same day-1 resolution under the shipped rules (the module fixture `day1`, run once:
conftest sends this module's tests to one worker).
"""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from identity_silver import h, write_silver
from test_identity_pipeline import DAY1, M9, card, mob, record_map

D1 = dt.date(2026, 11, 1)
CONF = Path(__file__).resolve().parent.parent / "conf" / "identity.yaml"


def conf_dir(root: Path, method: str = "array", changed_rules: bool = False) -> str:
    """A copy of conf/ whose identity.yaml selects `method` (and, with changed_rules, the changed rules)."""
    shutil.copytree(CONF.parent, root, ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    rules = yaml.safe_load(CONF.read_text())
    rules["method"] = method
    if changed_rules:
        rules["link_rules"] = [r for r in rules["link_rules"] if r["name"] != "mp_bind_mobile"]
        for t in rules["identifier_types"]:
            if t["name"] == "mobile":
                t["max_per_one_id"] = 4
    (root / "identity.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return str(root)


@dataclass(frozen=True)
class Day1:
    """Day 1 resolved under the shipped rules (method array): the lake's settings and what the run left."""

    settings: Any
    summary: dict
    nodes: dict
    records: dict
    edges: dict


def edge_statuses(spark, settings) -> dict[tuple[str, str, str], str]:
    from cdp.lake import read_table

    return {(r.src_key, r.dst_key, r.rule): r.status for r in read_table(spark, settings, "identity_edges").collect()}


@pytest.fixture(scope="module")
def day1(spark, tmp_path_factory) -> Day1:
    from cdp.config import load_settings
    from cdp.resolve_identity import run

    root = tmp_path_factory.mktemp("rebuild")
    settings = load_settings("local", overrides={"landing_dir": str(root / "landing"), "lake_dir": str(root / "lake")})
    write_silver(spark, settings, D1, DAY1)
    summary = run(spark, settings, D1)
    return Day1(settings, {k: v for k, v in summary.items() if k != "run_date"}, node_map(spark, settings),
                record_map(spark, settings), edge_statuses(spark, settings))


def node_map(spark, settings):
    """{node_key: one_id} of every node (None for blocked/shared ones)."""
    from cdp.lake import read_table

    return {r.node_key: r.one_id for r in read_table(spark, settings, "identity_nodes").collect()}


@pytest.mark.spark
def test_rebuild_applies_new_rules_like_a_run_from_scratch(spark, make_settings, tmp_path, day1):
    from cdp.cli import main as cdp_main
    from cdp.identity.stable_ids import one_id_for
    from cdp.lake import read_table
    from cdp.resolve_identity import run

    before_nodes, before_records = day1.nodes, day1.records

    # ---- rebuild under the new rules, applied (the CLI path: no --dry-run) -----------------------------------
    new_conf = conf_dir(tmp_path / "conf_new", changed_rules=True)
    new = make_settings(lake_dir=day1.settings.lake_dir, conf_dir=new_conf)
    assert cdp_main(["identity", "rebuild", "--lake", new.lake_dir, "--conf-dir", new_conf, "--date", str(D1)]) == 0
    o_a, u_a = f"openid:wxapp:{h('openid', 'oA')}", f"unionid:{h('unionid', 'uA')}"
    a_id, c9_id, m94_id = before_nodes[card("C001")], before_nodes[card("C009")], before_nodes[mob(M9[3])]
    # A's card side keeps A's id (it holds the anchor, C001 registered 01:00); openid+unionid get the id of their
    # own anchor (both first seen 10:00, the openid key sorts first); C009's id survives the merge (older anchor).
    new_a = one_id_for(o_a)
    expected_nodes = {**before_nodes, o_a: new_a, u_a: new_a, mob(M9[3]): c9_id}
    assert node_map(spark, new) == expected_nodes
    assert record_map(spark, new) == {**before_records, ("miniprogram", "E1"): new_a, ("miniprogram", "E2"): new_a}
    history = {(r.one_id, r.event_type, r.related_one_id) for r in read_table(spark, new, "identity_history").collect()
               if r.event_type != "create"}
    assert history == {(new_a, "split", a_id), (m94_id, "merge", c9_id)}
    redirects = {r.old_one_id: r.current_one_id for r in read_table(spark, new, "identity_redirects").collect()}
    assert redirects == {m94_id: c9_id}
    events = read_table(spark, new, "silver_miniprogram_events").select("event_id", "one_id").collect()
    assert sorted(map(tuple, events)) == [("E1", new_a), ("E2", new_a)]   # silver one_id follows the record map

    # ---- the same silver resolved from nothing under the new rules gives the same ids -----------------------
    # (exact equality holds here: no anchor was erased and no late data predates an anchor, the two documented
    # cases where a rebuild keeps an id a from-scratch run would not)
    scratch = make_settings(lake_dir=str(tmp_path / "scratch"), conf_dir=new_conf)
    write_silver(spark, scratch, D1, DAY1)
    run(spark, scratch, D1)
    assert node_map(spark, scratch) == expected_nodes
    assert record_map(spark, scratch) == record_map(spark, new)


@pytest.mark.spark
def test_method_spark_from_config_gives_the_default_methods_result(spark, make_settings, tmp_path, day1):
    from cdp.identity.config import load_identity_rules
    from cdp.resolve_identity import run

    assert load_identity_rules(day1.settings).method == "array"     # day 1 ran the shipped (default) method
    settings = make_settings(lake_dir=str(tmp_path / "spark"), conf_dir=conf_dir(tmp_path / "conf_spark", "spark"))
    assert load_identity_rules(settings).method == "spark"
    write_silver(spark, settings, D1, DAY1)
    summary = run(spark, settings, D1)
    results = {"array": (day1.nodes, day1.records, day1.edges, day1.summary),
               "spark": (node_map(spark, settings), record_map(spark, settings), edge_statuses(spark, settings),
                         {k: v for k, v in summary.items() if k != "run_date"})}
    assert results["spark"] == results["array"]
    # the data exercises the limit path of the distributed engine: C009's fourth phone link is dropped
    edges = results["spark"][2]
    assert edges[(min(card("C009"), mob(M9[3])), max(card("C009"), mob(M9[3])), "pos_card_mobile")] == "dropped_limit"


@pytest.mark.spark
def test_dry_run_after_an_update_that_moved_a_records_landing_date_reports_no_change(spark, make_settings):
    """A CRM card re-delivered on day 2 (a new level) lands again: its silver row now carries day 2's `dt`, so
    computed from nothing the card would anchor its profile later and the profile would get another id. The
    daily run carries the anchor forward and so does an applied rebuild; the dry run must report what applying
    would do (nothing), not the from-nothing ids (helper's independent evaluation: 247 ids reported changed)."""
    from delta.tables import DeltaTable
    from test_identity_pipeline import t

    from cdp.resolve_identity import rebuild, run

    d2 = D1 + dt.timedelta(days=1)
    settings = make_settings()
    write_silver(spark, settings, D1, {
        "silver_crm_members": [{"member_card_no": "C300", "mobile": "13911113000", "registered_at": t(D1, 9)}],
        "silver_miniprogram_events": [{"event_id": "E300", "event_type": "bind_mobile", "event_at": t(D1, 10),
                                       "appid": "wxapp", "openid": "oX", "mobile": "13911113000"}]})
    run(spark, settings, D1)
    before = node_map(spark, settings)
    assert len(set(before.values())) == 1
    DeltaTable.forPath(spark, settings.table_path("silver_crm_members")).update(
        "member_card_no = 'C300'", {"dt": f"DATE'{d2.isoformat()}'"})
    run(spark, settings, d2)
    assert node_map(spark, settings) == before
    report = rebuild(spark, settings, d2, dry_run=True)
    assert (report["profiles_merged"], report["profiles_split"], report["nodes_id_changed"]) == (0, 0, 0)
