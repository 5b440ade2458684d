"""Weekly model training: churn, repurchase, CLV and the rest, registered with their data version and metrics.

Thin: one task calling `cdp.pipeline.run_job("cdp.train_models", ...)`. Daily scoring is the `models` stage of
`cdp_daily`, which uses the latest registered models. Run conf keys as in `cdp_daily` (`landing`, `lake`, `date`).
"""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

TIMEZONE = "Asia/Shanghai"


@dag(
    dag_id="cdp_models_weekly",
    schedule="0 6 * * 1",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=10)},
    tags=["cdp", "models", "weekly"],
    doc_md=__doc__,
)
def cdp_models_weekly():
    @task
    def train_models() -> dict:
        from cdp.pipeline import run_job

        context = get_current_context()
        conf = context["dag_run"].conf or {}
        run_date = conf.get("date") or pendulum.instance(context["logical_date"]).in_tz(TIMEZONE).subtract(days=1).date()
        return run_job("cdp.train_models", str(run_date), profile=conf.get("profile"),
                       landing_dir=conf.get("landing"), lake_dir=conf.get("lake"))

    train_models()


cdp_models_weekly()
