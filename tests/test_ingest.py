"""Ingestion logic that needs no JVM: reading landing files, the file-level contract, the rules as data."""
from __future__ import annotations

import datetime as dt

import pytest

from cdp.config import default_conf_dir
from cdp.errors import ConfigError
from cdp.ingestion import readers
from cdp.ingestion.expectations import Rule, compile_rule, load_rules
from ingest_landing import POS_DAY1, POS_HEADER, write


def _landed(path, source="pos", day="2026-11-21"):
    content_hash, size = readers.hash_file(str(path))
    return readers.LandedFile(source, str(path), day, content_hash, size, f"{source}/dt={day}/{path.name}")


def _staged_rows(staged):
    import pyarrow.parquet as pq

    return pq.read_table(staged.staged_path).to_pylist()


def test_discover_picks_every_dt_up_to_the_run_date_in_order(tmp_path):
    for day in ("2026-11-22", "2026-11-19", "2026-11-21"):
        write(tmp_path, "pos", day, "a.csv", "x")
    write(tmp_path, "pos", "2026-11-21", "notes.txt", "x")         # wrong pattern
    write(tmp_path, "pos", "2026-11-21", ".a.csv", "x")            # hidden / in flight
    (tmp_path / "pos" / "not-a-dt").mkdir()
    write(tmp_path, "pos", "2026-11-21", "B.CSV", "x")             # the pattern holds without regard to case
    write(tmp_path, "pos", "2026-11-21", "c.csv.gz", "x")          # gzip-compressed
    found = readers.discover_files(str(tmp_path / "pos"), "*.csv", "pos", "2026-11-21")
    assert [(p.split("/")[-2], p.split("/")[-1], d) for p, d in found] == [
        ("dt=2026-11-19", "a.csv", "2026-11-19"), ("dt=2026-11-21", "B.CSV", "2026-11-21"),
        ("dt=2026-11-21", "a.csv", "2026-11-21"), ("dt=2026-11-21", "c.csv.gz", "2026-11-21")]
    # the visible files that match no pattern are listed, to be reported rather than passed over
    stray = readers.stray_files(str(tmp_path / "pos"), "*.csv", "2026-11-21")
    assert [p.split("/")[-1] for p, _ in stray] == ["notes.txt"]


def test_paths_no_source_reads_are_listed(tmp_path):
    write(tmp_path, "pos", "2026-11-21", "a.csv", "x")
    write(tmp_path, "tmall", "2026-11-21", "a.csv", "x")                  # not a declared source
    (tmp_path / "pos" / "2026-11-22").mkdir()                             # a dt folder without `dt=`
    (tmp_path / "pos" / "loose.csv").write_text("x")                      # beside the dt folders
    (tmp_path / "pos" / "_tmp").mkdir()                                   # in flight: not a delivery
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "_end_date").write_text("x")
    assert readers.misplaced(str(tmp_path), ["pos", "crm"]) == ["notes.txt", "pos/2026-11-22/", "pos/loose.csv",
                                                               "tmall/"]


def test_gzip_files_stage_like_plain_ones_and_a_broken_one_is_rejected(tmp_path):
    import gzip

    plain = write(tmp_path, "pos", "2026-11-21", "p.csv", POS_DAY1)
    packed = write(tmp_path, "pos", "2026-11-21", "p.csv.gz", gzip.compress(POS_DAY1.encode("utf-8")))
    one = readers.stage_csv(_landed(plain), "utf-8", POS_HEADER.split(","), str(tmp_path / "a.parquet"))
    two = readers.stage_csv(_landed(packed), "utf-8", POS_HEADER.split(","), str(tmp_path / "b.parquet"))
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("content_hash", "source_file")} for r in rows]  # noqa: E731
    assert strip(_staged_rows(two)) == strip(_staged_rows(one)) and two.rows_landed == 5
    assert readers.count_records(str(packed), "csv") == 5
    # half a gzip stream (a delivery cut off in transfer) and plain bytes under a .gz name
    for name, data in (("cut.csv.gz", gzip.compress(POS_DAY1.encode("utf-8"))[:60]), ("fake.csv.gz", POS_DAY1)):
        path = write(tmp_path, "pos", "2026-11-21", name, data)
        out = readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "c.parquet"))
        assert isinstance(out, readers.FileRejection) and "not a readable gzip file" in out.reason, name
        assert not (tmp_path / "c.parquet").exists()


@pytest.mark.parametrize("encoding, data", [
    ("utf-8", POS_DAY1.encode("utf-8")),
    ("utf-8", b"\xef\xbb\xbf" + POS_DAY1.encode("utf-8")),               # BOM tolerated
    ("utf-8", POS_DAY1.replace("\n", "\r\n").encode("utf-8")),            # Windows line ends
    ("gbk", POS_DAY1.encode("gbk")),
])
def test_csv_staging_decodes_the_declared_encoding(tmp_path, encoding, data):
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", data)
    staged = readers.stage_csv(_landed(path), encoding, POS_HEADER.split(","), str(tmp_path / "s.parquet"))
    rows = _staged_rows(staged)
    # 5 data lines; line numbers are physical lines of the file (header is line 1)
    assert staged.rows_landed == 5
    assert [r["source_line"] for r in rows] == [2, 3, 4, 5, 6]
    assert rows[0]["sku_name"] == "巨峰葡萄" and rows[0]["mobile"] == "138 0013 8000"
    assert rows[2]["brand_id"] == "B2" and rows[0]["brand_id"] == ""
    assert rows[0]["content_hash"] == staged.landed.content_hash and rows[0]["dt"] == "2026-11-21"


def test_gbk_bytes_in_a_utf8_file_reject_the_whole_file_naming_the_encoding(tmp_path):
    data = POS_DAY1.encode("utf-8") + "P9,1,S01,2026-11-21 10:00:00,,,K1,巨峰葡萄,grape,1,1,1,cash\n".encode("gbk")
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", data)
    out = readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "s.parquet"))
    assert isinstance(out, readers.FileRejection)
    assert "declared encoding utf-8" in out.reason and "line 7" in out.reason and "pos.encoding" in out.reason
    assert not (tmp_path / "s.parquet").exists()
    assert readers.count_records(str(path), "csv") == 6


def test_a_line_of_full_width_spaces_is_blank_when_a_whole_file_is_counted(tmp_path):
    # staging skips it (str.strip knows U+3000); the count of a file quarantined as a whole must agree
    data = (POS_DAY1 + "\u3000\u3000\n \t\n").encode("utf-8")
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", data)
    staged = readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "s.parquet"))
    assert readers.count_records(str(path), "csv") == staged.rows_landed == 5


def test_missing_required_column_rejects_the_file_and_names_it(tmp_path):
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", POS_DAY1.replace(",mobile,", ",phone,", 1))
    out = readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "s.parquet"))
    assert isinstance(out, readers.FileRejection)
    assert out.reason.startswith("missing required column(s) mobile (declared in conf/sources.yaml")


def test_extra_columns_are_kept_and_bad_lines_are_staged_with_a_parse_error(tmp_path):
    text = (POS_HEADER + ",coupon\n" + "P1,1,S01,2026-11-20 10:00:00,,,K1,葡萄,grape,1,1,1,cash,C9\n"
            + "P2,1,S01,2026-11-20 10:00:00,,,K1\n\n" + 'P3,1,S01,"unterminated\n')
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", text)
    rows = _staged_rows(readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "s.parquet")))
    assert [(r["source_line"], r["extra"], r["parse_error"]) for r in rows] == [
        (2, [("coupon", "C9")], None),
        (3, None, "expected 14 fields, found 7"),
        (5, None, "expected 14 fields, found 4"),  # the blank line 4 is not a record
    ]
    assert rows[1]["raw_line"] == "P2,1,S01,2026-11-20 10:00:00,,,K1"


def test_a_field_longer_than_128_kib_is_data_not_a_parse_error(tmp_path):
    """Python's csv module rejects fields over 128 KiB by default; a long remark column must still be a field."""
    remark = "长" * 200_000
    line = "P1,1,S01,2026-11-20 10:00:00,,,K1,葡萄,grape,1,1,1,cash"
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", f'{POS_HEADER},remark\n{line},"{remark}"\n')
    rows = _staged_rows(readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "s.parquet")))
    assert [(r["parse_error"], r["order_id"], r["extra"]) for r in rows] == [(None, "P1", [("remark", remark)])]


def test_a_repeated_extra_column_is_kept_numbered_and_a_repeated_contract_column_rejects_the_file(tmp_path):
    line = "P1,1,S01,2026-11-20 10:00:00,,,K1,葡萄,grape,1,1,1,cash"
    path = write(tmp_path, "pos", "2026-11-21", "p.csv", f"{POS_HEADER},Remark,remark_2,remark\n{line},a,b,c\n")
    rows = _staged_rows(readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "s.parquet")))
    assert [r["extra"] for r in rows] == [[("remark", "a"), ("remark_2", "b"), ("remark_3", "c")]]
    path = write(tmp_path, "pos", "2026-11-21", "q.csv", f"{POS_HEADER},Mobile\n{line},138\n")
    out = readers.stage_csv(_landed(path), "utf-8", POS_HEADER.split(","), str(tmp_path / "t.parquet"))
    assert isinstance(out, readers.FileRejection)
    assert out.reason.startswith("header repeats column(s) mobile, which the contract reads")


def test_jsonl_staging_keeps_raw_lines_and_flags_bad_json(tmp_path):
    text = '{"event_id": "E1", "event_type": "app_login", "event_time": "t", "appid": "a", "openid": "o"}\n[1]\n{"event_id": "E2", \n'
    path = write(tmp_path, "miniprogram", "2026-11-21", "m.jsonl", text)
    staged = readers.stage_jsonl(_landed(path, "miniprogram"), "utf-8", ["event_id", "openid"], str(tmp_path / "s.parquet"))
    rows = _staged_rows(staged)
    assert [r["source_line"] for r in rows] == [1, 2, 3]
    assert rows[0]["parse_error"] is None and rows[1]["parse_error"] == "not a JSON object but a list"
    assert rows[2]["parse_error"].startswith("not valid JSON")
    missing = write(tmp_path, "miniprogram", "2026-11-21", "n.jsonl", '{"event_id": "E1"}\n')
    out = readers.stage_jsonl(_landed(missing, "miniprogram"), "utf-8", ["event_id", "openid"], str(tmp_path / "t.parquet"))
    assert isinstance(out, readers.FileRejection) and "missing required field(s) openid" in out.reason


def test_every_source_has_valid_rules_and_bad_rules_say_how_to_fix(tmp_path):
    for source in ("pos", "miniprogram", "wecom", "ecommerce", "crm", "catalog", "stores"):
        rules = load_rules(default_conf_dir(), source)
        assert rules.rules[0].name == "well_formed"
        for rule in rules.rules:
            compile_rule(rule, dt.date(2026, 11, 21))
    (tmp_path / "expectations").mkdir()
    (tmp_path / "expectations" / "pos.yaml").write_text("rules:\n  - {name: x, check: in_set, column: a, reason: r}\n")
    with pytest.raises(ConfigError, match="(?s)pos.yaml.*needs `values"):
        load_rules(tmp_path, "pos")
    with pytest.raises(ConfigError, match="no rules for source 'nope'"):
        load_rules(tmp_path, "nope")


def test_recent_rule_window_is_2000_to_run_date_plus_one_day():
    expectation = compile_rule(Rule(name="r", check="recent", column="paid_at", reason="x"), dt.date(2026, 11, 21))
    assert (expectation.min_value, expectation.max_value, expectation.strict_max) == (
        dt.datetime(2000, 1, 1), dt.datetime(2026, 11, 23), True)
