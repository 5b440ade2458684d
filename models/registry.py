"""Model registry: a Delta table `model_registry` (one row per (model, model_version)) plus the fitted object
stored with joblib at `<lake>/models/<model>/<model_version>/model.joblib`.

A version is derived from the training date, the Delta version of gold_order_facts, the parameters and the
seed, so retraining on the same data with the same seed writes the same version (and, being deterministic,
the same metrics) -- the registry row is upserted, never duplicated. Artifacts need a file system path
(local disk or a mounted volume).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

REGISTRY = "model_registry"
REGISTRY_COLUMNS = ("model", "model_version", "trained_date", "training_table", "training_data_version", "seed",
                    "params", "metrics", "feature_columns", "artifact_path")


def model_version(model: str, trained_date: dt.date, data_version: int | None, params: dict, seed: int) -> str:
    """`<model>-<yyyymmdd>-d<delta version>-<8 hex of params+seed>`; equal inputs give equal versions."""
    digest = hashlib.sha256(json.dumps({"params": params, "seed": seed}, sort_keys=True, default=str).encode())
    return f"{model}-{trained_date:%Y%m%d}-d{data_version if data_version is not None else 'na'}-{digest.hexdigest()[:8]}"


def artifact_path(settings: Settings, model: str, version: str) -> Path:
    return Path(settings.lake_dir) / "models" / model / version / "model.joblib"


def register_model(spark: SparkSession, settings: Settings, model: str, fitted: Any, trained_date: dt.date,
                   data_version: int | None, params: dict, seed: int, metrics: dict,
                   feature_columns: list[str]) -> dict[str, Any]:
    """Store the artifact and upsert its registry row; returns the row."""
    from pyspark.sql import types as T

    from cdp.lake import merge_table

    version = model_version(model, trained_date, data_version, params, seed)
    path = artifact_path(settings, model, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(fitted, path)
    row = {"model": model, "model_version": version, "trained_date": trained_date,
           "training_table": "gold_order_facts", "training_data_version": data_version, "seed": seed,
           "params": json.dumps(params, sort_keys=True, default=str),
           "metrics": json.dumps(metrics, sort_keys=True, default=float),
           "feature_columns": list(feature_columns), "artifact_path": str(path)}
    schema = T.StructType([
        T.StructField("model", T.StringType(), False), T.StructField("model_version", T.StringType(), False),
        T.StructField("trained_date", T.DateType(), False), T.StructField("training_table", T.StringType()),
        T.StructField("training_data_version", T.LongType()), T.StructField("seed", T.LongType()),
        T.StructField("params", T.StringType()), T.StructField("metrics", T.StringType()),
        T.StructField("feature_columns", T.ArrayType(T.StringType())), T.StructField("artifact_path", T.StringType())])
    df = spark.createDataFrame([tuple(row[c] for c in REGISTRY_COLUMNS)], schema)
    merge_table(spark, df, settings, REGISTRY, keys=("model", "model_version"))
    log.info("registered %s", version)
    return row


def latest_model(spark: SparkSession, settings: Settings, model: str,
                 as_of: dt.date | None = None) -> tuple[dict[str, Any], Any] | None:
    """The newest registered version of `model` trained on or before as_of, with its loaded artifact."""
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    if not table_exists(spark, settings, REGISTRY):
        return None
    rows = read_table(spark, settings, REGISTRY).where(F.col("model") == model)
    if as_of is not None:
        rows = rows.where(F.col("trained_date") <= F.lit(as_of))
    top = rows.orderBy(F.col("trained_date").desc(), F.col("model_version").desc()).limit(1).collect()
    if not top:
        return None
    row = top[0].asDict()
    path = Path(row["artifact_path"])
    if not path.exists():
        log.warning("registered artifact %s is missing", path)
        return None
    return row, joblib.load(path)
