"""The sample data generator (pure Python, no JVM): determinism, the landing contract, and a truth that agrees
with the files it describes. The checks re-read the written files with an independent strict parser, so a truth
computed from anything other than what was written would fail them."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from cdp.cli import main as cdp_main
from cdp.config import load_settings
from cdp.errors import ConfigError
from cdp.generator import GeneratorOptions, NoiseRates, generate
from cdp.generator.simulate import CRM_COLUMNS, ECOMMERCE_COLUMNS, POS_COLUMNS

SOURCES = ("pos", "miniprogram", "wecom", "ecommerce", "crm")
LOCAL_TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ISO_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
AMOUNT = re.compile(r"^-?\d+\.\d{2}$")
VALID_MOBILE = re.compile(r"^1[3-9]\d{9}$")
OPTIONS = GeneratorOptions(customers=400, days=60, seed=11)


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "landing"
    generate(out, OPTIONS)
    return out


@pytest.fixture(scope="module")
def parsed(landing) -> dict:
    return parse_landing(landing)


# ---- an independent strict reader of the landing folder -------------------------------------------------------
def _parse_local(text: str) -> dt.datetime:
    if not LOCAL_TS.match(text):
        raise ValueError(text)
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _cents(text: str) -> int:
    if not AMOUNT.match(text):
        raise ValueError(text)
    return round(float(text) * 100)


def parse_landing(root: Path) -> dict:
    """Every row of every source file: valid rows parsed, invalid ones reported as (file, line)."""
    settings = load_settings("local")
    rows: dict[str, list[tuple[str, int, dict]]] = defaultdict(list)
    invalid: set[tuple[str, int]] = set()
    for source in SOURCES:
        encoding = "utf-8"
        for path in sorted((root / source).glob("dt=*/*")):
            rel = path.relative_to(root).as_posix()
            raw = path.read_bytes()
            text = raw.decode("gbk") if source == "pos" and OPTIONS.pos_encoding == "gbk" else raw.decode(encoding)
            lines = text.split("\n")
            assert lines[-1] == "", f"{rel} must end with a newline"
            if settings.sources[source].format == "csv":
                header = next(csv.reader([lines[0]]))
                for n, line in enumerate(lines[1:-1], start=2):
                    values = next(csv.reader([line]))
                    try:
                        if len(values) != len(header):
                            raise ValueError("column count")
                        row = dict(zip(header, values))
                        for col in ("paid_at", "updated_at", "registered_at"):
                            if col in row:
                                _parse_local(row[col])
                        for col in ("amount", "unit_price"):
                            if col in row:
                                _cents(row[col])
                    except ValueError:
                        invalid.add((rel, n))
                        continue
                    rows[source].append((rel, n, row))
            else:
                for n, line in enumerate(lines[:-1], start=1):
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        invalid.add((rel, n))
                        continue
                    rows[source].append((rel, n, row))
    return {"rows": rows, "invalid": invalid}


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def record_id(source: str, row: dict) -> str:
    if source == "pos":
        return row["order_id"]
    if source == "ecommerce":
        return f"{row['platform']}:{row['order_id']}"
    if source == "miniprogram":
        return row["event_id"]
    if source == "wecom":
        return row["external_contact"]["external_userid"]
    return row["member_card_no"]


def digits(mobile: str) -> str:
    value = re.sub(r"[\s\-]", "", mobile)
    return value[3:] if value.startswith("+86") else (value[2:] if value.startswith("86") and len(value) == 13
                                                        else value)


# ---- tests -----------------------------------------------------------------------------------------------------
def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(landing, tmp_path):
    again = tmp_path / "again"
    # another process with another string-hash seed: no output may depend on set or dict hashing order
    subprocess.run([sys.executable, "-c", "import sys; from cdp.generator import generate, GeneratorOptions; "
                    f"generate(sys.argv[1], GeneratorOptions(customers={OPTIONS.customers}, days={OPTIONS.days}, "
                    f"seed={OPTIONS.seed}))", str(again)],
                   check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})

    def snapshot(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first, second = snapshot(landing), snapshot(again)
    assert first == second
    other = tmp_path / "other"
    generate(other, GeneratorOptions(customers=OPTIONS.customers, days=OPTIONS.days, seed=OPTIONS.seed + 1))
    assert snapshot(other)["_truth/records.csv"] != first["_truth/records.csv"]


def test_layout_headers_and_formats_follow_the_landing_contract(landing, parsed):
    settings = load_settings("local")
    start = OPTIONS.start_date
    assert (landing / "_end_date").read_text() == f"{OPTIONS.end_date}\n"
    for source in (*SOURCES, "catalog", "stores"):
        spec = settings.sources[source]
        files = sorted((landing / source).glob("dt=*/*"))
        assert files, source
        for path in files:
            day = dt.date.fromisoformat(path.parent.name.removeprefix("dt="))
            assert start <= day <= OPTIONS.end_date and path.match(spec.pattern), path
            if spec.format == "csv":  # every required column, in the order, plus brand_id where it applies
                header = path.read_text(encoding="utf-8").split("\n", 1)[0].split(",")
                assert header[:len(spec.required_columns)] == list(spec.required_columns), path
    assert POS_COLUMNS[-1] == ECOMMERCE_COLUMNS[-1] == CRM_COLUMNS[-1] == "brand_id"
    for reference in ("catalog", "stores"):  # delivered once, in the first day's folder
        assert [p.parent.name for p in (landing / reference).glob("dt=*/*.csv")] == [f"dt={start}"]

    rows = parsed["rows"]
    for _f, _n, row in rows["pos"]:
        assert LOCAL_TS.match(row["paid_at"]) and AMOUNT.match(row["amount"]) and AMOUNT.match(row["unit_price"])
        assert float(row["quantity"]) > 0  # the contract: a return is a negative amount, quantity stays positive
        assert row["brand_id"] in OPTIONS.brands
    for _f, _n, row in rows["ecommerce"]:
        assert row["platform"] in ("tmall", "jd", "douyin") and row["status"] in ("paid", "refunded")
        assert re.match(r"^(\d{3}\*{4}\d{4}|1[3-9]\d{9}|)$", row["receiver_mobile"]), row["receiver_mobile"]
        assert LOCAL_TS.match(row["paid_at"])
    event_types = {"app_login", "view_item", "add_to_cart", "order_paid", "bind_mobile", "coupon_redeem"}
    for _f, _n, event in rows["miniprogram"]:
        assert set(settings.sources["miniprogram"].required_columns) <= event.keys()
        assert event["event_type"] in event_types and ISO_TS.match(event["event_time"])
        if event["event_type"] == "order_paid":
            assert event["items"] and {"sku_id", "quantity", "price"} == set(event["items"][0])
            assert sum(round(i["price"] * 100) * i["quantity"] for i in event["items"]) == round(event["amount"] * 100)
    assert {e["event_type"] for _f, _n, e in rows["miniprogram"]} == event_types
    for _f, _n, change in rows["wecom"]:
        assert change["change_type"] in ("add_external_contact", "edit_external_contact", "del_external_contact",
                                         "del_follow_user")
        assert ISO_TS.match(change["event_time"])
        assert {"external_userid", "name", "gender"} <= change["external_contact"].keys()
        follow = change["follow_user"]
        assert {"userid", "remark_mobiles", "createtime", "tags"} <= follow.keys()
        assert isinstance(follow["createtime"], int) and isinstance(follow["remark_mobiles"], list)
        assert all({"group_name", "tag_name"} == set(t) for t in follow["tags"])
    for _f, _n, row in rows["crm"]:
        assert row["is_paid_member"] in ("true", "false") and row["marketing_consent"] in ("true", "false")
        assert row["gender"] in ("男", "女", "")
    # the contract's keys are unique inside every file (conf/expectations/*.yaml), else ingestion quarantines both
    keys = {"pos": lambda r: (r["brand_id"], r["order_id"], r["line_no"]),
            "ecommerce": lambda r: (r["platform"], r["order_id"], r["sku_id"]),
            "miniprogram": lambda r: r["event_id"],
            "crm": lambda r: (r["brand_id"], r["member_card_no"], r["updated_at"]),
            "wecom": lambda r: (r["external_contact"]["external_userid"], r["follow_user"]["userid"],
                                r["event_time"], r["change_type"])}
    for source, key in keys.items():
        per_file = defaultdict(list)
        for file, _n, row in rows[source]:
            per_file[file].append(key(row))
        for file, values in per_file.items():
            assert len(values) == len(set(values)), file
    assert any(row["amount"].startswith("-") for _f, _n, row in rows["pos"])  # returns exist
    # a POS line's amount is its quantity times its unit price (to the cent)
    for _f, _n, row in rows["pos"][:500]:
        assert abs(float(row["quantity"]) * float(row["unit_price"]) - abs(float(row["amount"]))) <= 0.006


def test_gbk_pos_files_decode_only_as_gbk(tmp_path):
    out = tmp_path / "gbk"
    generate(out, GeneratorOptions(customers=30, days=5, seed=3, pos_encoding="gbk"))
    pos_files = sorted((out / "pos").glob("dt=*/*.csv"))
    assert pos_files
    raw = b"".join(p.read_bytes() for p in pos_files)
    assert re.search("[\u4e00-\u9fff]", raw.decode("gbk"))  # Chinese product names, GBK-encoded
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    for path in (out / "crm").glob("dt=*/*.csv"):
        path.read_bytes().decode("utf-8")


def test_truth_covers_every_record_exactly_once_and_lists_every_corrupt_row(landing, parsed):
    records = read_csv(landing / "_truth" / "records.csv")
    keys = [(r["source"], r["source_record_id"]) for r in records]
    assert len(keys) == len(set(keys)), "a record is listed twice"
    written = {(source, record_id(source, row)) for source in SOURCES for _f, _n, row in parsed["rows"][source]}
    assert set(keys) == written
    persons = {r["person_id"] for r in read_csv(landing / "_truth" / "persons.csv")}
    assert len(persons) == OPTIONS.customers and {r["person_id"] for r in records} <= persons
    # the strict reader rejects exactly the rows the truth says are corrupt
    corrupt = read_csv(landing / "_truth" / "corrupt_rows.csv")
    assert {(c["file"], int(c["line"])) for c in corrupt} == parsed["invalid"]
    assert {c["kind"] for c in corrupt} == {"wrong_column_count", "bad_date", "bad_amount", "broken_json"}


def test_every_noise_kind_is_present(landing, parsed):
    rows = parsed["rows"]
    truth = {r["person_id"]: r for r in read_csv(landing / "_truth" / "persons.csv")}
    owner = {(r["source"], r["source_record_id"]): r["person_id"] for r in read_csv(landing / "_truth" / "records.csv")}
    pos_mobiles = [row["mobile"] for _f, _n, row in rows["pos"]]
    # till phones typed with spaces, +86, 86-; placeholders; empty (no phone given)
    assert any(re.match(r"^\d{3} \d{4} \d{4}$", m) for m in pos_mobiles)
    assert any(m.startswith("+86 ") for m in pos_mobiles) and any(m.startswith("86-") for m in pos_mobiles)
    assert {"13800000000", "00000000000", "11111111111", "13888888888"} & set(pos_mobiles)
    anonymous = [row for _f, _n, row in rows["pos"] if not row["mobile"] and not row["member_card_no"]]
    assert anonymous
    # a store's own phone typed for several different walk-in customers
    store_phones = {r["phone"] for r in read_csv(next((landing / "stores").glob("dt=*/stores.csv")))}
    store_phone_persons = {owner[("pos", row["order_id"])] for _f, _n, row in rows["pos"]
                           if row["mobile"] in store_phones}
    assert len(store_phone_persons) >= 2
    # families: 2-3 persons, one phone, separate persons in the truth
    families = defaultdict(set)
    for p in truth.values():
        if p["family_id"]:
            families[p["family_id"]].add((p["person_id"], p["mobile"]))
    assert families and all(2 <= len(m) <= 3 and len({mob for _p, mob in m}) == 1 for m in families.values())
    # phone changes: one CRM card with two mobiles over time, and a bind_mobile to the new number
    changers = [p for p in truth.values() if p["changed_phone"] == "1"]
    assert changers
    crm_mobiles = defaultdict(set)
    for _f, _n, row in rows["crm"]:
        crm_mobiles[row["member_card_no"]].add(row["mobile"])
    for p in changers:
        assert p["mobile_new"] and p["mobile_new"] != p["mobile"]
        if p["placeholder_phone_crm"] == "1":
            continue
        before = p["registered_on_main"] < p["phone_changed_on"]  # else the card was opened with the new number
        expected = {p["mobile"], p["mobile_new"]} if before else {p["mobile_new"]}
        assert crm_mobiles[p["member_card_no_main"]] == expected
    assert any(e.get("mobile") in {p["mobile_new"] for p in changers} for _f, _n, e in rows["miniprogram"]
               if e["event_type"] == "bind_mobile")
    # openids without unionid
    assert any("unionid" not in e for _f, _n, e in rows["miniprogram"])
    assert any("unionid" in e for _f, _n, e in rows["miniprogram"])
    # masked e-commerce phones
    assert any("****" in row["receiver_mobile"] for _f, _n, row in rows["ecommerce"])
    # re-delivered files are byte-identical copies, one in the same day folder, one in a later one
    redelivered = read_csv(landing / "_truth" / "redelivered_files.csv")
    assert len(redelivered) == 2
    for r in redelivered:
        assert (landing / r["original_file"]).read_bytes() == (landing / r["copy_file"]).read_bytes()
    folders = [(Path(r["original_file"]).parent.name, Path(r["copy_file"]).parent.name) for r in redelivered]
    assert any(a == b for a, b in folders) and any(b > a for a, b in folders)
    # the person-level noise columns count exactly the orders in the files
    placeholders = {"13800000000", "00000000000", "11111111111", "13888888888"}
    counted = defaultdict(lambda: defaultdict(set))
    for _f, _n, row in rows["pos"]:
        mobile = row["mobile"]
        kind = ("store_phone_orders" if mobile in store_phones else "placeholder_phone_orders"
                if mobile in placeholders else "formatted_phone_orders" if mobile and not VALID_MOBILE.match(mobile)
                else None)
        if kind:
            counted[owner[("pos", row["order_id"])]][kind].add(row["order_id"])
    for p in truth.values():
        for kind in ("store_phone_orders", "placeholder_phone_orders", "formatted_phone_orders"):
            assert int(p[kind]) == len(counted[p["person_id"]][kind]), (p["person_id"], kind)


def test_clean_data_has_no_noise(tmp_path):
    out = tmp_path / "clean"
    summary = generate(out, GeneratorOptions(customers=200, days=30, seed=5, noise=NoiseRates().scaled(0)))
    noise = {k: v for k, v in summary["noise"].items() if k != "ecommerce_refunded_lines"}  # refunds are not noise
    assert summary["corrupt_rows"] == 0 and noise == {"redelivered_files": 0}
    parsed = parse_landing(out)
    assert not parsed["invalid"]
    for _f, _n, row in parsed["rows"]["pos"]:
        assert row["mobile"] == "" or VALID_MOBILE.match(row["mobile"])
        assert row["member_card_no"] or row["mobile"], "with noise off every POS order carries an identifier"
    assert all("unionid" in e for _f, _n, e in parsed["rows"]["miniprogram"])
    persons = read_csv(out / "_truth" / "persons.csv")
    assert len({p["mobile"] for p in persons}) == len(persons)


def test_person_facts_agree_with_the_written_records(landing, parsed):
    """Recompute segment-style facts from the files alone (via records.csv) and compare with persons.csv."""
    rows = parsed["rows"]
    owner = {(r["source"], r["source_record_id"]): r["person_id"] for r in read_csv(landing / "_truth" / "records.csv")}
    catalog = {r["sku_id"]: r for r in read_csv(next((landing / "catalog").glob("dt=*/catalog.csv")))}
    appid_brand = {e["appid"]: e["brand_id"] for _f, _n, e in rows["miniprogram"]}

    orders: dict[tuple[str, str], dict] = {}  # (source, record id) -> {person, day, skus, net}
    seen: set[tuple] = set()  # re-delivered files repeat rows: count each line once

    def book(source, rid, day, sku, cents, line_key):
        if (source, rid, line_key) in seen:
            return
        seen.add((source, rid, line_key))
        o = orders.setdefault((source, rid), {"person": owner[(source, rid)], "day": day, "skus": set(), "net": 0})
        o["skus"].add(sku)
        o["net"] += cents

    for _f, _n, row in rows["pos"]:
        book("pos", row["order_id"], row["paid_at"][:10], row["sku_id"], _cents(row["amount"]), row["line_no"])
    latest: dict[tuple[str, str, str], dict] = {}
    for _f, _n, row in rows["ecommerce"]:  # a refund re-sends the line; the last status wins
        latest[(row["platform"], row["order_id"], row["sku_id"])] = row
    for (platform, order_id, sku), row in latest.items():
        if row["status"] == "paid":
            book("ecommerce", f"{platform}:{order_id}", row["paid_at"][:10], sku, _cents(row["amount"]), sku)
    for _f, _n, e in rows["miniprogram"]:
        if e["event_type"] == "order_paid":
            for item in e["items"]:
                book("miniprogram", e["event_id"], e["event_time"][:10], item["sku_id"],
                     round(item["price"] * 100) * item["quantity"], item["sku_id"])

    facts = defaultdict(lambda: {"kyoho": 0, "black": 0, "durian": 0, "premium": 0, "orders": 0, "last": ""})
    for o in orders.values():
        if o["net"] <= 0:  # returns
            continue
        f = facts[o["person"]]
        f["orders"] += 1
        f["kyoho"] += "S20101" in o["skus"]
        f["black"] += "S20102" in o["skus"]
        f["durian"] += any(catalog[s]["category"] == "榴莲" for s in o["skus"])
        f["premium"] += any(catalog[s]["brand"] == "熊猫大鲜" for s in o["skus"])
        f["last"] = max(f["last"], o["day"])

    # orders.csv: the purchases are exactly the orders with a positive net in the files, with the same flags
    truth_orders = {(o["source"], o["source_record_id"]): o for o in read_csv(landing / "_truth" / "orders.csv")
                    if o["is_purchase"] == "1"}
    file_orders = {k: o for k, o in orders.items() if o["net"] > 0}
    assert truth_orders.keys() == file_orders.keys()
    for key, o in file_orders.items():
        t = truth_orders[key]
        assert (t["person_id"], t["order_date"], _cents(t["net_amount"]), t["has_kyoho"], t["has_black_kyoho"]) == (
            o["person"], o["day"], o["net"], str(int("S20101" in o["skus"])), str(int("S20102" in o["skus"])))

    truth = read_csv(landing / "_truth" / "persons.csv")
    # segment 2: bought Kyoho grapes (巨峰葡萄) but never black-vine Kyoho (黑藤巨峰)
    from_files = {p for p, f in facts.items() if f["kyoho"] > 0 and f["black"] == 0}
    from_truth = {p["person_id"] for p in truth if int(p["kyoho_orders"]) > 0 and int(p["black_kyoho_orders"]) == 0}
    assert from_files == from_truth and len(from_truth) >= 10
    for p in truth:
        f = facts.get(p["person_id"], facts.default_factory())
        assert (int(p["orders_total"]), int(p["durian_orders"]), int(p["premium_orders"]), p["last_purchase_date"]) \
            == (f["orders"], f["durian"], f["premium"], f["last"]), p["person_id"]

    # memberships, consent, app use: the latest CRM row per card, mini-program events per brand
    crm_latest: dict[str, dict] = {}
    for _f, _n, row in sorted(rows["crm"], key=lambda r: r[2]["updated_at"]):
        crm_latest[row["member_card_no"]] = row
    app_users = {(owner[("miniprogram", e["event_id"])], appid_brand[e["appid"]]) for _f, _n, e in rows["miniprogram"]}
    for p in truth:
        for brand in OPTIONS.brands:
            card = p[f"member_card_no_{brand}"]
            assert (p[f"is_member_{brand}"] == "1") == (card in crm_latest)
            if card:
                row = crm_latest[card]
                assert row["brand_id"] == brand and owner[("crm", card)] == p["person_id"]
                assert p[f"marketing_consent_{brand}"] == ("1" if row["marketing_consent"] == "true" else "0")
                assert p[f"is_paid_member_{brand}"] == ("1" if row["is_paid_member"] == "true" else "0")
                assert p[f"has_app_{brand}"] == ("1" if row["has_app"] == "true" else "0")
                assert p[f"level_{brand}"] == row["level"]
            assert (p[f"has_app_{brand}"] == "1") == ((p["person_id"], brand) in app_users)
    # one code, two memberships: some persons hold cards of both brands
    assert any(p["is_member_main"] == "1" and p["is_member_fresh"] == "1" for p in truth)

    # WeCom: added = some guide relation whose last change is not a deletion
    last_change: dict[tuple[str, str], tuple[str, str]] = {}
    for _f, _n, c in rows["wecom"]:
        key = (c["external_contact"]["external_userid"], c["follow_user"]["userid"])
        if key not in last_change or c["event_time"] >= last_change[key][0]:
            last_change[key] = (c["event_time"], c["change_type"])
    active = {owner[("wecom", ext)] for (ext, _g), (_t, change) in last_change.items() if not change.startswith("del")}
    assert active == {p["person_id"] for p in truth if p["is_wecom_added"] == "1"}


def test_cli_writes_the_end_date_and_refuses_to_mix_outputs(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["generate", "--out", str(out), "--customers", "20", "--days", "3", "--seed", "2",
            "--end-date", "2026-01-31", "--brands", "main"]
    assert cdp_main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["end_date"] == "2026-01-31" and summary["start_date"] == "2026-01-29"
    assert (out / "_end_date").read_text() == "2026-01-31\n"
    assert {p.name for p in (out / "pos").iterdir()} <= {"dt=2026-01-29", "dt=2026-01-30", "dt=2026-01-31"}
    assert "member_card_no_fresh" not in (out / "_truth" / "persons.csv").read_text().split("\n", 1)[0]
    first = (out / "_truth" / "records.csv").read_bytes()
    assert cdp_main([*args[:-2], "--brands", "main,fresh"]) == 0  # a previous output is replaced, not mixed
    assert "member_card_no_fresh" in (out / "_truth" / "persons.csv").read_text().split("\n", 1)[0]
    assert (out / "_truth" / "records.csv").read_bytes() != first
    capsys.readouterr()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("someone else's file")
    assert cdp_main(["generate", "--out", str(foreign), "--customers", "5", "--days", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cdp_main(["generate", "--out", str(foreign), "--customers", "5", "--days", "2", "--overwrite"]) == 0
    assert (foreign / "notes.txt").exists() and (foreign / "_end_date").exists()


def test_options_are_validated():
    with pytest.raises(ConfigError, match="--brands"):
        GeneratorOptions(brands=("main", "main"))
    with pytest.raises(ConfigError, match="--days"):
        GeneratorOptions(days=0)
    with pytest.raises(ConfigError, match="--pos-encoding"):
        GeneratorOptions(pos_encoding="latin-1")


def test_big_days_are_split_into_several_files_that_keep_the_truth_aligned(tmp_path, monkeypatch):
    out = tmp_path / "split"
    generate(out, customers=80, days=3, seed=4, max_rows_per_file=40)
    # a tiny staging buffer (dozens of sorted runs per source, merged 4 at a time) writes exactly the same bytes
    monkeypatch.setattr("cdp.generator.writer.MAX_OPEN_RUNS", 4)
    tiny = tmp_path / "tiny"
    generate(tiny, customers=80, days=3, seed=4, max_rows_per_file=40, buffer_chars=300)
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == \
        {p.relative_to(tiny).as_posix(): p.read_bytes() for p in tiny.rglob("*") if p.is_file()}
    parts = sorted(p.name for p in (out / "pos").glob("dt=*/*_p2.csv"))
    assert parts
    parsed = parse_landing(out)
    written = {(s, record_id(s, row)) for s in SOURCES for _f, _n, row in parsed["rows"][s]}
    records = {(r["source"], r["source_record_id"]) for r in read_csv(out / "_truth" / "records.csv")}
    assert written == records
    corrupt = {(c["file"], int(c["line"])) for c in read_csv(out / "_truth" / "corrupt_rows.csv")}
    assert corrupt == parsed["invalid"]
    for path in (out / "pos").glob("dt=*/*.csv"):  # every part has the header and at most 40 rows
        lines = path.read_text(encoding="utf-8").split("\n")
        assert lines[0].startswith("order_id,line_no,") and len(lines) - 2 <= 40
