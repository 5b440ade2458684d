"""Ingest end to end on real Spark + Delta + Great Expectations, on tiny hand-written landing folders.

Few tests with many checks each: a Spark session and a GX run cost seconds, not milliseconds.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from cdp.privacy import hash_value, load_secret
from ingest_landing import (CATALOG_DAY1, CRM_DAY1, ECOM_DAY1, MINI_DAY1, POS_DAY1, POS_HEADER, STORES_DAY1,
                            WECOM_DAY1, jsonl, write)

pytestmark = pytest.mark.spark

HOSTILE = Path(__file__).parent / "data" / "hostile"
RUN_DATE = dt.date(2026, 11, 21)
RAW_PERSONAL = ("13800138000", "13900139000", "张伟", "李娜", "王芳", "u_union_1", "o_open_1", "o_open_2")
DATA_TABLES = ("bronze_pos_lines", "bronze_miniprogram_events", "bronze_wecom_contact_changes",
               "bronze_ecommerce_lines", "bronze_crm_members", "bronze_catalog", "bronze_stores",
               "silver_pos_lines", "silver_miniprogram_events", "silver_wecom_contacts", "silver_ecommerce_lines",
               "silver_crm_members", "silver_catalog", "silver_stores", "pii_values", "ingest_file_ledger",
               "quarantine_rows", "quarantine_files")

POS_BAD_ROWS = "\n".join([
    POS_HEADER,
    "Q1,1,S01,2026-11-20 25:00:00,,,K1,x,grape,1,1,1,cash",     # hour 25: paid_at does not parse
    "Q2,1,S01,2026-11-20 10:00:00,,,K1,x,grape,-1,1,-1,cash",   # negative quantity
    "Q3,1,S01,2026-11-20 10:00:00,,,K1,x,grape,1,1,1,cash",     # Q3/1 twice in one file: both out
    "Q3,1,S01,2026-11-20 10:00:00,,,K1,x,grape,2,1,2,cash",
    "Q4,1,S01,2030-01-01 10:00:00,,,,x,grape,0,1,abc,cash",     # several rules: counted once
    "Q5,1,S01",                                                 # truncated line
]) + "\n"


def _settings(make_settings, tmp_path: Path):
    from cdp.config import load_settings

    sources = {k: v.model_dump() for k, v in load_settings("local").sources.items()}
    sources["crm"]["encoding"] = "gbk"  # CRM exports from a Windows tool in GBK
    return make_settings(sources=sources)


def _snapshot(spark, settings) -> dict[str, list[str]]:
    """Every data table as sorted JSON rows: comparing snapshots compares whole tables."""
    from cdp.lake import read_table, table_exists

    return {name: sorted(read_table(spark, settings, name).toJSON().collect())
            for name in DATA_TABLES if table_exists(spark, settings, name)}


def _rows(spark, settings, name, *columns, order=None):
    from cdp.lake import read_table

    df = read_table(spark, settings, name).select(*columns)
    return [tuple(r) for r in df.orderBy(*(order or columns)).collect()]


def test_ingest_end_to_end_rerun_redelivery_and_late_file(spark, make_settings, tmp_path):
    settings = _settings(make_settings, tmp_path)
    from cdp.ingest import run

    landing = Path(settings.landing_dir)
    write(landing, "pos", "2026-11-21", "pos_s01.csv", b"\xef\xbb\xbf" + POS_DAY1.encode("utf-8"))  # with BOM
    write(landing, "pos", "2026-11-21", "pos_bad_rows.csv", POS_BAD_ROWS)
    write(landing, "pos", "2026-11-21", "pos_gbk.csv", POS_DAY1.encode("gbk"))      # declared utf-8
    write(landing, "pos", "2026-11-22", "pos_tomorrow.csv", POS_DAY1.replace("P", "Z"))  # dt after the run date
    write(landing, "ecommerce", "2026-11-21", "orders.csv", ECOM_DAY1)
    write(landing, "ecommerce", "2026-11-21", "no_mobile.csv", ECOM_DAY1.replace("receiver_mobile,", "", 1))
    write(landing, "crm", "2026-11-21", "members.csv", CRM_DAY1, encoding="gbk")
    write(landing, "catalog", "2026-11-21", "catalog.csv", CATALOG_DAY1)
    write(landing, "stores", "2026-11-21", "stores.csv", STORES_DAY1)
    write(landing, "miniprogram", "2026-11-21", "events.jsonl", jsonl(*MINI_DAY1))
    write(landing, "wecom", "2026-11-21", "contacts.jsonl", jsonl(*WECOM_DAY1))
    # a lake written before silver_miniprogram_events had coupon_id (docs/tables.md schema version 3): the run
    # adds the column, the earlier row reads null
    from cdp.lake import overwrite_table

    old_columns = ("source string, source_record_id string, brand_id string, event_id string, event_type string, "
                   "event_at timestamp, appid string, openid_hash string, unionid_hash string, mobile_hash string, "
                   "mobile_masked string, mobile_status string, member_card_no string, order_id string, "
                   "amount decimal(18,2), items array<struct<sku_id:string,quantity:decimal(12,3),price:decimal(18,2)>>, "
                   "dt date, source_file string, source_line int, ingested_at timestamp, one_id string")
    overwrite_table(spark.createDataFrame([(
        "miniprogram", "E0", "main", "E0", "app_login", dt.datetime(2026, 11, 19, 2), "wxapp", "oh0", None, None,
        None, "missing", None, None, None, None, dt.date(2026, 11, 19), "miniprogram/dt=2026-11-19/old.jsonl", 1,
        dt.datetime(2026, 11, 19, 3), None)], old_columns), settings, "silver_miniprogram_events")

    summary = run(spark, settings, RUN_DATE)
    s = summary["sources"]
    assert summary["is_balanced"]
    # pos: 5 good + 6 bad rows staged, the GBK file (5 data lines) quarantined whole; the dt=2026-11-22 file waits
    assert {k: s["pos"][k] for k in ("files", "rows_landed", "rows_accepted", "rows_quarantined")} == {
        "files": 3, "rows_landed": 16, "rows_accepted": 5, "rows_quarantined": 11}
    assert s["pos"]["files_quarantined"] == [{"file": "pos/dt=2026-11-21/pos_gbk.csv", "reason": s["pos"]["files_quarantined"][0]["reason"]}]
    assert "not decodable as the declared encoding utf-8" in s["pos"]["files_quarantined"][0]["reason"]
    assert s["ecommerce"]["files_quarantined"][0]["reason"].startswith("missing required column(s) receiver_mobile")
    assert (s["crm"]["rows_accepted"], s["wecom"]["rows_accepted"], s["miniprogram"]["rows_accepted"]) == (3, 2, 4)

    key = load_secret(settings)
    h = lambda v: hash_value(v, "mobile", key)  # noqa: E731  (Python HMAC, independent of the Spark one)
    # Every noisy spelling of 13800138000 hashes the same; masked and empty ones are flagged, not hashed.
    # Local Asia/Shanghai times are UTC-8h.
    assert _rows(spark, settings, "silver_pos_lines", "brand_id", "order_id", "line_no", "paid_at", "mobile_hash",
                 "mobile_masked", "mobile_status", "quantity", "amount", "is_return", "source_line") == [
        ("B2", "P2", 1, dt.datetime(2026, 11, 20, 15, 30), h("13800138000"), "138****8000", "valid",
         Decimal("1.000"), Decimal("19.90"), False, 4),
        ("main", "P1", 1, dt.datetime(2026, 11, 20, 2, 0), h("13800138000"), "138****8000", "valid",
         Decimal("2.000"), Decimal("39.80"), False, 2),
        ("main", "P1", 2, dt.datetime(2026, 11, 20, 2, 0), h("13800138000"), "138****8000", "valid",
         Decimal("1.000"), Decimal("88.00"), False, 3),
        ("main", "P3", 1, dt.datetime(2026, 11, 21, 1, 15), None, "138****8000", "masked",
         Decimal("1.000"), Decimal("-29.90"), True, 5),
        ("main", "P4", 1, dt.datetime(2026, 11, 21, 1, 20), None, None, "missing",
         Decimal("1.000"), Decimal("29.90"), False, 6),
    ]
    # One row per rejected line, first failing rule; Q4 fails four rules but is counted once.
    quarantined = _rows(spark, settings, "quarantine_rows", "file_path", "source_line", "rule")
    assert [q for q in quarantined if q[0].endswith("pos_bad_rows.csv")] == [
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 2, "paid_at_parses"),
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 3, "quantity_range"),
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 4, "line_unique"),
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 5, "line_unique"),
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 6, "paid_at_plausible"),
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 7, "well_formed"),
    ]
    reasons = dict(((r[0], r[1]), r[2]) for r in _rows(spark, settings, "quarantine_rows", "file_path", "source_line", "reason"))
    assert reasons[("pos/dt=2026-11-21/pos_bad_rows.csv", 6)].split("; ")[0].startswith("paid_at_plausible:")
    assert {r.split(":")[0] for r in reasons[("pos/dt=2026-11-21/pos_bad_rows.csv", 6)].split("; ")} == {
        "paid_at_plausible", "sku_id_present", "quantity_range", "amount_numeric"}
    assert reasons[("pos/dt=2026-11-21/pos_bad_rows.csv", 7)].endswith("(expected 13 fields, found 3)")
    assert _rows(spark, settings, "quarantine_files", "file_path") == [
        ("ecommerce/dt=2026-11-21/no_mobile.csv",), ("pos/dt=2026-11-21/pos_gbk.csv",)]
    # landed = accepted + quarantined for every file, quarantined files included
    ledger = _rows(spark, settings, "ingest_file_ledger", "file_path", "rows_landed", "rows_accepted",
                   "rows_quarantined", "status")
    assert all(landed == acc + quar for _, landed, acc, quar, _ in ledger)
    assert [l for l in ledger if l[0].startswith("pos/")] == [
        ("pos/dt=2026-11-21/pos_bad_rows.csv", 6, 0, 6, "accepted"),
        ("pos/dt=2026-11-21/pos_gbk.csv", 5, 0, 5, "quarantined_file"),
        ("pos/dt=2026-11-21/pos_s01.csv", 5, 5, 0, "accepted")]

    assert _rows(spark, settings, "silver_ecommerce_lines", "source_record_id", "mobile_hash", "mobile_masked",
                 "mobile_status", "receiver_name_masked", "paid_at", "status") == [
        ("douyin:D3001", None, None, "missing", "王*", dt.datetime(2026, 11, 20, 6), "paid"),
        ("jd:J2001", h("13900139000"), "139****9000", "valid", "李*", dt.datetime(2026, 11, 20, 5), "refunded"),
        ("tmall:T1001", None, "138****8000", "masked", "张*", dt.datetime(2026, 11, 20, 4), "paid")]
    # CRM read as GBK; the later version of M001 wins; empty consent is "no"
    assert _rows(spark, settings, "silver_crm_members", "member_card_no", "mobile_hash", "name_masked", "gender",
                 "birthday", "level", "marketing_consent", "updated_at") == [
        ("M001", h("13800138000"), "张*", "M", dt.date(1990, 5, 1), "platinum", False, dt.datetime(2026, 11, 21)),
        ("M002", h("13900139000"), "李*", "F", None, "silver", False, dt.datetime(2026, 11, 20, 1))]
    assert _rows(spark, settings, "silver_miniprogram_events", "event_id", "brand_id", "event_at", "mobile_status",
                 "openid_hash", "amount", "items", "coupon_id") == [
        ("E0", "main", dt.datetime(2026, 11, 19, 2), "missing", "oh0", None, None, None),
        ("E1", "main", dt.datetime(2026, 11, 20, 2), "valid", hash_value("o_open_1", "openid", key), None, None, None),
        ("E2", "B2", dt.datetime(2026, 11, 20, 2, 5), "missing", hash_value("o_open_2", "openid", key),
         Decimal("59.80"), [("K1", Decimal("2.000"), Decimal("19.90")), ("K3", Decimal("1.000"), Decimal("20.00"))],
         None),
        ("E3", "main", dt.datetime(2026, 11, 20, 2, 6), "missing", hash_value("o_open_2", "openid", key), None, None,
         "CP-HTJF-TRIAL"),
        ("E4", "main", dt.datetime(2026, 11, 20, 2, 7), "missing", hash_value("o_open_2", "openid", key), None, None,
         "2026")]
    from cdp.ingestion.normalise import silver_columns
    from cdp.lake import read_table

    assert tuple(read_table(spark, settings, "silver_miniprogram_events").columns) == silver_columns("miniprogram")
    # WeCom: latest change wins, added_at stays the first createtime; invalid remark phones dropped, masked kept
    assert _rows(spark, settings, "silver_wecom_contacts", "external_userid", "guide_userid", "store_id", "gender",
                 "unionid_hash", "remark_mobile_hashes", "remark_mobiles_masked", "tags", "added_at",
                 "last_change_type", "last_change_at", "is_active") == [
        ("wm_ext_1", "guide_01", "S01", "M", hash_value("u_union_1", "unionid", key), [h("13800138000")],
         ["138****8000"], [("偏好", "榴莲")], dt.datetime(2026, 11, 20, 2), "edit_external_contact",
         dt.datetime(2026, 11, 21, 1), True)]
    assert _rows(spark, settings, "silver_catalog", "sku_id", "list_price") == [("K1", Decimal("19.90")), ("K2", Decimal("88.00"))]
    assert _rows(spark, settings, "silver_stores", "store_id", "store_name") == [("S01", "福田店"), ("S02", "朝阳店")]
    assert ("mobile", h("13800138000"), "13800138000") in _rows(spark, settings, "pii_values", "kind", "value_hash", "value")

    # No raw personal value anywhere in silver (names only masked, ids only hashed)
    for name in DATA_TABLES:
        if name.startswith("silver_"):
            text = "\n".join(_snapshot(spark, settings)[name])
            assert not [v for v in RAW_PERSONAL if v in text], name
    # bronze keeps the rows as delivered, extra columns included
    assert ("P2", "B2", "86-13800138000") in _rows(spark, settings, "bronze_pos_lines", "order_id", "brand_id", "mobile")

    # Same day again: nothing new, every table identical
    before = _snapshot(spark, settings)
    again = run(spark, settings, RUN_DATE)
    # the files it ingested are still in landing: counted, not listed as re-deliveries
    assert again["sources"]["pos"]["files"] == 0 and again["sources"]["pos"]["files_already_ingested"] == 3
    assert again["sources"]["pos"]["files_skipped"] == []
    assert _snapshot(spark, settings) == before

    # Next day: the same content re-delivered under another name is skipped; a late file for an old dt is picked up
    shutil.copy(landing / "pos" / "dt=2026-11-21" / "pos_s01.csv", write(landing, "pos", "2026-11-22", "copy.csv", ""))
    write(landing, "pos", "2026-11-19", "late.csv", POS_HEADER + "\nL1,1,S01,2026-11-19 10:00:00,,,K1,x,grape,1,1,1,cash\n")
    later = run(spark, settings, RUN_DATE + dt.timedelta(days=1))
    assert later["sources"]["pos"]["files_skipped"] == [
        {"file": "pos/dt=2026-11-22/copy.csv", "same_content_as": "pos/dt=2026-11-21/pos_s01.csv"}]
    assert later["sources"]["pos"]["files_already_ingested"] == 3
    assert later["sources"]["pos"]["rows_landed"] == 6 and later["is_balanced"]  # late.csv + pos_tomorrow.csv
    assert [r[0] for r in _rows(spark, settings, "silver_pos_lines", "order_id")] == [
        "L1", "P1", "P1", "P2", "P3", "P4", "Z1", "Z1", "Z2", "Z3", "Z4"]
    after = _snapshot(spark, settings)
    for name in ("silver_crm_members", "silver_wecom_contacts", "pii_values", "quarantine_rows", "bronze_crm_members"):
        assert after[name] == before[name], name
    assert len(after["bronze_pos_lines"]) == len(before["bronze_pos_lines"]) + 6


def test_gzip_and_upper_case_deliveries_are_read_and_paths_no_source_reads_are_listed(spark, make_settings, tmp_path):
    """A `.csv.gz` delivery and a `.CSV` one are read like `.csv`; a broken gzip file is quarantined as a file with
    a reason (once: a re-run does not quarantine it again); files no source reads are listed as `not_read`."""
    import gzip

    from cdp.ingest import run
    from cdp.lake import read_table

    settings = make_settings()
    landing = Path(settings.landing_dir)
    write(landing, "pos", "2026-11-21", "pos_s01.csv.gz", gzip.compress(POS_DAY1.encode("utf-8")))
    write(landing, "pos", "2026-11-21", "POS_S02.CSV", POS_DAY1.replace(",S0", ",T0").replace("P", "Q"))
    write(landing, "pos", "2026-11-21", "pos_s03.xlsx", b"PK\x03\x04 not a csv")            # matches no pattern
    write(landing, "pos", "2026-11-21", "pos_s04.csv.gz", POS_DAY1.encode("utf-8"))   # named .gz, not gzip
    (landing / "pos" / "pos_loose.csv").write_text(POS_DAY1, encoding="utf-8")          # beside the dt folders
    write(landing, "tmall", "2026-11-21", "orders.csv", "x")                            # not a declared source
    summary = run(spark, settings, RUN_DATE)
    assert summary["not_read"] == ["pos/dt=2026-11-21/pos_s03.xlsx", "pos/pos_loose.csv", "tmall/"]
    pos = summary["sources"]["pos"]
    assert summary["is_balanced"]
    # 5 + 5 rows read; the broken .gz counts no rows: it cannot be read as the source's format
    assert (pos["rows_landed"], pos["rows_accepted"], pos["rows_quarantined"]) == (10, 10, 0)
    assert [q["file"] for q in pos["files_quarantined"]] == ["pos/dt=2026-11-21/pos_s04.csv.gz"]
    assert "not a readable gzip file" in pos["files_quarantined"][0]["reason"]
    assert sorted(r.order_id for r in read_table(spark, settings, "silver_pos_lines").select("order_id")
                  .distinct().collect()) == ["P1", "P2", "P3", "P4", "Q1", "Q2", "Q3", "Q4"]
    assert read_table(spark, settings, "quarantine_files").count() == 1

    again = run(spark, settings, RUN_DATE)["sources"]["pos"]
    assert again["files_quarantined"] == [] and again["files_already_ingested"] == 3
    assert read_table(spark, settings, "quarantine_files").count() == 1


def test_hostile_corpus_is_ingested_without_crash_and_every_row_accounted(spark, make_settings, tmp_path):
    settings = make_settings()
    from cdp.ingest import run
    from cdp.lake import read_table

    landing = Path(settings.landing_dir)
    expected_rows: dict[str, int] = {}
    for path in sorted(HOSTILE.glob("*/*")):
        target = write(landing, path.parent.name, "2026-11-21", path.name, path.read_bytes())
        lines = [l for l in path.read_bytes().split(b"\n") if l.strip()]
        expected_rows[f"{path.parent.name}/dt=2026-11-21/{path.name}"] = len(lines) - (path.suffix == ".csv")
        assert target.exists()
    # a 10 MB single-line JSON event (generated here rather than committed): valid, with a huge extra field
    big = {"event_id": "BIG", "event_type": "view_item", "event_time": "2026-11-20T10:00:00+08:00", "appid": "wx",
           "openid": "o_big", "blob": "x" * (10 * 1024 * 1024)}
    write(landing, "miniprogram", "2026-11-21", "big.jsonl", json.dumps(big) + "\n")
    expected_rows["miniprogram/dt=2026-11-21/big.jsonl"] = 1

    summary = run(spark, settings, RUN_DATE)
    assert summary["is_balanced"]
    ledger = {r.file_path: r for r in read_table(spark, settings, "ingest_file_ledger").collect()}
    # every line of every hostile file is a landed row, and each is accepted or quarantined
    assert {p: r.rows_landed for p, r in ledger.items()} == expected_rows
    assert all(r.rows_landed == r.rows_accepted + r.rows_quarantined for r in ledger.values())
    quarantine = read_table(spark, settings, "quarantine_rows")
    assert quarantine.where("rule IS NULL OR reason IS NULL OR raw_record IS NULL").count() == 0
    by_file = {p: n for p, n in quarantine.groupBy("file_path").count().collect()}
    assert all(by_file.get(p, 0) == r.rows_quarantined for p, r in ledger.items() if r.status == "accepted")
    rules = {(r.file_path.split("/")[-1], r.source_line): r.rule for r in quarantine.collect()}
    assert {k: v for k, v in rules.items() if k[0] == "messy_rows.csv"} == {
        ("messy_rows.csv", 3): "well_formed", ("messy_rows.csv", 4): "line_no_integer",
        ("messy_rows.csv", 5): "quantity_range", ("messy_rows.csv", 6): "paid_at_plausible",
        ("messy_rows.csv", 7): "paid_at_plausible", ("messy_rows.csv", 8): "line_unique",
        ("messy_rows.csv", 9): "line_unique", ("messy_rows.csv", 13): "paid_at_parses"}
    files = {r.file_path.split("/")[-1]: r.reason for r in read_table(spark, settings, "quarantine_files").collect()}
    assert set(files) == {"gbk_in_utf8.csv", "missing_column.csv"}
    # hostile strings that are valid data are kept as text, never executed or interpreted
    names = {r.order_id: r.sku_name for r in read_table(spark, settings, "silver_pos_lines").collect()}
    assert names["H10"] == "'; DROP TABLE silver_pos_lines; --"
    assert names["H11"] == '=HYPERLINK("http://evil.example/x","click")'
    assert names["H12"] == "emoji 🍇 and bell"  # control characters stripped in silver
    assert read_table(spark, settings, "silver_miniprogram_events").where("event_id = 'BIG'").count() == 1
    assert summary["sources"]["stores"]["rows_quarantined"] == 3


def test_fields_that_would_be_lost_or_misreported_are_quarantined_or_normalised(spark, make_settings, tmp_path):
    """A remark mobile delivered as a string instead of a list, tags or items that are not lists of objects: the
    typed parse turns such a field into null, so an accepted row would silently lose an identifier or its order
    lines. The contract validates the schema: the row goes to quarantine with a reason instead. The same for an
    item price that does not parse.

    Also (one ingest run for all): two POS lines that do not split have no keys; both fail well_formed, and the
    per-file uniqueness rule does not count their missing keys as equal (it reported "the same (brand_id,
    order_id, line_no) appears more than once"). A masked phone with a +86 prefix is stored as the contract's
    `138****8000`, like an unmasked one."""
    settings = make_settings()
    from cdp.ingest import run
    from cdp.lake import read_table

    landing = Path(settings.landing_dir)
    t = "2026-11-20T10:00:00+08:00"
    event = {"event_type": "order_paid", "event_time": t, "appid": "wx", "amount": "9.90"}
    write(landing, "miniprogram", "2026-11-21", "shapes.jsonl", jsonl(
        {**event, "event_id": "S1", "openid": "o1", "items": [{"sku_id": "K1", "quantity": 1, "price": "9.90"}]},
        {**event, "event_id": "S2", "openid": "o2", "items": "K1"},
        {**event, "event_id": "S3", "openid": "o3", "items": ["K1"]},
        {**event, "event_id": "S4", "openid": "o4", "items": None},      # JSON null = absent: fine
        {**event, "event_id": "S5", "openid": "o5"},
        # a price that does not parse would be lost (null): quarantined; an item without a price is kept
        {**event, "event_id": "S6", "openid": "o6", "items": [{"sku_id": "K1", "quantity": 1, "price": "¥9.9"}]},
        {**event, "event_id": "S7", "openid": "o7", "items": [{"sku_id": "K1", "quantity": 1}]}))
    contact = lambda ext, **follow: {  # noqa: E731
        "change_type": "add_external_contact", "event_time": 1795140000,
        "external_contact": {"external_userid": ext, "name": "x", "gender": 1},
        "follow_user": {"userid": "g1", "createtime": 1795140000, **follow}}
    write(landing, "wecom", "2026-11-21", "shapes.jsonl", jsonl(
        contact("W1", remark_mobiles=["13912345678"], tags=[{"group_name": "g", "tag_name": "t"}]),
        contact("W2", remark_mobiles="13912345678"),
        contact("W3", remark_mobiles=["13912345678"], tags=[{"group_name": "g", "tag_name": "t"}, "vip"]),
        contact("W4", remark_mobiles=None, tags=None),
        contact("W5")))

    write(landing, "pos", "2026-11-21", "p.csv", "\n".join([
        POS_HEADER,
        "P1,1,S01,2026-11-20 10:00:00,M1,,K1,Apple,fruit,1,1,1",
        "P2,1,S01,2026-11-20 10:00:00,M1,,K1,Apple,fruit,1,1,1,cash,x",
        "P3,1,S01,2026-11-20 10:00:00,,+86 138****8000,K1,Apple,fruit,1,1,1,cash",
        "P4,1,S01,2026-11-20 10:00:00,,0086-138****8000,K1,Apple,fruit,1,1,1,cash"]) + "\n")

    summary = run(spark, settings, RUN_DATE)
    assert summary["is_balanced"] and "line_unique" not in summary["sources"]["pos"]["rows_failed_by_rule"]
    quarantined = read_table(spark, settings, "quarantine_rows")
    pos = quarantined.where("source = 'pos'").collect()
    assert sorted(r.source_line for r in pos) == [2, 3]
    assert all(r.rule == "well_formed" and "line_unique" not in r.reason for r in pos)
    assert _rows(spark, settings, "silver_pos_lines", "order_id", "mobile_status", "mobile_masked", "mobile_hash") == [
        ("P3", "masked", "138****8000", None), ("P4", "masked", "138****8000", None)]
    rules = {(r.source, r.raw_record and json.loads(r.raw_record).get("event_id")
              or json.loads(r.raw_record)["external_contact"]["external_userid"]): r.rule
             for r in quarantined.where("source <> 'pos'").collect()}
    assert rules == {("miniprogram", "S2"): "items_valid", ("miniprogram", "S3"): "items_valid",
                     ("miniprogram", "S6"): "items_valid",
                     ("wecom", "W2"): "follow_user_lists", ("wecom", "W3"): "follow_user_lists"}
    assert sorted((r.event_id, r.items and [tuple(i) for i in r.items])
                  for r in read_table(spark, settings, "silver_miniprogram_events").collect()) == [
        ("S1", [("K1", Decimal("1.000"), Decimal("9.90"))]), ("S4", None), ("S5", None),
        ("S7", [("K1", Decimal("1.000"), None)])]
    assert sorted(r.external_userid for r in read_table(spark, settings, "silver_wecom_contacts").collect()) == [
        "W1", "W4", "W5"]


def test_timestamps_with_an_offset_or_epoch_parse_and_local_wall_clocks_do_not(spark):
    """The forms the contract accepts for mini-program and WeCom times (docs/landing-contract.md, "Normalisation
    in silver") all give the same instant; a time without an offset, or a number of the wrong size, gives null."""
    from pyspark.sql import functions as F

    from cdp.ingestion.normalise import epoch_or_iso_ts

    instant = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.timezone.utc).timestamp()
    cases = [("2026-11-20T10:00:00+08:00", instant), ("2026-11-20T02:00:00Z", instant),
             ("2026-11-20 10:00:00+08:00", instant), ("2026-11-20T10:00:00+0800", instant),
             ("2026-11-20T10:00:00+08", instant), ("2026-11-19T21:00:00-05:00", instant),
             ("2026-11-20T10:00:00.250+08:00", instant + 0.25), (str(int(instant)), instant),
             (str(int(instant * 1000) + 250), instant + 0.25),
             ("2026-11-20T10:00:00", None), ("2026-11-20 10:00:00", None), ("2026-11-20T10:00:00+8", None),
             ("20261120T100000+0800", None), ("12345678", None), ("17951400001", None), ("", None)]
    got = (spark.createDataFrame([(text,) for text, _ in cases], "text string")
           .select("text", epoch_or_iso_ts(F.col("text")).cast("double").alias("epoch")).collect())
    assert [(r.text, r.epoch) for r in got] == cases


def test_wecom_change_without_details_keeps_the_pairs_identifiers(spark, make_settings, tmp_path):
    """A del_follow_user / edit callback names only the contact and the guide. Taking such a change as the whole
    new state dropped the contact's unionid and remark phones, so the identity stage split the deleted contact
    from its person into a One-ID of its own. Absent fields keep the pair's earlier value, in the same run and
    across runs; an explicit empty list still clears the remark phones."""
    settings = make_settings()
    from cdp.ingest import run

    key = load_secret(settings)
    landing = Path(settings.landing_dir)
    added = lambda ext, guide, unionid, phone: {  # noqa: E731
        "change_type": "add_external_contact", "event_time": 1795140000,
        "external_contact": {"external_userid": ext, "name": "张伟", "gender": 1, "unionid": unionid},
        "follow_user": {"userid": guide, "remark_mobiles": [phone], "createtime": 1795140000,
                        "tags": [{"group_name": "偏好", "tag_name": "榴莲"}], "state": "S01"}}
    bare = lambda change, ext, guide, at, **follow: {  # noqa: E731
        "change_type": change, "event_time": at, "external_contact": {"external_userid": ext},
        "follow_user": {"userid": guide, **follow}}
    write(landing, "wecom", "2026-11-20", "c.jsonl", jsonl(
        added("W1", "g1", "u1", "13912345678"), added("W2", "g1", "u2", "13912345679"),
        added("W3", "g1", "u3", "13912345670"),
        bare("del_follow_user", "W1", "g1", 1795150000)))                       # same run as the add
    run(spark, settings, RUN_DATE - dt.timedelta(days=1))
    write(landing, "wecom", "2026-11-21", "c.jsonl", jsonl(
        bare("del_external_contact", "W2", "g1", 1795160000),                   # a later run
        bare("edit_external_contact", "W3", "g1", 1795160000, remark_mobiles=[])))
    assert run(spark, settings, RUN_DATE)["is_balanced"]

    u, m = (lambda v: hash_value(v, "unionid", key)), (lambda v: hash_value(v, "mobile", key))
    assert _rows(spark, settings, "silver_wecom_contacts", "external_userid", "last_change_type", "is_active",
                 "unionid_hash", "remark_mobile_hashes", "remark_mobiles_masked", "name_masked", "store_id",
                 "gender") == [
        ("W1", "del_follow_user", False, u("u1"), [m("13912345678")], ["139****5678"], "张*", "S01", "M"),
        ("W2", "del_external_contact", False, u("u2"), [m("13912345679")], ["139****5679"], "张*", "S01", "M"),
        ("W3", "edit_external_contact", True, u("u3"), [], [], "张*", "S01", "M")]

