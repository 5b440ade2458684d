"""Shared fixtures: one session-scoped Spark (real Spark + Delta, tuned for tiny data), settings on tmp lakes."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _external_data() -> Path:
    """The shared real public data (`shared/data/external`, beside the checkout): the nearest one up the tree, so a
    clone one folder deeper (a CI workspace) finds it too; `CDP_EXTERNAL_DATA` names it explicitly."""
    if os.environ.get("CDP_EXTERNAL_DATA"):
        return Path(os.environ["CDP_EXTERNAL_DATA"])
    for folder in REPO.parents:
        if (folder / "shared" / "data" / "external").is_dir():
            return folder / "shared" / "data" / "external"
    return REPO.parent / "shared" / "data" / "external"


EXTERNAL_DATA = _external_data()

# A fixed test secret: identifier hashes in tests are reproducible; production reads it from the environment.
os.environ.setdefault("CDP_HMAC_SECRET", "test-secret-not-for-production")

# py4j logs at INFO from __del__ at interpreter exit, after pytest closed its streams
logging.getLogger("py4j").setLevel(logging.WARNING)

# Airflow reads its configuration at import time: point it at a private home and our dags/ before any import.
# One home (and SQLite metadata database) per pytest-xdist worker: two workers never share the file. Set, not
# defaulted: workers inherit the environment of the controller, which has already imported this file.
AIRFLOW_HOME = REPO / ".airflow" / f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{AIRFLOW_HOME}/airflow.db"
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")


# Spark for test-sized data, given to every session the tests start through `CDP_SPARK_CONF` (cdp.config): the
# session fixture below, the stages a DAG's tasks run in-process (they build the session from the settings
# again, and a runtime SQL conf they pass would replace the test's for the rest of the worker) and the `cdp`
# and `airflow` subprocesses some tests launch. At these sizes compiling generated code (Janino) is most of the
# CPU time, so expressions are interpreted (Spark's own NO_CODEGEN test mode): one identity test took 62 s
# instead of 101 s. Results do not depend on it; production keeps Spark's default (code generation).
TEST_SPARK_CONF = {
    "spark.master": "local[2]",
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "2g",
    "spark.sql.adaptive.enabled": "false",
    "spark.databricks.delta.snapshotPartitions": "1",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
os.environ["CDP_SPARK_CONF"] = ",".join(f"{key}={value}" for key, value in TEST_SPARK_CONF.items())

# The modules whose tests use the session's `daily_world` (a generated landing after one dag.test() run).
WORLD_MODULES = {"tests/test_crash_recovery.py", "tests/test_dags.py", "tests/test_erasure.py", "tests/test_privacy.py",
                 "tests/test_table_contract.py"}
# Modules whose tests share a module-scoped fixture (a costly one, or a lake the tests advance in file order, as
# test_tags_spark's day 1 -> day 2 -> retention): each module goes to one worker as one unit, its tests in order.
SHARED_FIXTURE_MODULES = {"tests/test_identity_rebuild.py", "tests/test_tags_spark.py"}


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs `pytest -n 2`: the WORLD_MODULES go to one worker as one unit, so the world is built once;
    each SHARED_FIXTURE_MODULES module is a unit too; every other test is a unit of its own and goes to whichever
    worker is free. (xdist's own `loadgroup` marks do not work with pytest 9, whose node ids xdist can no longer
    rename.)"""
    from xdist.scheduler import LoadScopeScheduling

    class WorldOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in WORLD_MODULES:
                return "daily_world"
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    return WorldOnOneWorker(config, log)


@pytest.fixture(scope="session")
def spark():
    from cdp.config import load_settings
    from cdp.spark import build_spark

    settings = load_settings("local")   # the profile + TEST_SPARK_CONF, through CDP_SPARK_CONF
    spark = build_spark(settings.spark)
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


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database (SQLite) for dag.test(); created once per test session."""
    import subprocess
    import sys

    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return AIRFLOW_HOME


class World:
    """A generated landing folder after one daily run through Airflow's own dag.test()."""

    def __init__(self, landing: Path, lake: Path, run_date: str, dag_run, settings, log_file: Path):
        self.landing, self.lake, self.run_date, self.dag_run, self.settings, self.log_file = (
            landing, lake, run_date, dag_run, settings, log_file)

    @property
    def truth(self) -> Path:
        return self.landing / "_truth"


@pytest.fixture(scope="session")
def daily_world(spark, airflow_db, tmp_path_factory):
    """Generate a small noisy world, then run the `cdp_daily` DAG once with dag.test() (shared by e2e tests).

    Every log record of the run (our loggers, Airflow's, Great Expectations') is also written to a file so the
    privacy test can scan it for raw phone numbers.
    """
    import datetime as dt

    from airflow.dag_processing.dagbag import DagBag

    from cdp.config import load_settings
    from cdp.generator import generate

    root = tmp_path_factory.mktemp("world")
    landing, lake, log_file = root / "landing", root / "lake", root / "run.log"
    generate(landing, customers=150, days=60, seed=11)
    run_date = (landing / "_end_date").read_text().strip()

    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    previous_level = root_logger.level
    root_logger.setLevel(logging.INFO)
    try:
        dag = DagBag(dag_folder=str(REPO / "dags")).dags["cdp_daily"]
        dag_run = dag.test(logical_date=dt.datetime.fromisoformat(run_date).replace(tzinfo=dt.timezone.utc),
                           run_conf={"landing": str(landing), "lake": str(lake), "date": run_date})
    finally:
        root_logger.removeHandler(handler)
        root_logger.setLevel(previous_level)
        handler.close()
    settings = load_settings("local", overrides={"landing_dir": str(landing), "lake_dir": str(lake)})
    return World(landing, lake, run_date, dag_run, settings, log_file)
