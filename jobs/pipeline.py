"""The daily pipeline as an ordered list of stages; `cdp run`, the Airflow DAG and spark-submit share it.

Each stage is a job module exposing `run(spark, settings, run_date) -> dict` (a small summary, no personal data).
"""
from __future__ import annotations

import datetime as dt
import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # a job module with run(spark, settings, run_date)
    doc: str

    def load(self) -> Callable[..., dict[str, Any]]:
        return importlib.import_module(self.module).run


# Order matters: each stage reads what the ones before it wrote.
STAGES: tuple[Stage, ...] = (
    Stage("ingest", "cdp.ingest", "landing -> bronze -> silver, validated, with quarantine"),
    Stage("identity", "cdp.resolve_identity", "identifier graph + guardrails -> stable One-IDs, history, record map, silver one_id"),
    Stage("profiles", "cdp.build_profiles", "gold order facts, profiles (survivorship), RFM, lifecycle stages"),
    Stage("models", "cdp.score_models", "churn/repurchase/CLV/win-back scores and replenishment dates (trains if no model yet)"),
    Stage("tags", "cdp.build_tags", "segment base table + declared tags (long, wide, enter/leave history)"),
    Stage("segments", "cdp.run_segments", "declared segments -> gold_segment_members for the run date"),
)


def available_stages() -> tuple[Stage, ...]:
    return STAGES


def run_pipeline(spark: SparkSession, settings: Settings, run_date: dt.date,
                 stages: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
    """Run the stages in order for `run_date`; returns each stage's summary. An unknown stage name is an error
    before anything runs (a typo must not look like a successful run of nothing)."""
    from cdp.errors import ConfigError
    from cdp.locking import lake_lock

    unknown = sorted(set(stages or ()) - set(stage_names()))
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; stages are {stage_names()}")
    summaries: dict[str, dict[str, Any]] = {}
    with lake_lock(settings.lake_dir):
        for stage in STAGES:
            if stages and stage.name not in stages:
                continue
            log.info("stage %s: %s", stage.name, stage.doc)
            summaries[stage.name] = stage.load()(spark, settings, run_date) or {}
    return summaries


def stage_names() -> tuple[str, ...]:
    return tuple(stage.name for stage in STAGES)


def run_stage(stage_name: str, run_date: dt.date | str, profile: str | None = None,
              landing_dir: str | None = None, lake_dir: str | None = None) -> dict[str, Any]:
    """Run one stage as its own entry point (an Airflow task, or `cdp run --stages NAME`)."""
    stage = next((s for s in STAGES if s.name == stage_name), None)
    if stage is None:
        from cdp.errors import ConfigError

        raise ConfigError(f"unknown stage {stage_name!r}; stages are {stage_names()}")
    return run_job(stage.module, run_date, profile, landing_dir, lake_dir)


def run_job(module: str, run_date: dt.date | str, profile: str | None = None,
            landing_dir: str | None = None, lake_dir: str | None = None, **job_args: Any) -> dict[str, Any]:
    """Run the job module `module` (its `run(spark, settings, run_date, **job_args)`) under the lake lock.

    Builds the settings and the SparkSession (reused if the process already has one).
    """
    from cdp.config import load_settings
    from cdp.locking import lake_lock
    from cdp.spark import build_spark

    if isinstance(run_date, str):
        run_date = dt.date.fromisoformat(run_date[:10])
    settings = load_settings(profile, overrides={"landing_dir": landing_dir, "lake_dir": lake_dir})
    spark = build_spark(settings.spark)
    with lake_lock(settings.lake_dir):
        return importlib.import_module(module).run(spark, settings, run_date, **job_args) or {}
