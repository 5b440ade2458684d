"""The platform path of the models on tiny inline gold tables (real Spark + Delta): Spark compaction equals
the pandas twin, daily scoring trains on the fly when no model is registered, writes are idempotent, retraining
with the same data and seed reproduces the registry row, and replenishment dates follow the cycles."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd

RUN_DATE = dt.date(2025, 1, 1)
FACTS_SCHEMA = ("one_id string, channel string, platform string, brand_id string, store_id string, order_id string, "
                "source_record_id string, line_key string, paid_at timestamp, paid_date date, sku_id string, "
                "sku_name string, category string, quantity decimal(12,3), amount decimal(18,2), is_return boolean")
PROFILES_SCHEMA = ("one_id string, is_member boolean, is_paid_member boolean, has_app boolean, is_wecom_added boolean, "
                   "has_marketing_consent boolean, memberships array<struct<brand_id:string, member_card_no:string, "
                   "level:string, is_paid_member:boolean, marketing_consent:boolean, registered_at:timestamp>>")


def _fact_rows():
    """30 tea buyers with a 30-day rhythm who start and stop at different days (so some churn before the
    training label windows and some do not), one 'gift' purchase each (a category nobody repeats), a solo
    customer who bought tea once, one return, and one purchase AFTER the run date (must not matter)."""
    rows = []
    start = dt.date(2024, 1, 1)

    def line(one_id, day, category, amount, channel="pos", is_return=False):
        paid = start + dt.timedelta(days=day)
        n = len(rows)
        rows.append((one_id, channel, None, "main", "s1", f"o{n}", f"o{n}", "1",
                     dt.datetime.combine(paid, dt.time(2, 0)), paid, "sku", "name", category,
                     Decimal("1.000"), Decimal(f"{amount:.2f}"), is_return))

    for i in range(30):
        first, last = i * 3, 150 + i * 8   # last purchase between day 150 and 382
        for day in range(first, last, 30):
            line(f"c{i:02d}", day, "tea", 40 + i, "miniprogram" if i % 3 == 0 else "pos")
        line(f"c{i:02d}", first + 1, "gift", 100)
    line("solo", 300, "tea", 55)
    line("c01", 200, "tea", -20, is_return=True)
    line("c02", 400, "tea", 999)                       # 2025-02-04: after the run date
    return rows


def test_models_platform_path(spark, settings):
    from pyspark.sql import functions as F

    from cdp import score_models, train_models
    from cdp.lake import overwrite_table, read_table
    from cdp.models.features import compact_facts
    from cdp.models.spark_features import compact_facts_spark, customer_codes, profile_facts

    facts = spark.createDataFrame(_fact_rows(), FACTS_SCHEMA)
    overwrite_table(facts, settings, "gold_order_facts")
    profiles = spark.createDataFrame([
        ("c00", True, False, True, True, True, [("main", "m0", "gold", False, True, dt.datetime(2023, 5, 1))]),
        ("c01", False, False, False, False, False, []),
        ("solo", True, True, False, True, False, [("main", "m1", "vip", True, False, dt.datetime(2024, 12, 1))]),
    ], PROFILES_SCHEMA)
    overwrite_table(profiles, settings, "gold_profiles")

    # 1. the Spark compaction equals the pandas twin (same rows, types and values)
    pdf = pd.DataFrame(_fact_rows(), columns=[c.split()[0] for c in FACTS_SCHEMA.split(", ")])
    pdf["amount"] = pdf["amount"].astype(float)
    expected = compact_facts(pdf.loc[pdf["paid_date"] < RUN_DATE])
    gold = read_table(spark, settings, "gold_order_facts")
    customers = customer_codes(gold, before=RUN_DATE)
    got = compact_facts_spark(gold, customers, before=RUN_DATE)
    pd.testing.assert_frame_equal(got.days, expected.days, check_dtype=False)
    pd.testing.assert_frame_equal(got.categories, expected.categories, check_dtype=False)
    # ...with the same customer codes: the Spark map (kept in Spark) numbers the one_ids like the pandas twin
    code_map = {r["customer"]: r["one_id"] for r in customers.collect()}
    assert [code_map[i] for i in range(len(code_map))] == list(expected.customer_ids)
    assert got.customer_ids is None and got.days["customer"].dtype == "int32"
    # profiles reach the driver as numbers per code: c00 has one card (2023-05-01), solo one (2024-12-01)
    prof = profile_facts(read_table(spark, settings, "gold_profiles"), customers)
    codes = {v: k for k, v in code_map.items()}
    assert prof.flags.loc[codes["solo"]].to_dict() == {"is_member": 1.0, "is_paid_member": 1.0, "has_app": 0.0,
                                                      "is_wecom_added": 1.0, "has_marketing_consent": 0.0}
    assert sorted(map(tuple, prof.cards.itertuples(index=False))) == sorted(
        [(codes["c00"], pd.Timestamp("2023-05-01")), (codes["solo"], pd.Timestamp("2024-12-01"))])

    # 2. scoring with an empty registry trains churn + repurchase on the fly and writes every model
    summary = score_models.run(spark, settings, RUN_DATE)
    assert summary["models"]["churn"]["trained_on_the_fly"] and summary["models"]["repurchase"]["trained_on_the_fly"]
    scores = read_table(spark, settings, "gold_model_scores")
    assert scores.columns == ["one_id", "model", "score", "grade", "model_version", "scored_date"]
    counts = {r["model"]: r["count"] for r in scores.groupBy("model").count().collect()}
    # 31 purchasers; win-back: last purchase >= 90 days before 2025-01-01 (c00..c25 stop by day 350 -> 26 + none)
    dormant = sum(1 for i in range(30) if (RUN_DATE - dt.date(2024, 1, 1)).days - max(range(i * 3, 150 + i * 8, 30)) >= 90)
    assert counts == {"churn": 31, "repurchase": 31, "clv": 31, "winback": dormant}
    assert scores.groupBy("one_id", "model", "scored_date").count().where("count > 1").count() == 0
    grades = {(r["model"], r["grade"]) for r in scores.select("model", "grade").distinct().collect()}
    assert {g for m, g in grades} <= {"high", "medium", "low"}
    assert scores.where((F.col("score") < 0) | F.col("score").isNull() | F.isnan("score")).count() == 0
    assert scores.where((F.col("model").isin("churn", "repurchase")) & (F.col("score") > 1)).count() == 0

    # 3. running again replaces the run date's rows: same table content
    before = sorted(tuple(r) for r in scores.collect())
    score_models.run(spark, settings, RUN_DATE)
    assert sorted(tuple(r) for r in read_table(spark, settings, "gold_model_scores").collect()) == before

    # 4. retraining on the same data and seed reproduces the registry row (same version, same metrics)
    first = train_models.run(spark, settings, RUN_DATE)
    second = train_models.run(spark, settings, RUN_DATE)
    assert first["models"] == second["models"]
    registry = read_table(spark, settings, "model_registry")
    assert registry.count() == 2  # churn + repurchase: the on-the-fly version was the same and got upserted
    churn_version = [r for r in scores.where("model = 'churn'").select("model_version").distinct().collect()]
    assert [r[0] for r in churn_version] == [first["models"]["churn"]["model_version"]]
    row = registry.where("model = 'churn'").first()
    assert (row["training_data_version"], row["seed"], row["trained_date"]) == (0, 20240601, RUN_DATE)

    # 5. replenishment: tea is a repeat category (30 repeaters, median gap 30 days); gift is not
    reminders = {(r["one_id"], r["category"]): r for r in read_table(spark, settings, "gold_replenishment").collect()}
    assert {c for _, c in reminders} == {"tea"}
    solo = reminders[("solo", "tea")]   # one purchase: the category cycle, (0 + 2*30) / (0 + 2) = 30 days
    assert (solo["last_purchase_date"], solo["expected_next_date"], solo["cycle_days"], solo["scored_date"]) == (
        dt.date(2024, 10, 27), dt.date(2024, 11, 26), 30.0, RUN_DATE)
    c29 = reminders[("c29", "tea")]     # own gaps all 30 days: cycle 30; last purchase on day 87 + 30*9 = 357
    assert (c29["last_purchase_date"], c29["expected_next_date"], c29["cycle_days"]) == (
        dt.date(2024, 12, 23), dt.date(2025, 1, 22), 30.0)

    # 6. no gold facts at all: scoring and training skip with a clear summary
    empty = settings.model_copy(update={"lake_dir": settings.lake_dir + "_empty"})
    assert "does not exist yet" in score_models.run(spark, empty, RUN_DATE)["skipped"]
    assert "does not exist yet" in train_models.run(spark, empty, RUN_DATE)["skipped"]
