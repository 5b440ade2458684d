"""Job: train the churn and repurchase models on gold_order_facts (+ gold_profiles) before the run date and
register them (Delta `model_registry` + joblib artifacts). Weekly in Airflow.

    spark-submit jobs/train_models.py --date 2026-11-30
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings
    from cdp.models.config import ModelsConfig
    from cdp.models.features import CompactFacts, ProfileFacts

log = logging.getLogger(__name__)
TASKS = ("churn", "repurchase")


@dataclass
class ModelInputs:
    """What the models read, as of a run date: numeric frames on the driver keyed by int32 customer codes,
    and the code -> one_id map, persisted in Spark until `release()` (scores are joined back to one_ids)."""

    compact: CompactFacts
    profiles: ProfileFacts | None
    data_version: int | None
    customers: DataFrame

    def release(self) -> None:
        self.customers.unpersist()


def load_inputs(spark: SparkSession, settings: Settings, run_date: dt.date) -> ModelInputs:
    """Facts before run_date (gold_order_facts at its current Delta version) and gold_profiles, reduced in
    Spark; call `release()` on the result when done."""
    from cdp.lake import read_table, table_exists, table_version
    from cdp.models.spark_features import compact_facts_spark, customer_codes, profile_facts

    version = table_version(spark, settings, "gold_order_facts")
    facts = read_table(spark, settings, "gold_order_facts", version=version)
    customers = customer_codes(facts, before=run_date).persist()
    try:
        compact = compact_facts_spark(facts, customers, before=run_date)
        profiles = (profile_facts(read_table(spark, settings, "gold_profiles"), customers)
                    if table_exists(spark, settings, "gold_profiles") else None)
    except BaseException:
        customers.unpersist()
        raise
    log.info("model inputs: %d customer-days, %d customer-categories on the driver", len(compact.days),
             len(compact.categories))
    return ModelInputs(compact, profiles, version, customers)


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


def later_dates(compact: CompactFacts, run_date: dt.date, tasks: tuple[str, ...],
                cfg: ModelsConfig) -> set[dt.date]:
    """Training as-of dates of these tasks: the feature snapshots worth keeping in a shared cache."""
    from cdp.models.propensity import task_training_dates

    return {d for task in tasks
            for d in task_training_dates(compact, run_date, getattr(cfg, task).horizon_days, cfg.training)}


def run(spark: SparkSession, settings: Settings, run_date: dt.date) -> dict[str, Any]:
    from cdp.lake import table_exists
    from cdp.models.config import load_models_config
    from cdp.models.propensity import ModelError, retain_snapshots

    if not table_exists(spark, settings, "gold_order_facts"):
        return {"trained": [], "skipped": "gold_order_facts does not exist yet (run the profiles stage first)"}
    cfg = load_models_config(settings)
    inputs = load_inputs(spark, settings, run_date)
    summary: dict[str, Any] = {"run_date": run_date.isoformat(), "gold_order_facts_version": inputs.data_version,
                               "models": {}}
    snapshots: dict = {}
    try:
        for k, task in enumerate(TASKS):
            retain_snapshots(snapshots, later_dates(inputs.compact, run_date, TASKS[k:], cfg))
            try:
                summary["models"][task] = train_task(spark, settings, run_date, task, inputs.compact,
                                                     inputs.profiles, inputs.data_version, cfg, snapshots)
            except ModelError as exc:
                log.warning("not training %s: %s", task, exc)
                summary["models"][task] = {"skipped": str(exc)}
    finally:
        inputs.release()
    return summary


def main(argv=None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description="train and register the churn and repurchase models")


if __name__ == "__main__":
    sys.exit(main())
