"""Lifecycle stages over two consecutive days (real Spark) and the thresholds' validation (no JVM)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from profiles_helpers import changed_conf, d, dec

from cdp.config import default_conf_dir
from cdp.errors import ConfigError
from cdp.tags.profile_rules import LIFECYCLE_STAGES, load_lifecycle_rules

CONF = default_conf_dir()


def test_shipped_thresholds():
    rules = load_lifecycle_rules(CONF / "lifecycle.yaml")
    assert (rules.dormant_after_days, rules.churned_after_days) == (90, 180)


@pytest.mark.parametrize("change, message", [
    ({"churned_after_days": 60}, "churned_after_days must be greater than dormant_after_days"),
    ({"loyal_min_orders": "many"}, "key loyal_min_orders"),
    ({"dormant_days": 90}, "key dormant_days: Extra inputs are not permitted"),
])
def test_wrong_thresholds_name_file_and_key(tmp_path: Path, change, message):
    path = changed_conf(tmp_path, "lifecycle.yaml", change)
    with pytest.raises(ConfigError, match=message) as err:
        load_lifecycle_rules(path)
    assert str(path) in str(err.value)


DAY1, DAY2 = d("2026-06-30"), d("2026-07-01")


def ago(days: int) -> dt.date:
    return DAY1 - dt.timedelta(days=days)


@pytest.mark.spark
def test_stages_and_transitions_over_two_days(spark):
    from cdp.tags.facts import FACT_SCHEMA
    from cdp.tags.lifecycle import build_lifecycle, latest_stages

    rules = load_lifecycle_rules(CONF / "lifecycle.yaml")  # new 30, dormant >90, churned >180, loyal 4 in 365
    purchases = {
        "N": [ago(10)],                                  # first purchase 10 days ago
        "L": [ago(200), ago(140), ago(80), ago(5)],      # 4 orders in a year, gaps <= 90
        "A": [ago(100), ago(20)],                        # 2 orders, gap 80
        "Dm": [ago(100), DAY2],                          # 100 days quiet on day 1, buys again on day 2
        "Ch": [ago(200)],
        "R": [ago(300), ago(10)],                        # comeback 10 days ago after a 290-day gap
        "B90": [ago(120), ago(90)],                      # exactly 90 days on day 1 (not > 90), 91 on day 2
    }
    facts = spark.createDataFrame(
        [(one_id, "pos", None, "b1", "S1", f"{one_id}{i}", f"{one_id}{i}", "1",
          dt.datetime.combine(day, dt.time(4)), day, "K1", "sku", "cat", dec("1.000"), dec("10.00"), False)
         for one_id, days in purchases.items() for i, day in enumerate(days)], FACT_SCHEMA)
    profiles = spark.createDataFrame([(p, p == "Y") for p in ["X", "Y", *purchases]],
                                     "one_id string, is_member boolean")
    empty = spark.createDataFrame([], "one_id string, stage string, stage_since date")

    stages1, transitions1 = build_lifecycle(profiles, facts, empty, rules, DAY1)
    expected1 = {
        "X": "prospect",               # known contact, no purchase, no card
        "Y": "member_no_purchase",
        "N": "new",
        "L": "loyal",
        "A": "active",                 # 2 orders < 4: not loyal
        "Dm": "dormant",               # 100 days: 90 < d <= 180 (the day-2 purchase is in the future)
        "Ch": "churned",               # 200 > 180
        "R": "reactivated",            # gap 290 > 90 before a purchase 10 <= 30 days ago
        "B90": "active",               # 90 is not more than 90
    }
    assert sorted(map(tuple, stages1.collect())) == sorted((k, DAY1, v, DAY1) for k, v in expected1.items())
    # first run: every one_id enters its first stage
    assert sorted(map(tuple, transitions1.collect())) == sorted((k, None, v, DAY1) for k, v in expected1.items())

    previous = latest_stages(stages1.union(stages1.withColumn("as_of_date", stages1["as_of_date"] + 1)), DAY2)
    stages2, transitions2 = build_lifecycle(profiles, facts, previous, rules, DAY2)
    changed = {"Dm": ("dormant", "reactivated"),   # bought again after being dormant
               "B90": ("active", "dormant")}       # crossed 90 days
    # unchanged stages keep their stage_since (day 1); changed ones start on day 2
    expected2 = sorted((k, DAY2, changed[k][1], DAY2) if k in changed else (k, DAY2, v, DAY1)
                       for k, v in expected1.items())
    assert sorted(map(tuple, stages2.collect())) == expected2
    assert sorted(map(tuple, transitions2.collect())) == sorted((k, f, t, DAY2) for k, (f, t) in changed.items())
    assert {row[2] for row in expected2} <= set(LIFECYCLE_STAGES)
