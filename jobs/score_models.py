"""Job: daily model scores as of the run date -> gold_model_scores and gold_replenishment.

One row per (one_id, model, scored_date) for every customer with a purchase before the run date:
churn and repurchase (calibrated probabilities, graded by the bands in conf/models.yaml), clv (expected
12-month spend, quantile tier) and winback (dormant/churned customers only, value tier). Rows of the run date
are replaced, so running twice equals running once.

No model trained yet: churn/repurchase are trained on the fly and registered (same code as the weekly
training job) when the history allows it; when it does not (fewer than two training as-of dates with a closed
label window), those models are skipped and the summary says why -- clv, winback and replenishment need no
training and are always written.

    spark-submit jobs/score_models.py --date 2026-11-30
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings
    from cdp.train_models import ModelInputs

log = logging.getLogger(__name__)


def scores_frame(spark: SparkSession, scores: pd.DataFrame, customers: DataFrame, scored_date: dt.date) -> DataFrame:
    """pandas (customer code, model, score, grade, model_version) -> Spark gold_model_scores rows: the numeric
    frame travels through Arrow and the codes are joined back to one_ids in Spark (`customers` map)."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    table = pa.table({"customer": pa.array(scores["customer"].to_numpy(), pa.int32()),
                      "model": pa.array(scores["model"].to_numpy(), pa.string()),
                      "score": pa.array(scores["score"].to_numpy(float), pa.float64()),
                      "grade": pa.array(scores["grade"].to_numpy(), pa.string()),
                      "model_version": pa.array(scores["model_version"].to_numpy(), pa.string())})
    coded = spark.createDataFrame(table, "customer int, model string, score double, grade string, model_version string")
    return (coded.join(customers, "customer")
            .select("one_id", "model", "score", "grade", "model_version", F.lit(scored_date).alias("scored_date")))


def score(spark: SparkSession, settings: Settings, run_date: dt.date,
          inputs: ModelInputs) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Compute all scores (pandas, keyed by customer code) and the summary; no writes except on-the-fly model
    registration. Training on the fly shares the feature snapshots of both tasks (one build per as-of date)."""
    import pandas as pd

    from cdp.models.config import grade, load_models_config
    from cdp.models.propensity import ModelError, retain_snapshots, snapshot
    from cdp.models.registry import latest_model
    from cdp.models.value import clv_scores, winback_scores
    from cdp.train_models import TASKS, later_dates, train_task

    cfg = load_models_config(settings)
    compact, profiles, version = inputs.compact, inputs.profiles, inputs.data_version
    features = snapshot(compact, run_date, profiles)
    summary: dict[str, Any] = {"scored_date": run_date.isoformat(), "customers": int(len(features)), "models": {}}
    parts = []
    snapshots: dict = {}
    for k, task in enumerate(TASKS):
        retain_snapshots(snapshots, later_dates(compact, run_date, TASKS[k:], cfg))
        found = latest_model(spark, settings, task, run_date)
        if found is None:
            try:
                train_task(spark, settings, run_date, task, compact, profiles, version, cfg, snapshots)
                found = latest_model(spark, settings, task, run_date)
                summary["models"][task] = {"trained_on_the_fly": True}
            except ModelError as exc:
                summary["models"][task] = {"skipped": str(exc)}
                continue
        row, model = found
        p = model.predict(features) if len(features) else np.zeros(0)
        parts.append(pd.DataFrame({"customer": features.index.to_numpy(), "model": task, "score": p,
                                   "grade": grade(p, getattr(cfg, task).grades), "model_version": row["model_version"]}))
        summary["models"].setdefault(task, {})["model_version"] = row["model_version"]
    snapshots.clear()
    if len(features) >= 3:
        value_version = f"bgnbd-gg-{run_date:%Y%m%d}-d{version}"
        try:
            parts.append(clv_scores(features, cfg).rename_axis("customer").reset_index()
                         .assign(model="clv", model_version=value_version))
        except ValueError as exc:  # Gamma-Gamma needs a few repeat customers
            summary["models"]["clv"] = {"skipped": str(exc)}
        parts.append(winback_scores(features, cfg).rename_axis("customer").reset_index()
                     .assign(model="winback", model_version=value_version))
    scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["customer", "model", "score", "grade", "model_version"])
    for name, group in scores.groupby("model"):
        summary["models"].setdefault(name, {}).update(rows=int(len(group)),
                                                       grades=group["grade"].value_counts().sort_index().to_dict())
    return scores, summary


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from cdp.lake import overwrite_table, read_table, table_exists
    from cdp.models.config import load_models_config
    from cdp.models.replenishment import replenishment_dates
    from cdp.train_models import load_inputs

    if not table_exists(spark, settings, "gold_order_facts"):
        return {"skipped": "gold_order_facts does not exist yet (run the profiles stage first)"}
    inputs = load_inputs(spark, settings, run_date)
    try:
        scores, summary = score(spark, settings, run_date, inputs)
        if scores.duplicated(["customer", "model"]).any():
            raise AssertionError("gold_model_scores key (one_id, model, scored_date) is not unique")
        where = f"scored_date = DATE'{run_date.isoformat()}'"
        overwrite_table(scores_frame(spark, scores, inputs.customers, run_date), settings, "gold_model_scores",
                        partition_by=("scored_date",), replace_where=where)
    finally:
        inputs.release()
    del scores
    cfg = load_models_config(settings)
    facts = read_table(spark, settings, "gold_order_facts")
    reminders = replenishment_dates(facts, run_date, cfg.replenishment)
    overwrite_table(reminders, settings, "gold_replenishment", partition_by=("scored_date",), replace_where=where)
    summary["replenishment_rows"] = read_table(spark, settings, "gold_replenishment").where(
        F.col("scored_date") == F.lit(run_date)).count()
    return summary


def main(argv=None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description="score customers with the registered models")


if __name__ == "__main__":
    sys.exit(main())
