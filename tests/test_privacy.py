"""PIPL: no raw phone from the input shows up in the logs of a full run, nor in any silver or gold table."""
from __future__ import annotations

import csv
import json
import re

import pytest

PHONE = re.compile(r"1[3-9]\d{9}")


def _raw_phones(landing) -> set[str]:
    """Every mainland mobile typed in a phone field of the landing files (separators and +86 dropped)."""
    typed: list[str] = []
    for source, column in (("pos", "mobile"), ("crm", "mobile"), ("ecommerce", "receiver_mobile")):
        for path in landing.glob(f"{source}/dt=*/*.csv"):
            with open(path, encoding="utf-8-sig", errors="ignore", newline="") as handle:
                typed += [row.get(column) or "" for row in csv.DictReader(handle)]
    for path in landing.glob("*/dt=*/*.jsonl"):
        for line in path.read_text(encoding="utf-8", errors="ignore").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            typed.append(str(record.get("mobile") or ""))
            typed += [str(m) for m in (record.get("follow_user") or {}).get("remark_mobiles") or []]
    digits = (re.sub(r"\D", "", value) for value in typed)
    return {d[-11:] for d in digits if PHONE.fullmatch(d[-11:] if len(d) >= 11 else "")}


@pytest.mark.spark
@pytest.mark.airflow
def test_no_raw_phone_in_run_logs_or_marketer_tables(daily_world, spark):
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    phones = _raw_phones(daily_world.landing)
    assert len(phones) > 50  # the generated world has plenty of phones to leak
    log_text = daily_world.log_file.read_text(encoding="utf-8")
    assert len(log_text) > 1000  # the run really logged
    leaked = {p for p in phones if p in log_text}
    assert leaked == set(), f"{len(leaked)} raw phones in the run log"

    settings = daily_world.settings
    for name in settings.tables:
        if not name.startswith(("silver_", "gold_")) or not table_exists(spark, settings, name):
            continue
        df = read_table(spark, settings, name)
        text_cols = [F.to_json(F.struct(*df.columns)).alias("row")]
        found = (df.select(*text_cols).select(F.regexp_extract_all("row", F.lit(r"1[3-9]\d{9}"), 0).alias("m"))
                 .select(F.explode("m").alias("phone")).distinct())
        hits = {r.phone for r in found.collect()} & phones
        assert hits == set(), f"{name} holds {len(hits)} raw phones"
