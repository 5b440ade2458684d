"""Shared fixtures: one session-scoped Spark (real Spark + Delta, tuned for tiny data), settings on tmp lakes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXTERNAL_DATA = REPO.parent / "shared" / "data" / "external"

# A fixed test secret: identifier hashes in tests are reproducible; production reads it from the environment.
os.environ.setdefault("CDP_HMAC_SECRET", "test-secret-not-for-production")


@pytest.fixture(scope="session")
def spark():
    from cdp.config import load_settings
    from cdp.spark import build_spark

    settings = load_settings("local")
    spark = build_spark(settings.spark, extra_conf={
        "spark.master": "local[2]",
        "spark.sql.shuffle.partitions": "1",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.driver.memory": "2g",
        "spark.sql.adaptive.enabled": "false",
        "spark.databricks.delta.snapshotPartitions": "1",
    })
    yield spark
    spark.stop()


@pytest.fixture()
def make_settings(tmp_path):
    """Settings pointing at a fresh landing and lake folder under tmp_path."""
    from cdp.config import load_settings

    def _make(**overrides):
        values = {"landing_dir": str(tmp_path / "landing"), "lake_dir": str(tmp_path / "lake")}
        values.update(overrides)
        return load_settings("local", overrides=values)

    return _make


@pytest.fixture()
def settings(make_settings):
    return make_settings()
