"""The foundation pieces: settings, the Spark factory with Delta, keyed hashing in Python and Spark."""
from __future__ import annotations

import datetime as dt

import pytest

from cdp.config import load_settings
from cdp.errors import ConfigError, MissingSecretError
from cdp.privacy import hash_value, load_secret, mask_mobile, mask_name


def test_settings_resolve_tables_under_the_lake(tmp_path):
    settings = load_settings("local", overrides={"lake_dir": str(tmp_path)})
    assert settings.table_path("silver_pos_lines") == f"{tmp_path}/silver/pos_lines"
    with pytest.raises(ConfigError, match="conf/tables.yaml"):
        settings.table_path("no_such_table")


def test_spark_conf_from_the_environment_overrides_the_profile(monkeypatch):
    monkeypatch.setenv("CDP_SPARK_CONF", "spark.driver.memory=12g, spark.sql.shuffle.partitions=32")
    conf = load_settings("local").spark.conf
    assert conf["spark.driver.memory"] == "12g" and conf["spark.sql.shuffle.partitions"] == "32"
    assert conf["spark.ui.enabled"] == "false"  # the rest of the profile stays
    monkeypatch.setenv("CDP_SPARK_CONF", "spark.driver.memory")
    with pytest.raises(ConfigError, match="key=value"):
        load_settings("local")


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ConfigError, match="known profiles"):
        load_settings("nope")


def test_missing_secret_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CDP_HMAC_SECRET", raising=False)
    cluster = load_settings("cluster")
    with pytest.raises(MissingSecretError, match="CDP_HMAC_SECRET is not set"):
        load_secret(cluster)


def test_masking():
    assert mask_mobile("13800138000") == "138****8000"
    assert mask_name("张伟") == "张*"
    assert mask_mobile(None) is None


@pytest.mark.spark
def test_spark_hmac_equals_python_hmac_and_delta_roundtrip(spark, settings):
    from pyspark.sql import functions as F

    from cdp.lake import merge_table, read_table
    from cdp.privacy import hash_col, mask_name_col

    key = b"k" * 80  # longer than one block: exercises the key-hashing branch of RFC 2104
    values = ["13800138000", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "张伟", None]
    df = spark.createDataFrame([(v,) for v in values], "value string")
    got = df.select(hash_col(F.col("value"), "mobile", key).alias("h"), mask_name_col(F.col("value")).alias("m")).collect()
    assert [r.h for r in got] == [hash_value(v, "mobile", key) if v else None for v in values]
    assert got[2].m == "张*"

    rows = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
    merge_table(spark, rows, settings, "silver_stores", keys=["id"])
    merge_table(spark, spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string"), settings, "silver_stores", keys=["id"])
    merge_table(spark, spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string"), settings, "silver_stores", keys=["id"])
    assert sorted(map(tuple, read_table(spark, settings, "silver_stores").collect())) == [(1, "a"), (2, "B"), (3, "c")]
    # the version read without a Spark job is the one Delta's history reports, also after another writer's commit
    from delta.tables import DeltaTable

    from cdp.lake import table_version

    def history_version() -> int:
        return max(r.version for r in DeltaTable.forPath(spark, settings.table_path("silver_stores")).history().collect())

    assert table_version(spark, settings, "silver_catalog") is None
    assert table_version(spark, settings, "silver_stores") == history_version() == 2
    rows.write.format("delta").mode("append").save(settings.table_path("silver_stores"))
    assert table_version(spark, settings, "silver_stores") == history_version() == 3


@pytest.mark.spark
@pytest.mark.parametrize("listed", [True, False], ids=["delete-and-append", "merge"])
def test_replace_rows_by_key(spark, settings, monkeypatch, listed):
    """The same replacement whether the keys are listed in a DELETE or too many to list (one MERGE)."""
    from delta.tables import DeltaTable

    from cdp import lake
    from cdp.lake import overwrite_table, read_table, replace_rows

    if not listed:
        monkeypatch.setattr(lake, "LISTED_KEYS_MAX", 1)
    schema = "source string, source_record_id string, one_id string"
    overwrite_table(spark.createDataFrame([("pos", "1", "a"), ("pos", "2", "a"), ("crm", "1", "b"), ("crm", "x y", "c")],
                                          schema), settings, "identity_record_map")
    # pos 2 changes its One-ID, crm 1 is gone, pos 3 is new; pos 1 and the crm record "x y" stay
    taken_out = spark.createDataFrame([("pos", "2"), ("crm", "1")], "source string, source_record_id string")
    rows = spark.createDataFrame([("pos", "2", "z"), ("pos", "3", "n")], schema)
    replace_rows(spark, settings, "identity_record_map", ["source", "source_record_id"], taken_out, rows)
    assert sorted(map(tuple, read_table(spark, settings, "identity_record_map").collect())) == [
        ("crm", "x y", "c"), ("pos", "1", "a"), ("pos", "2", "z"), ("pos", "3", "n")]
    operations = {r.operation for r in DeltaTable.forPath(spark, settings.table_path("identity_record_map")).history().collect()}
    assert ("DELETE" in operations) == listed and ("MERGE" in operations) == (not listed)

    # a key that is not plain text is never put in a DELETE condition: it takes the MERGE
    replace_rows(spark, settings, "identity_record_map", ["source", "source_record_id"],
                 spark.createDataFrame([("crm", "x y")], "source string, source_record_id string"),
                 spark.createDataFrame([("crm", "x y", "d")], schema))
    assert ("crm", "x y", "d") in map(tuple, read_table(spark, settings, "identity_record_map").collect())
    assert DeltaTable.forPath(spark, settings.table_path("identity_record_map")).history(1).first().operation == "MERGE"


def test_date_read_amplification():
    from cdp.lake import date_read_amplification

    days = {d: 100 for d in range(10)}
    # every file spans every day: a one-day read takes all ten files
    scattered = [(0, 9, 10) for _ in range(10)]
    # one file per day, and files of two days each: no more than one target-sized file per day
    by_day = [(d, d, 10) for d in range(10)]
    by_two = [(d, d + 1, 20) for d in range(0, 10, 2)]
    assert date_read_amplification(scattered, days, target_bytes=10) == 10.0
    assert date_read_amplification(by_day, days, target_bytes=10) == 1.0
    assert date_read_amplification(by_two, days, target_bytes=20) == 1.0
    # a table smaller than one target file is never worth laying out
    assert date_read_amplification(scattered, days, target_bytes=1000) == 1.0



def test_layout_checked_only_after_a_run_of_many_landing_days():
    from cdp.ingest import SourceReport, layout_candidates
    from cdp.ingestion.ledger import FileCount

    def files(source, days, status="accepted"):
        return [FileCount(source, f"{source}/dt=2026-03-{d:02d}/a.csv", f"2026-03-{d:02d}", f"h{d}", 1, 1, 0, status,
                          None) for d in days]

    reports = {
        "pos": SourceReport("pos", files("pos", [9, 9, 8])),                       # a day and a late file
        "crm": SourceReport("crm", files("crm", range(1, 6))),                      # five days: a backfill
        "wecom": SourceReport("wecom", files("wecom", [1, 2]) + files("wecom", range(3, 9), "quarantined_file")),
        "ecommerce": SourceReport("ecommerce", []),
    }
    # rejected files write no silver rows; four days are within the layout threshold, five are not
    assert layout_candidates(reports) == ["silver_crm_members"]
    assert layout_candidates(reports, max_days=1) == ["silver_pos_lines", "silver_crm_members", "silver_wecom_contacts"]

@pytest.mark.spark
def test_cluster_by_date_lays_out_a_scattered_table_once(spark, settings):
    """A backfill writes every file across all days; the layout puts each day in few files, keeps every row, and
    a day appended later (its own file) does not trigger another rewrite."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.lake import append_table, cluster_by_date, overwrite_table, read_table

    rows = (spark.range(40_000).select(F.expr("date_add(date'2026-01-01', cast(id % 40 as int))").alias("dt"),
                                       F.sha2(F.col("id").cast("string"), 256).alias("payload"))
            .repartition(8))
    overwrite_table(rows, settings, "silver_stores")
    before = sorted(map(tuple, read_table(spark, settings, "silver_stores").collect()))
    target = 400_000   # bytes: about eight files for this table

    def spans():
        files = (read_table(spark, settings, "silver_stores").groupBy("_metadata.file_path")
                 .agg(F.min("dt").alias("lo"), F.max("dt").alias("hi")).collect())
        return sorted(((f.hi - f.lo).days for f in files))

    assert max(spans()) == 39
    assert cluster_by_date(spark, settings, "silver_stores", target_bytes=target) is True
    history = DeltaTable.forPath(spark, settings.table_path("silver_stores")).history()
    assert history.first().operation == "OPTIMIZE"
    assert sorted(map(tuple, read_table(spark, settings, "silver_stores").collect())) == before
    assert len(spans()) > 2 and max(spans()) < 20

    append_table(spark.createDataFrame([(dt.date(2026, 2, 10), "new")], "dt date, payload string"), settings,
                 "silver_stores")
    assert cluster_by_date(spark, settings, "silver_stores", target_bytes=target) is False
    assert DeltaTable.forPath(spark, settings.table_path("silver_stores")).history().first().operation == "WRITE"
    # no date column: nothing to do
    overwrite_table(spark.createDataFrame([("a",)], "store_id string"), settings, "silver_catalog")
    assert cluster_by_date(spark, settings, "silver_catalog") is None


def test_a_mistyped_stage_name_is_an_error_before_anything_runs(tmp_path):
    """`cdp run --stages ingets` used to print {} and exit 0. No Spark is needed to refuse it: the session
    argument is never touched, and no lock file is created in the lake."""
    from cdp.pipeline import run_pipeline

    settings = load_settings(overrides={"lake_dir": tmp_path / "lake"})
    with pytest.raises(ConfigError, match=r"unknown stage\(s\) \['ingets'\]; stages are \('ingest', 'identity'"):
        run_pipeline(None, settings, dt.date(2026, 11, 27), stages=("ingets", "identity"))
    assert not (tmp_path / "lake").exists()


def test_relative_local_folders_become_absolute_and_uris_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(overrides={"lake_dir": "data/lake", "landing_dir": "s3a://landing/cdp"})
    assert (settings.lake_dir, settings.landing_dir) == (str(tmp_path / "data/lake"), "s3a://landing/cdp")
    assert settings.table_path("silver_pos_lines") == str(tmp_path / "data/lake/silver/pos_lines")


def test_a_missing_landing_folder_is_an_error_not_a_quiet_day(tmp_path):
    from cdp.ingest import run

    settings = load_settings(overrides={"lake_dir": tmp_path / "lake", "landing_dir": tmp_path / "nolanding"})
    with pytest.raises(ConfigError, match="landing folder .*nolanding does not exist"):
        run(None, settings, dt.date(2026, 11, 27))
