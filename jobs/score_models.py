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

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)


def scores_frame(spark: SparkSession, scores: pd.DataFrame, scored_date: dt.date) -> DataFrame:
    """pandas (one_id, model, score, grade, model_version) -> Spark gold_model_scores rows."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("one_id", T.StringType(), False),
                           T.StructField("model", T.StringType(), False),
                           T.StructField("score", T.DoubleType(), True),
                           T.StructField("grade", T.StringType(), True),
                           T.StructField("model_version", T.StringType(), False)])
    pdf = scores[["one_id", "model", "score", "grade", "model_version"]].astype(
        {"one_id": str, "model": str, "score": float, "grade": str, "model_version": str})
    return spark.createDataFrame(pdf, schema).withColumn("scored_date", F.lit(scored_date))


def score(spark: SparkSession, settings: Settings, run_date: dt.date) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Compute all scores (pandas) and the summary; no writes except on-the-fly model registration."""
    import pandas as pd

    from cdp.models.config import grade, load_models_config
    from cdp.models.propensity import ModelError, snapshot
    from cdp.models.registry import latest_model
    from cdp.models.value import clv_scores, winback_scores
    from cdp.train_models import TASKS, load_inputs, train_task

    cfg = load_models_config(settings)
    compact, profiles, version = load_inputs(spark, settings, run_date)
    features = snapshot(compact, run_date, profiles)
    summary: dict[str, Any] = {"scored_date": run_date.isoformat(), "customers": int(len(features)), "models": {}}
    parts = []
    for task in TASKS:
        found = latest_model(spark, settings, task, run_date)
        if found is None:
            try:
                train_task(spark, settings, run_date, task, compact, profiles, version, cfg)
                found = latest_model(spark, settings, task, run_date)
                summary["models"][task] = {"trained_on_the_fly": True}
            except ModelError as exc:
                summary["models"][task] = {"skipped": str(exc)}
                continue
        row, model = found
        p = model.predict(features) if len(features) else []
        parts.append(pd.DataFrame({"one_id": features.index, "model": task, "score": p,
                                   "grade": grade(p, getattr(cfg, task).grades), "model_version": row["model_version"]}))
        summary["models"].setdefault(task, {})["model_version"] = row["model_version"]
    if len(features) >= 3:
        value_version = f"bgnbd-gg-{run_date:%Y%m%d}-d{version}"
        try:
            parts.append(clv_scores(features, cfg).assign(model="clv", model_version=value_version))
        except ValueError as exc:  # Gamma-Gamma needs a few repeat customers
            summary["models"]["clv"] = {"skipped": str(exc)}
        parts.append(winback_scores(features, cfg).assign(model="winback", model_version=value_version))
    scores = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["one_id", "model", "score", "grade", "model_version"])
    for name, group in scores.groupby("model"):
        summary["models"].setdefault(name, {}).update(rows=int(len(group)),
                                                       grades=group["grade"].value_counts().sort_index().to_dict())
    return scores, summary


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from cdp.lake import overwrite_table, read_table, table_exists
    from cdp.models.config import load_models_config
    from cdp.models.replenishment import replenishment_dates

    if not table_exists(spark, settings, "gold_order_facts"):
        return {"skipped": "gold_order_facts does not exist yet (run the profiles stage first)"}
    scores, summary = score(spark, settings, run_date)
    if scores.duplicated(["one_id", "model"]).any():
        raise AssertionError("gold_model_scores key (one_id, model, scored_date) is not unique")
    where = f"scored_date = DATE'{run_date.isoformat()}'"
    overwrite_table(scores_frame(spark, scores, run_date), settings, "gold_model_scores",
                    partition_by=("scored_date",), replace_where=where)
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
