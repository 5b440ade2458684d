"""The Airflow DAGs: they import with zero errors, and the daily DAG runs end to end with dag.test()."""
from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parent.parent / "dags"


@pytest.mark.airflow
def test_dagbag_imports_every_dag_without_errors():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert {"cdp_daily", "cdp_models_weekly", "cdp_maintenance_weekly"} <= set(bag.dag_ids)
    daily = bag.dags["cdp_daily"]
    from cdp.pipeline import stage_names

    # one task per pipeline stage, chained in pipeline order
    assert [t.task_id for t in daily.topological_sort()] == list(stage_names())
    for task in daily.tasks:
        assert task.retries >= 1


@pytest.mark.airflow
@pytest.mark.spark
def test_daily_dag_runs_every_stage_end_to_end(daily_world, spark):
    """dag.test() of cdp_daily on a generated landing folder: every task succeeds and each stage wrote its tables."""
    from cdp.lake import read_table, table_exists
    from cdp.pipeline import stage_names

    run = daily_world.dag_run
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {name: "success" for name in stage_names()}
    assert run.state == "success"
    settings = daily_world.settings
    for table in ("silver_pos_lines", "silver_crm_members", "ingest_file_ledger", "gold_profiles", "gold_order_facts"):
        assert table_exists(spark, settings, table), table
    summary = read_table(spark, settings, "ingest_run_summary")
    assert summary.count() > 0
    assert summary.filter("NOT is_balanced").count() == 0  # landed = accepted + quarantined for every source
    assert read_table(spark, settings, "gold_profiles").count() > 50


def test_lookalike_expands_a_segment_of_the_daily_run(daily_world, spark, tmp_path):
    """`cdp models lookalike --segment` on the lake the DAG built: seeds are translated to the models' integer
    customer codes and the expansion back to One-IDs (in Spark); the file holds top-K non-seed profiles."""
    import pandas as pd
    from pyspark.sql import functions as F

    from cdp.cli import main
    from cdp.lake import read_table

    settings = daily_world.settings
    members = read_table(spark, settings, "gold_segment_members")
    biggest = members.groupBy("segment").count().orderBy(F.desc("count"), "segment").first()
    seeds = {r.one_id for r in members.where(F.col("segment") == biggest.segment).select("one_id").collect()}
    out = tmp_path / "lookalike.csv"
    code = main(["models", "lookalike", "--lake", str(daily_world.lake), "--landing", str(daily_world.landing),
                 "--date", daily_world.run_date, "--segment", biggest.segment, "--top-k", "10", "--out", str(out)])
    assert code == 0
    expansion = pd.read_csv(out, dtype={"one_id": str})
    profiles = {r.one_id for r in read_table(spark, settings, "gold_profiles").select("one_id").collect()}
    assert 0 < len(expansion) <= 10
    assert set(expansion["one_id"]) <= profiles - seeds  # real profiles, never a seed
    assert expansion["one_id"].is_unique
    assert list(expansion["rank"]) == sorted(expansion["rank"])
    # a mistyped segment is an error naming the closest declared one, not "0 seeds"
    typo = biggest.segment[:-1]
    assert main(["models", "lookalike", "--lake", str(daily_world.lake), "--landing", str(daily_world.landing),
                 "--date", daily_world.run_date, "--segment", typo, "--out", str(tmp_path / "typo.csv")]) == 2
    assert not (tmp_path / "typo.csv").exists()
