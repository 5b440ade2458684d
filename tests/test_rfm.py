"""RFM: rules validation (no JVM), a hand-computed scoring case, and invariants on real data (UCI Online Retail)."""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml
from conftest import EXTERNAL_DATA
from profiles_helpers import changed_conf, d, dec

from cdp.config import default_conf_dir
from cdp.errors import ConfigError
from cdp.tags.profile_rules import RFM_SEGMENTS, RfmRules, load_rfm_rules

CONF = default_conf_dir()
UCI = EXTERNAL_DATA / "online_retail" / "online_retail_2010_2011_raw.parquet"


def test_shipped_grid_names_all_ten_segments_once_per_cell():
    rules = load_rfm_rules(CONF / "rfm.yaml")
    cells = [rules.segment_of(r, fm) for r in range(1, 6) for fm in range(1, 6)]
    assert len(cells) == 25 and set(cells) == set(RFM_SEGMENTS)
    assert rules.segment_of(5, 5) == "Champions" and rules.segment_of(1, 1) == "Lost"
    assert rules.segment_of(1, 5) == "Can't Lose Them" and rules.segment_of(5, 1) == "New"


@pytest.mark.parametrize("change, message", [
    ({"grid": {5: ["Champions"] * 5}}, "key grid: .*exactly one row per R score"),
    ({"window_days": 0}, "key window_days"),
])
def test_wrong_rfm_rules_name_file_and_key(tmp_path: Path, change, message):
    path = changed_conf(tmp_path, "rfm.yaml", change)
    with pytest.raises(ConfigError, match=message) as err:
        load_rfm_rules(path)
    assert str(path) in str(err.value)
    raw = yaml.safe_load((CONF / "rfm.yaml").read_text())
    raw["grid"][3][0] = "Sleepy"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"row 3: unknown segments \['Sleepy'\]"):
        load_rfm_rules(path)


def _facts(spark, rows):
    """gold_order_facts rows (one_id, order_id, paid_date, amount): one POS line per order, returns negative."""
    from cdp.tags.facts import FACT_SCHEMA

    return spark.createDataFrame(
        [(one_id, "pos", None, "b1", "S1", order, order, "1", dt.datetime.combine(day, dt.time(4)), day, "K1",
          "sku", "cat", dec("1.000"), dec(amount), dec(amount) < 0) for one_id, order, day, amount in rows],
        FACT_SCHEMA)


@pytest.mark.spark
def test_rfm_scores_and_segments_by_hand(spark):
    from cdp.tags.rfm import RFM_SCHEMA, build_rfm

    rules = RfmRules(window_days=90, grid=load_rfm_rules(CONF / "rfm.yaml").grid)
    as_of = d("2026-06-30")  # window (04-01, 06-30]: 04-02 is in, 04-01 is out
    facts = _facts(spark, [
        ("P1", "a1", d("2026-06-29"), "100.00"), ("P1", "a2", d("2026-06-20"), "100.00"),
        ("P1", "a3", d("2026-06-10"), "100.00"), ("P1", "a4", d("2026-05-01"), "100.00"),
        ("P2", "b1", d("2026-06-25"), "50.00"), ("P2", "b2", d("2026-06-01"), "50.00"),
        ("P3", "c1", d("2026-05-15"), "500.00"), ("P3", "c0", d("2026-04-01"), "1000.00"),  # c0 outside window
        ("P4", "d1", d("2026-04-02"), "30.00"), ("P4", "d2", d("2026-04-10"), "-10.00"),   # return nets spend
        ("P5", "e1", d("2026-06-28"), "20.00"), ("P5", "e2", d("2026-06-27"), "20.00"),
        ("P5", "e3", d("2026-06-26"), "20.00"),
        ("P6", "f1", d("2026-06-15"), "40.00"), ("P6", "f2", d("2026-06-15"), "-40.00"),   # all returned
        ("P7", "g1", d("2026-06-01"), "-25.00"),   # only a refund: no purchase, no row
        ("P8", "h1", d("2026-03-01"), "80.00"),    # bought before the window only: no row
        ("P9", "i1", d("2026-07-01"), "80.00"),    # after as_of: ignored
    ])
    got = build_rfm(facts, rules, as_of)
    assert got.schema.simpleString() == spark.createDataFrame([], RFM_SCHEMA).schema.simpleString()
    # 6 purchasers -> ntile(5) groups of 2,1,1,1,1.
    # R (worst first): P4 89d, P3 46d, P6 15d, P2 5d, P5 2d, P1 1d            -> 1,1,2,3,4,5
    # F: frequency 1 for P6, P4, P3 (ties broken by monetary 0 < 20 < 500), P2 2, P5 3, P1 4 -> 1,1,2,3,4,5
    # M: P6 0, P4 20, P5 60, P2 100, P1 400, P3 500                           -> 1,1,2,3,4,5
    # fm = ceil((f+m)/2); segment = grid[r][fm] of conf/rfm.yaml
    w = dict(as_of_date=as_of, window_days=90)
    expected = [
        dict(one_id="P1", recency_days=1, frequency=4, monetary=dec("400.00"), r_score=5, f_score=5, m_score=4,
             fm_score=5, rfm_segment="Champions"),
        dict(one_id="P2", recency_days=5, frequency=2, monetary=dec("100.00"), r_score=3, f_score=3, m_score=3,
             fm_score=3, rfm_segment="Need Attention"),
        dict(one_id="P3", recency_days=46, frequency=1, monetary=dec("500.00"), r_score=1, f_score=2, m_score=5,
             fm_score=4, rfm_segment="Can't Lose Them"),
        dict(one_id="P4", recency_days=89, frequency=1, monetary=dec("20.00"), r_score=1, f_score=1, m_score=1,
             fm_score=1, rfm_segment="Lost"),
        dict(one_id="P5", recency_days=2, frequency=3, monetary=dec("60.00"), r_score=4, f_score=4, m_score=2,
             fm_score=3, rfm_segment="Potential Loyalists"),
        dict(one_id="P6", recency_days=15, frequency=1, monetary=dec("0.00"), r_score=2, f_score=1, m_score=1,
             fm_score=1, rfm_segment="Hibernating"),
    ]
    assert [r.asDict() for r in got.orderBy("one_id").collect()] == [{**w, **e} for e in expected]


def uci_order_facts(spark, sample_modulo: int):
    """UCI Online Retail mapped to gold_order_facts: CustomerID -> one_id, InvoiceDate is UK local time,
    'C' invoices are cancellations (returns, negative quantity so negative amount). Customers with
    CustomerID % sample_modulo == 0 form the sample; lines without CustomerID are anonymous (dropped)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from cdp.tags.facts import FACT_SCHEMA, conform

    raw = spark.read.parquet(str(UCI)).where(F.col("CustomerID").isNotNull()
                                             & (F.col("CustomerID").cast("bigint") % sample_modulo == 0))
    local = F.col("InvoiceDate").cast("timestamp_ntz")
    line = Window.partitionBy("InvoiceNo").orderBy("StockCode", "Quantity", "UnitPrice")
    return conform(raw.select(
        F.col("CustomerID").cast("bigint").cast("string").alias("one_id"), F.lit("pos").alias("channel"),
        F.lit(None).alias("platform"), F.lit("uci").alias("brand_id"), F.col("Country").alias("store_id"),
        F.col("InvoiceNo").alias("order_id"), F.col("InvoiceNo").alias("source_record_id"),
        F.row_number().over(line).cast("string").alias("line_key"),
        F.to_utc_timestamp(local.cast("timestamp"), "Europe/London").alias("paid_at"),
        F.to_date(local).alias("paid_date"), F.col("StockCode").alias("sku_id"),
        F.col("Description").alias("sku_name"), F.lit(None).alias("category"), F.col("Quantity").alias("quantity"),
        F.round(F.col("Quantity") * F.col("UnitPrice"), 2).alias("amount"),
        F.col("InvoiceNo").startswith("C").alias("is_return")), FACT_SCHEMA)


@pytest.mark.spark
@pytest.mark.skipif(not UCI.exists(), reason="external UCI Online Retail file not present")
def test_rfm_and_lifecycle_invariants_on_uci_online_retail(spark):
    import pandas as pd
    from pyspark.sql import functions as F

    from cdp.tags.lifecycle import build_lifecycle
    from cdp.tags.profile_rules import load_lifecycle_rules
    from cdp.tags.rfm import build_rfm

    modulo, as_of = 10, d("2011-12-09")
    rules = load_rfm_rules(CONF / "rfm.yaml")  # 365-day window: (2010-12-09, 2011-12-09]
    facts = uci_order_facts(spark, modulo).cache()
    rfm = build_rfm(facts, rules, as_of).toPandas().set_index("one_id")

    # Oracle in pandas, independent of the Spark code: net amount and purchase invoices per customer in window.
    raw = pd.read_parquet(UCI)
    raw = raw[raw.CustomerID.notna()]
    raw = raw[raw.CustomerID.astype("int64") % modulo == 0].copy()
    raw["one_id"] = raw.CustomerID.astype("int64").astype(str)
    raw["day"] = raw.InvoiceDate.dt.date
    # cents rounded half up from the shortest decimal form, as Spark's round() does
    raw["amount"] = [float(Decimal(repr(q * p)).quantize(Decimal("0.01"), ROUND_HALF_UP))
                     for q, p in zip(raw.Quantity, raw.UnitPrice)]
    window = raw[(raw.day > as_of - dt.timedelta(days=365)) & (raw.day <= as_of)]
    invoices = window.groupby(["one_id", "InvoiceNo"]).amount.sum()
    purchases = invoices[invoices > 0].groupby("one_id").size()
    net = window.groupby("one_id").amount.sum().round(2)
    cancelled = window[window.InvoiceNo.str.startswith("C")].one_id.unique()
    assert len(purchases) > 300 and len(cancelled) > 50  # the sample is real: many customers cancel

    # every purchaser exactly once, with one of the ten segments
    assert sorted(rfm.index) == sorted(purchases.index)
    assert set(rfm.rfm_segment) <= set(RFM_SEGMENTS) and rfm.rfm_segment.notna().all()
    # frequency = purchase invoices; monetary = net of cancellations (compare as cents)
    assert (rfm.frequency == purchases.reindex(rfm.index)).all()
    assert ((rfm.monetary.astype(float) * 100).round().astype("int64")
            == (net.reindex(rfm.index) * 100).round().astype("int64")).all()
    # balanced quintiles: scores 1..5, group sizes differ by at most one
    for score in ("r_score", "f_score", "m_score"):
        sizes = rfm[score].value_counts()
        assert sorted(sizes.index) == [1, 2, 3, 4, 5] and sizes.max() - sizes.min() <= 1, (score, sizes)
    # monotone: a better score never has a worse measure (recency lower, frequency/monetary higher)
    for score, measure, sign in (("r_score", "recency_days", -1), ("f_score", "frequency", 1),
                                 ("m_score", "monetary", 1)):
        by_score = rfm.groupby(score)[measure].agg(["min", "max"]).astype(float) * sign
        assert all(by_score["max"].iloc[i] <= by_score["min"].iloc[i + 1] for i in range(4)), (score, by_score)

    # lifecycle on the same facts: one stage per customer, dormant/churned exactly by days since last purchase
    lifecycle_rules = load_lifecycle_rules(CONF / "lifecycle.yaml")
    customers = facts.select("one_id").distinct().withColumn("is_member", F.lit(False))
    stages, transitions = build_lifecycle(customers, facts, spark.createDataFrame([], "one_id string, stage string, stage_since date"),
                                          lifecycle_rules, as_of)
    stages = stages.toPandas().set_index("one_id")
    assert stages.index.is_unique and len(stages) == raw.one_id.nunique()
    all_invoices = raw.groupby(["one_id", "InvoiceNo"]).agg(amount=("amount", "sum"), day=("day", "min"))
    last = all_invoices[all_invoices.amount > 0].reset_index().groupby("one_id").day.max()
    days = last.map(lambda day: (as_of - day).days)
    assert set(stages.index[stages.stage == "churned"]) == set(days.index[days > 180])
    assert set(stages.index[stages.stage == "dormant"]) == set(days.index[(days > 90) & (days <= 180)])
    # customers with only cancellations never purchased: prospects (no membership in this data)
    assert set(stages.index[stages.stage == "prospect"]) == set(raw.one_id) - set(last.index)
    assert transitions.count() == len(stages)  # first run: every one_id enters its first stage
