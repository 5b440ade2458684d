"""Roles decide what can be read: marketers see gold only, nobody but admin sees the personal-data table."""
from __future__ import annotations

import pytest

from cdp.access import AccessDenied, get_role, readable_tables, require, run_query


def test_roles_as_declared(settings):
    marketer, engineer, admin = (get_role(settings, n) for n in ("marketer", "data_engineer", "admin"))
    assert readable_tables(settings, marketer) == [t for t in settings.tables if t.startswith("gold_")]
    assert "pii_values" not in readable_tables(settings, engineer)
    assert "bronze_pos_lines" in readable_tables(settings, engineer)
    assert set(readable_tables(settings, admin)) == set(settings.tables)
    with pytest.raises(AccessDenied):
        require(marketer, "lookup_mobile")
    require(admin, "erase")


def test_only_a_role_that_reads_pii_values_exports_raw_unionids_from_the_cli(settings, tmp_path, capsys):
    """`cdp segment export --to unionid` writes raw unionids from pii_values: admin only, as in the console. The
    refusal comes before Spark starts, names the role and the way out, and writes no file."""
    from cdp.access import require_export
    from cdp.cli import main

    out = tmp_path / "u.csv"
    for role in ("marketer", "data_engineer"):
        args = ["segment", "export", "any_segment", "--to", "unionid", "--out", str(out), "--lake", settings.lake_dir,
                "--role", role]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"role '{role}' may not export raw unionids" in err and "--to wecom" in err and "Traceback" not in err
    assert not out.exists()
    require_export(get_role(settings, "admin"), "unionid")
    require_export(get_role(settings, "marketer"), "wecom")
    require_export(get_role(settings, "marketer"), "mobile_hash")


@pytest.mark.spark
def test_marketer_query_sees_gold_but_not_bronze_nor_raw_paths(spark, settings):
    from cdp.lake import overwrite_table

    overwrite_table(spark.createDataFrame([("OID1", 3)], "one_id string, order_count int"), settings, "gold_profiles")
    overwrite_table(spark.createDataFrame([("13800138000",)], "mobile string"), settings, "bronze_pos_lines")
    marketer = get_role(settings, "marketer")
    assert [tuple(r) for r in run_query(spark, settings, marketer, "SELECT * FROM gold_profiles").collect()] == [("OID1", 3)]
    with pytest.raises(AccessDenied, match="cannot see"):
        run_query(spark, settings, marketer, "SELECT * FROM bronze_pos_lines").collect()
    bronze_path = settings.table_path("bronze_pos_lines")
    with pytest.raises(Exception, match="(?i)not allowed|disabled|unsupported|runSQLOnFiles|cannot see"):
        run_query(spark, settings, marketer, f"SELECT * FROM delta.`{bronze_path}`").collect()
    with pytest.raises(AccessDenied, match="read-only"):
        run_query(spark, settings, marketer, f"CREATE TEMPORARY VIEW v USING delta OPTIONS (path '{bronze_path}')")
    with pytest.raises(AccessDenied, match="read-only"):
        run_query(spark, settings, marketer, "DROP TABLE gold_profiles")
    with pytest.raises(AccessDenied, match="read-only"):
        run_query(spark, settings, marketer, "CACHE TABLE gold_profiles")
    # card numbers stay in clear in gold (downstream tools join on them) but a marketer's query sees them masked,
    # nested in arrays too; the engineer sees them as stored
    overwrite_table(spark.createDataFrame(
        [("OID1", "M00012345", [("main", "M00012345"), ("b2", "C7")]), ("OID2", None, None)],
        "one_id string, member_card_no string, memberships array<struct<brand_id string, member_card_no string>>"),
        settings, "gold_segment_base")
    query = "SELECT one_id, member_card_no, memberships FROM gold_segment_base ORDER BY one_id"
    assert [r.asDict(recursive=True) for r in run_query(spark, settings, marketer, query).collect()] == [
        {"one_id": "OID1", "member_card_no": "M0*****45",
         "memberships": [{"brand_id": "main", "member_card_no": "M0*****45"}, {"brand_id": "b2", "member_card_no": "**"}]},
        {"one_id": "OID2", "member_card_no": None, "memberships": None}]
    engineer = get_role(settings, "data_engineer")
    assert run_query(spark, settings, engineer, query).collect()[0].memberships[0].member_card_no == "M00012345"
    # a CTE is still a read-only query
    assert run_query(spark, settings, marketer, "WITH p AS (SELECT * FROM gold_profiles) SELECT count(*) FROM p").collect()[0][0] == 1


def test_a_query_with_a_typo_is_a_one_line_error_not_a_traceback(spark, settings, capsys):
    from cdp.cli import main
    from cdp.lake import overwrite_table

    overwrite_table(spark.createDataFrame([("OID1", 3)], "one_id string, order_count int"), settings, "gold_profiles")
    lake = ["--lake", settings.lake_dir, "--landing", settings.landing_dir]
    assert main(["query", *lake, "--role", "marketer", "SELECT orders FROM gold_profiles"]) == 2
    err = capsys.readouterr().err
    assert "the query does not run: [UNRESOLVED_COLUMN" in err and "Traceback" not in err
    assert main(["query", *lake, "--role", "marketer", "SELEC one_id FROM gold_profiles"]) == 2
    assert "the query does not run: [PARSE_SYNTAX_ERROR]" in capsys.readouterr().err
