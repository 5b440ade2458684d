"""Erasure (PIPL art. 47): after `erase` by mobile, no file of the lake holds the person's phone, cards or ids."""
from __future__ import annotations

import json
from pathlib import Path


def _table_texts(spark, settings):
    """{table: list of JSON lines of every row} for every Delta table of the lake."""
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    out = {}
    for name in settings.tables:
        if name != "ingest_staging" and table_exists(spark, settings, name):
            df = read_table(spark, settings, name)
            out[name] = [r[0] for r in df.select(F.to_json(F.struct(*df.columns))).collect()]
    return out


def test_erase_by_mobile_removes_person_everywhere(spark, daily_world, tmp_path):
    """On a copy of the session's daily world (every stage ran, models, tags and segments included), so the
    erasure is checked against every table a daily run writes."""
    import shutil

    from pyspark.sql import functions as F

    from cdp.config import load_settings
    from cdp.erasure import erase
    from cdp.lake import read_table

    lake = tmp_path / "lake"
    shutil.copytree(daily_world.lake, lake)
    settings = load_settings("local", overrides={"landing_dir": str(daily_world.landing), "lake_dir": str(lake)})

    # the person: the active mobile node whose One-ID has the most identifiers (so cards and ids are erased too)
    nodes = read_table(spark, settings, "identity_nodes").where(F.col("one_id").isNotNull())
    pii = read_table(spark, settings, "pii_values")
    mobiles = (nodes.where(F.col("id_type") == "mobile")
               .withColumn("value_hash", F.substring_index("node_key", ":", -1))
               .join(pii.where(F.col("kind") == "mobile"), "value_hash").select("one_id", "value"))
    sizes = nodes.groupBy("one_id").count()
    pick = mobiles.join(sizes, "one_id").orderBy(F.desc("count"), "one_id").first()
    one_id, phone = pick["one_id"], pick["value"]
    person_keys = [r[0] for r in nodes.where(F.col("one_id") == one_id).select("node_key").collect()]
    hashes = [k.rsplit(":", 1)[-1] for k in person_keys if k.split(":")[0] in ("mobile", "unionid", "openid")]
    raw_ids = {r[0] for r in pii.where(F.col("value_hash").isin(hashes)).select("value").collect()}
    raw_ids |= {k.rsplit(":", 1)[-1] for k in person_keys if k.split(":")[0] not in ("mobile", "unionid", "openid")}
    assert phone in raw_ids and len(person_keys) >= 2
    profiles_before = read_table(spark, settings, "gold_profiles").count()
    others_before = read_table(spark, settings, "identity_record_map") \
        .where(F.col("one_id").isNotNull() & (F.col("one_id") != one_id)).count()

    receipt = erase(spark, settings, mobile=phone, requested_by="dpo@test", reason="subject request")

    assert receipt["one_id"] == one_id
    assert receipt["rows_removed"]["pii_values"] >= 1 and receipt["rows_removed"]["gold_profiles"] == 1
    assert any(name.startswith("bronze_") for name in receipt["rows_removed"])
    assert any(name.startswith("silver_") for name in receipt["rows_removed"])
    assert receipt["rows_removed"].get("identity_nodes") == len(person_keys)

    # 1) bytes of every file under the lake (data files and _delta_log JSON / checkpoints)
    long_ids = {v for v in raw_ids if len(v) >= 8}
    for path in Path(settings.lake_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in long_ids:
                assert value.encode("utf-8") not in data, f"{value[:3]}... still in {path}"
    # 2) every row of every table (parquet may compress strings): no exact or contained raw value, no key/one_id
    texts = _table_texts(spark, settings)
    for name, rows in texts.items():
        for row in rows:
            values = json.loads(row)
            for value in long_ids:
                assert value not in row, f"raw id still in {name}"
            flat = json.dumps(values, ensure_ascii=False)
            for value in raw_ids | set(person_keys):
                assert json.dumps(value) not in flat, f"identifier still in {name}"
            if name != "erasure_receipts":
                assert json.dumps(one_id) not in flat, f"one_id still in {name}"
    # the receipt: one row, the one_id and counts, no raw values or node keys
    assert len(texts["erasure_receipts"]) == 1
    stored = json.loads(texts["erasure_receipts"][0])
    assert stored["one_id"] == one_id and stored["rows_removed"] == receipt["rows_removed"]
    assert stored["requested_by"] == "dpo@test" and len(stored["request_hash"]) == 64

    # other people are untouched
    assert read_table(spark, settings, "gold_profiles").count() == profiles_before - 1
    assert read_table(spark, settings, "identity_record_map") \
        .where(F.col("one_id").isNotNull() & (F.col("one_id") != one_id)).count() == others_before
    # time travel cannot bring the data back: the history starts after the erasure
    from delta.tables import DeltaTable
    history = DeltaTable.forPath(spark, settings.table_path("pii_values")).history().collect()
    assert len(history) == 1


def test_an_interrupted_swap_is_repaired_before_the_next_erasure(tmp_path):
    """A kill between the two renames of the swap loses no table: the next erasure puts the old one back."""
    from cdp.erasure import finish_interrupted_swap

    table = tmp_path / "silver_x"
    old, new = tmp_path / "silver_x.__erasure_old", tmp_path / "silver_x.__erasure_new"
    old.mkdir()
    (old / "part-0.parquet").write_text("old rows")
    new.mkdir()                                   # killed after `table -> old`, before `new -> table`
    finish_interrupted_swap(str(table))
    assert (table / "part-0.parquet").read_text() == "old rows" and not old.exists() and not new.exists()

    old.mkdir()                                   # killed after both renames, before the old folder was deleted
    finish_interrupted_swap(str(table))
    assert table.exists() and not old.exists()

    finish_interrupted_swap(str(tmp_path / "untouched"))   # nothing to repair: nothing created
    assert not (tmp_path / "untouched").exists()
