"""Job: train the churn and repurchase models on gold_order_facts (+ gold_profiles) before the run date and
register them (Delta `model_registry` + joblib artifacts). Weekly in Airflow.

    spark-submit jobs/train_models.py --date 2026-11-30
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings
    from cdp.models.config import ModelsConfig
    from cdp.models.features import CompactFacts

log = logging.getLogger(__name__)
TASKS = ("churn", "repurchase")


def load_inputs(spark: SparkSession, settings: Settings, run_date: dt.date):
    """(compact facts before run_date, profile frame or None, Delta version of gold_order_facts)."""
    from cdp.lake import read_table, table_exists, table_version
    from cdp.models.spark_features import compact_facts_spark, profile_frame

    version = table_version(spark, settings, "gold_order_facts")
    facts = read_table(spark, settings, "gold_order_facts", version=version)
    compact = compact_facts_spark(facts, before=run_date)
    profiles = (profile_frame(read_table(spark, settings, "gold_profiles"))
                if table_exists(spark, settings, "gold_profiles") else None)
    return compact, profiles, version


def train_task(spark: SparkSession, settings: Settings, run_date: dt.date, task: str, compact: CompactFacts,
               profiles, data_version: int | None, cfg: ModelsConfig, snapshots: dict | None = None) -> dict[str, Any]:
    """Fit one task and register it; returns the registry row (raises ModelError when history is too short)."""
    from cdp.models.propensity import fit_propensity
    from cdp.models.registry import register_model

    task_cfg = getattr(cfg, task)
    model, metrics = fit_propensity(compact, run_date, task, task_cfg.horizon_days, cfg.training, cfg.seed,
                                    profiles, snapshots=snapshots)
    params = {"horizon_days": task_cfg.horizon_days, "grades": task_cfg.grades, **cfg.training.model_dump(),
              "training_dates": model.training_dates}
    row = register_model(spark, settings, task, model, run_date, data_version, params, cfg.seed, metrics,
                         model.feature_columns)
    return {"model_version": row["model_version"], "metrics": metrics}


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from cdp.lake import table_exists
    from cdp.models.config import load_models_config
    from cdp.models.propensity import ModelError

    if not table_exists(spark, settings, "gold_order_facts"):
        return {"trained": [], "skipped": "gold_order_facts does not exist yet (run the profiles stage first)"}
    cfg = load_models_config(settings)
    compact, profiles, version = load_inputs(spark, settings, run_date)
    summary: dict[str, Any] = {"run_date": run_date.isoformat(), "gold_order_facts_version": version, "models": {}}
    snapshots: dict = {}
    for task in TASKS:
        try:
            summary["models"][task] = train_task(spark, settings, run_date, task, compact, profiles, version, cfg,
                                                 snapshots)
        except ModelError as exc:
            log.warning("not training %s: %s", task, exc)
            summary["models"][task] = {"skipped": str(exc)}
    return summary


def main(argv=None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description="train and register the churn and repurchase models")


if __name__ == "__main__":
    sys.exit(main())
