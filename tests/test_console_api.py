"""Console API: every endpoint, the role rules and the error cases, over a tiny real lake (real Spark + Delta).

The lake (tests/console_lake.py) has six customers whose expected segment membership is worked out in its
docstring; the expected numbers below follow from it.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
from pathlib import Path

import pytest

from cdp.console.auth import (PERMISSIONS, ConsoleConfig, SessionStore, hash_password, load_users,
                              role_permissions, verify_password)
from cdp.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2026, 6, 30)
USERS = REPO / "conf" / "console.yaml"
PASSWORDS = {"marketer": "marketer-demo", "engineer": "engineer-demo", "admin": "admin-demo"}
KYOHO_SEGMENT = {
    "label": "Kyoho trial coupon",
    "where": {"all": [{"bought": {"sku": "S20101", "within_days": 180}},
                      {"not": {"bought": {"sku": "S20102", "within_days": 180}}}]},
}


# --- pure logic, no JVM -----------------------------------------------------------------------------------------
def test_password_hashes_verify_and_reject():
    stored = hash_password("correct horse", salt=b"0123456789abcdef")
    assert stored.startswith("scrypt$16384$8$1$30313233")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert not verify_password("x", "scrypt$bad")           # malformed hash: refused, no exception
    assert not verify_password("x", "md5$1$1$1$00$00")


def test_users_file_validation_names_the_fix(tmp_path):
    bad = tmp_path / "console.yaml"
    bad.write_text("users:\n  bob: {role: boss, password_hash: plain}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_users(bad)
    text = str(err.value)
    assert str(bad) in text and "users.bob.role" in text and "users.bob.password_hash" in text
    assert "cdp console-hash-password" in text
    assert load_users(USERS).demo is True


def test_sessions_expire_after_idle_time_and_sign_out():
    now = [0.0]
    config = ConsoleConfig(session_idle_minutes=1, users={"m": {"role": "marketer",
                                                                "password_hash": hash_password("pw-12345")}})
    store = SessionStore(config, clock=lambda: now[0])
    assert store.sign_in("m", "nope") is None and store.sign_in("ghost", "pw-12345") is None
    session = store.sign_in("m", "pw-12345")
    now[0] = 59.0
    assert store.get(session.token) is session            # used within the minute: still valid, clock reset
    now[0] = 59.0 + 61.0
    assert store.get(session.token) is None               # idle > 1 minute: gone
    again = store.sign_in("m", "pw-12345")
    store.sign_out(again.token)
    assert store.get(again.token) is None


def test_role_permissions_follow_the_roles_file(tmp_path):
    roles = tmp_path / "roles.yaml"
    roles.write_text("roles:\n  marketer: {may_export: false}\n  data_engineer: {may_lookup_mobile: true}\n")
    perms = role_permissions(roles)
    assert "segments:export" not in perms["marketer"]
    assert "profiles:lookup_mobile" in perms["data_engineer"]
    assert perms["admin"] == PERMISSIONS["admin"]
    assert role_permissions(tmp_path / "absent.yaml") == PERMISSIONS


def test_formula_safe_and_masking():
    from cdp.console.views import mask_identifier, mask_record, normalise_mobile

    assert mask_identifier("M00012345") == "M0*****45" and mask_identifier("abc") == "***"
    assert mask_record({"a": [{"external_userid": "wmEXT_A_0001", "mobile_hash": "abcdef0123456789"}]}) == \
        {"a": [{"external_userid": "wm********01", "mobile_hash": "#abcdef01"}]}
    assert normalise_mobile("+86 139-1234-5678") == "13912345678"
    assert normalise_mobile("12345") is None


# --- the API on a real lake -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def console(spark, tmp_path_factory):
    from fastapi.testclient import TestClient

    from cdp.config import load_settings
    from cdp.console import create_app
    from console_lake import write_tiny_lake

    root = tmp_path_factory.mktemp("console")
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("__pycache__"))
    settings = load_settings("local", conf_dir=root / "conf",
                             overrides={"landing_dir": str(root / "landing"), "lake_dir": str(root / "lake")})
    write_tiny_lake(spark, settings)
    app = create_app(spark, settings, USERS, exports_dir=root / "exports")
    with TestClient(app) as client:
        tokens = {}
        for user, password in PASSWORDS.items():
            res = client.post("/api/auth/login", json={"username": user, "password": password})
            assert res.status_code == 200, res.text
            tokens[user] = {"Authorization": f"Bearer {res.json()['token']}"}
        yield client, tokens, settings, root


@pytest.mark.spark
def test_console_api(console, spark):
    client, tokens, settings, root = console
    m, e, a = tokens["marketer"], tokens["engineer"], tokens["admin"]

    # OpenAPI documents every endpoint
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/api/auth/login", "/api/auth/logout", "/api/me", "/api/catalog", "/api/segments/validate",
            "/api/segments/preview", "/api/segments", "/api/segments/{name}", "/api/segments/{name}/run",
            "/api/segments/{name}/export", "/api/profiles/search", "/api/profiles/{one_id}", "/api/overview/rfm",
            "/api/overview/lifecycle", "/api/overview/segments", "/api/overview/quality", "/api/tables",
            "/api/tables/{name}", "/api/admin/refresh", "/api/health"} <= paths
    assert client.get("/api/health").json()["ok"] is True
    page = client.get("/")
    assert page.status_code == 200 and "<script" in page.text

    # sign-in errors and who am I
    assert client.post("/api/auth/login", json={"username": "marketer", "password": "x"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "nobody", "password": "x"}).status_code == 401
    assert client.post("/api/auth/login", json={"username": "marketer"}).status_code == 422
    assert client.post("/api/auth/login", json={"username": "m", "password": "p", "role": "admin"}).status_code == 422
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", headers={"Authorization": "Bearer forged"}).status_code == 401
    assert client.get("/api/me", headers=m).json()["role"] == "marketer"
    assert client.get("/api/me", headers=e).json()["role"] == "data_engineer"

    # catalog for the builder
    cat = client.get("/api/catalog", headers=m).json()
    assert "dormant" in cat["lifecycle_stages"] and "Champions" in cat["rfm_segments"]
    assert [s["sku_id"] for s in cat["skus"]] == ["S20101", "S20102"]
    assert "churn_grade" in cat["tags"] and {"model": "churn", "grade": "high"} in cat["models"]

    # validate + preview: exactly A, D, F (see console_lake docstring)
    assert client.post("/api/segments/validate", headers=m, json={"definition": KYOHO_SEGMENT}).json()["ok"]
    bad = client.post("/api/segments/validate", headers=m, json={"definition": {"where": {"bougth": {}}}})
    assert bad.status_code == 422 and "did you mean 'bought'" in bad.json()["detail"]
    res = client.post("/api/segments/preview", headers=m, json={"definition": KYOHO_SEGMENT})
    assert res.status_code == 200, res.text
    preview = res.json()
    assert preview["count"] == 3 and preview["as_of_date"] == "2026-06-30"
    assert preview["by_stage"] == {"active": 1, "dormant": 1, "new": 1}
    assert preview["by_channel"] == {"ecommerce": 1, "miniprogram": 1, "pos": 1}
    assert preview["by_store"] == [{"store_id": "none", "count": 2}, {"store_id": "S1", "count": 1}]
    assert [s["one_id"] for s in preview["samples"]] == ["OID_A", "OID_D", "OID_F"]
    # the same engine as `cdp segment preview`: the shipped definition gives the same members
    from cdp.tags.segments import load_segment, preview as engine_preview
    shipped = engine_preview(spark, settings, load_segment("kyoho_not_black_vine", settings))
    assert (shipped.count, shipped.by_stage) == (preview["count"], preview["by_stage"])
    # a request value is a literal, never SQL: an injection-looking sku matches nothing; a bad column is refused
    inj = {"where": {"bought": {"sku": "x' OR '1'='1"}}}  # would match everyone if it were pasted into SQL
    assert client.post("/api/segments/preview", headers=m, json={"definition": inj}).json()["count"] == 0
    col = {"where": {"attribute": {"name": "one_id) OR (1=1", "eq": "x"}}}
    assert client.post("/api/segments/preview", headers=m, json={"definition": col}).status_code == 422
    # OR / NOT / lifecycle / rfm / model / tag leaves
    mixed = {"where": {"any": [{"lifecycle": ["dormant"]}, {"rfm": ["Champions"]},
                               {"all": [{"model": {"name": "churn", "grade": "medium"}},
                                        {"tag": {"name": "churn_grade", "in": ["medium"]}}]}]}}
    assert [s["one_id"] for s in client.post("/api/segments/preview", headers=m,
                                             json={"definition": mixed}).json()["samples"]] == ["OID_B", "OID_D",
                                                                                                 "OID_F"]

    # save (conf/segments format), conflicts, bad names, list, get
    assert client.put("/api/segments/kyoho_trial", headers=m, json={"definition": KYOHO_SEGMENT}).status_code == 200
    saved = (root / "conf" / "segments" / "kyoho_trial.yaml").read_text(encoding="utf-8")
    assert "name: kyoho_trial" in saved and "S20102" in saved
    assert client.put("/api/segments/kyoho_trial", headers=m, json={"definition": KYOHO_SEGMENT}).status_code == 409
    assert client.put("/api/segments/kyoho_trial", headers=m,
                      json={"definition": KYOHO_SEGMENT, "overwrite": True}).status_code == 200
    assert client.put("/api/segments/Bad-Name", headers=m, json={"definition": KYOHO_SEGMENT}).status_code == 422
    listed = client.get("/api/segments", headers=m).json()["segments"]
    assert {"name": "kyoho_trial", "label": "Kyoho trial coupon", "description": None} in listed
    assert len(listed) == len(list((REPO / "conf" / "segments").glob("*.yaml"))) + 1
    assert client.get("/api/segments/kyoho_trial", headers=m).json()["definition"]["where"] == KYOHO_SEGMENT["where"]
    assert client.get("/api/segments/nope", headers=m).status_code == 404

    # run -> gold_segment_members holds exactly A, D, F for the run date
    run = client.post("/api/segments/kyoho_trial/run", headers=m, json={}).json()
    assert run == {"segment": "kyoho_trial", "run_date": "2026-06-30", "members": 3}
    from cdp.lake import read_table
    got = sorted(r["one_id"] for r in read_table(spark, settings, "gold_segment_members")
                 .where("segment = 'kyoho_trial'").collect())
    assert got == ["OID_A", "OID_D", "OID_F"]
    assert client.post("/api/segments/nope/run", headers=m, json={}).status_code == 404

    # export: consent-filtered (D excluded) and formula-safe (F's external_userid starts with "=")
    res = client.post("/api/segments/kyoho_trial/export", headers=m, json={"target": "wecom"})
    assert res.status_code == 200, res.text
    assert (res.headers["x-members"], res.headers["x-excluded-no-consent"], res.headers["x-exported-rows"]) == \
        ("3", "1", "2")
    text = res.content.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text))) == [
        ["one_id", "external_userid", "guide_userid", "store_id"], ["OID_A", "wmEXT_A_0001", "G1", "S1"],
        ["OID_F", "'=HYPERLINK(\"http://x\")", "G2", "S2"]]
    assert (root / "exports" / "kyoho_trial_wecom_2026-06-30.csv").read_bytes() == res.content
    assert client.post("/api/segments/kyoho_trial/export", headers=m, json={"target": "phone"}).status_code == 422
    assert client.post("/api/segments/kyoho_trial/export", headers=m, json={"target": "unionid"}).status_code == 403
    assert client.post("/api/segments/wecom_not_added/export", headers=m, json={}).status_code == 409  # never run

    # profile search: one_id, member card; mobile only for roles allowed (conf/roles.yaml: admin)
    assert client.post("/api/profiles/search", headers=m, json={"one_id": "OID_A"}).json() == {"one_ids": ["OID_A"]}
    assert client.post("/api/profiles/search", headers=m,
                       json={"member_card": "M00012345"}).json() == {"one_ids": ["OID_A"]}
    assert client.post("/api/profiles/search", headers=m, json={"mobile": "13912345678"}).status_code == 403
    assert client.post("/api/profiles/search", headers=a,
                       json={"mobile": "+86 139 1234 5678"}).json() == {"one_ids": ["OID_A"]}
    assert client.post("/api/profiles/search", headers=a, json={"mobile": "12345"}).status_code == 422
    assert client.post("/api/profiles/search", headers=m, json={}).status_code == 422
    assert client.post("/api/profiles/search", headers=m,
                       json={"one_id": "OID_A", "member_card": "M1"}).status_code == 422

    # profile 360 as a marketer: masked identifiers only, orders, tags, lifecycle, RFM, scores, WeCom, graph
    res = client.get("/api/profiles/OID_A", headers=m)
    assert res.status_code == 200
    p = res.json()
    raw = json.dumps(p, ensure_ascii=False)
    assert "13912345678" not in raw and "M00012345" not in raw and "wmEXT_A_0001" not in raw
    assert p["profile"]["memberships"][0]["member_card_no"] == "M0*****45"
    assert {"kind": "mobile", "value": "139****5678", "sources": ["crm", "pos"]} in p["identities"]
    assert {"kind": "member_card", "value": "M0*****45", "sources": ["crm", "pos"]} in p["identities"]
    assert [(o["channel"], o["order_id"], o["amount"]) for o in p["orders"]] == [("pos", "P1", 39.9)]
    from cdp.lake import read_table as _read
    expected_tags = sorted(r["tag"] for r in _read(spark, settings, "gold_tags_long").where("one_id = 'OID_A'").collect())
    assert [t["tag"] for t in p["tags"]] == expected_tags and "lifecycle_stage" in expected_tags
    assert p["lifecycle"]["current"]["stage"] == "active"
    assert p["lifecycle"]["transitions"][0]["to_stage"] == "active"
    assert p["rfm"]["rfm_segment"] == "Promising"
    assert [(s["model"], s["grade"]) for s in p["scores"]] == [("churn", "low"), ("repurchase", "high")]
    assert [(w["guide_userid"], w["external_userid"]) for w in p["wecom"]] == [("G1", "wm********01")]
    graph = p["identity_graph"]
    kinds = sorted(n["kind"] for n in graph["nodes"])
    assert kinds.count("record") == 3 and "mobile" in kinds and "member_card" in kinds
    assert len(graph["edges"]) >= 4
    # an admin sees the member card itself (still no raw mobile: gold and silver hold none)
    pa = client.get("/api/profiles/OID_A", headers=a).json()
    assert pa["profile"]["memberships"][0]["member_card_no"] == "M00012345"
    assert "13912345678" not in json.dumps(pa)
    assert client.get("/api/profiles/OID_ZZZ", headers=m).status_code == 404
    assert client.get("/api/profiles/" + "x" * 65, headers=m).status_code == 422

    # once the identity stage has run, the graph is its nodes and links (rules, statuses), keys never leave
    from cdp.lake import overwrite_table
    nodes = [("mobile:h1", "mobile", "mobile:#3f2a9c1b", "active", "OID_A"),
             ("member_card:main:M00012345", "member_card", "member_card:main:****2345", "active", "OID_A"),
             ("member_card:main:M00022222", "member_card", "member_card:main:****2222", "active", "OID_B")]
    overwrite_table(spark.createDataFrame(nodes, "node_key string, id_type string, display string, status string, "
                                                 "one_id string"), settings, "identity_nodes")
    edges = [("mobile:h1", "member_card:main:M00012345", "crm_card_mobile", "crm", "kept", 3, AS_OF),
             ("mobile:h1", "member_card:main:M00022222", "pos_card_mobile", "pos", "dropped_limit", 1, AS_OF)]
    overwrite_table(spark.createDataFrame(edges, "src_key string, dst_key string, rule string, source string, "
                                                 "status string, record_count long, run_date date"),
                    settings, "identity_edges")
    res = client.get("/api/profiles/OID_A", headers=m)
    graph = res.json()["identity_graph"]
    assert graph["source"] == "identity" and "M00012345" not in res.text and "mobile:h1" not in res.text
    assert [(n["label"], n["member"]) for n in graph["nodes"]] == [
        ("member_card:main:****2345", True), ("member_card:main:****2222", False), ("mobile:#3f2a9c1b", True)]
    assert [(e["source"], e["target"], e["kept"]) for e in graph["edges"]] == [("n2", "n0", True), ("n2", "n1", False)]
    assert graph["edges"][1]["rule"] == "pos_card_mobile (pos, 1 records) [dropped_limit]"

    # overview pictures
    rfm = client.get("/api/overview/rfm", headers=m).json()
    assert rfm["as_of_date"] == "2026-06-30" and sum(c["customers"] for c in rfm["cells"]) == 5
    life = client.get("/api/overview/lifecycle", headers=m).json()
    assert sorted((s["stage"], s["customers"]) for s in life["stages"]) == [
        ("active", 1), ("churned", 1), ("dormant", 1), ("loyal", 1), ("new", 1), ("prospect", 1)]
    assert len({h["as_of_date"] for h in life["history"]}) == 2
    assert client.get("/api/overview/lifecycle?days=0", headers=m).status_code == 422
    segs = client.get("/api/overview/segments", headers=m).json()
    assert [(s["segment"], s["members"]) for s in segs["segments"]] == [("kyoho_trial", 3), ("old_seg", 2),
                                                                          ("other_seg", 2)]
    assert {"segment_a": "old_seg", "segment_b": "other_seg", "members": 1} in segs["overlaps"]
    assert {"segment_a": "kyoho_trial", "segment_b": "old_seg", "members": 1} in segs["overlaps"]
    quality = client.get("/api/overview/quality", headers=m).json()
    assert [(r["run_date"], r["source"], r["rows_accepted"], r["rows_quarantined"]) for r in quality["runs"]] == [
        ("2026-06-30", "pos", 6, 2), ("2026-06-29", "crm", 5, 0), ("2026-06-29", "pos", 9, 1)]
    # identity runs, latest first
    assert [(r["run_date"], r["mode"], r["records_touched"], r["one_ids"], r["creates"], r["merges"], r["nodes_shared"],
             r["duration_s"]) for r in quality["identity_runs"]] == [
        ("2026-06-30", "incremental", 2, 2, 0, 1, 1, 12.0), ("2026-06-29", "full", None, 3, 3, 0, 0, 61.3)]
    assert len(client.get("/api/overview/quality?runs=1", headers=m).json()["identity_runs"]) == 1

    # tables by role: marketers gold only, masked; nobody gets bronze or pii_values through the console
    assert all(t.startswith("gold_") for t in client.get("/api/tables", headers=m).json()["tables"])
    rows = client.get("/api/tables/gold_profiles?limit=2", headers=m).json()["rows"]
    assert len(rows) == 2 and "M00012345" not in json.dumps(rows)
    assert client.get("/api/tables/silver_crm_members", headers=m).status_code == 403
    assert client.get("/api/tables/silver_crm_members", headers=e).status_code == 200
    for name in ("bronze_crm_members", "pii_values"):
        for who in (m, e, a):
            res = client.get(f"/api/tables/{name}", headers=who)
            assert res.status_code == 403 and "13912345678" not in res.text
    for who in (e, a):
        quarantined = client.get("/api/tables/quarantine_rows", headers=who)
        assert quarantined.status_code == 200 and "13912345678" not in quarantined.text
        assert [(r["rule"], r["raw_record"][:25]) for r in quarantined.json()["rows"]] == [
            ("amount_parses", "(withheld by the console:")]
    assert client.get("/api/tables/no_such_table", headers=e).status_code == 404
    assert client.get("/api/tables/gold_profiles?limit=1000", headers=m).status_code == 422

    # refresh is for engineers; logout ends the session
    assert client.post("/api/admin/refresh", headers=m).status_code == 403
    assert client.post("/api/admin/refresh", headers=e).json() == {"ok": True}
    token = client.post("/api/auth/login", json={"username": "marketer", "password": PASSWORDS["marketer"]}).json()
    h = {"Authorization": f"Bearer {token['token']}"}
    assert client.post("/api/auth/logout", headers=h).json() == {"ok": True}
    assert client.get("/api/me", headers=h).status_code == 401


def test_demo_users_refused_outside_local(settings):
    from cdp.console import create_app

    with pytest.raises(ConfigError, match="only allowed with the local profile"):
        create_app(None, settings.model_copy(update={"profile": "cluster"}), USERS)  # type: ignore[arg-type]
