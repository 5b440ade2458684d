"""Daily CDP pipeline: ingest the landing folder, then each later stage, one task per stage.

Thin by design: every task is one call into `cdp.pipeline.run_stage`, which runs the same job module that
`cdp run` and `spark-submit jobs/<job>.py` run. Nothing heavy is imported at parse time.

Configuration: the environment variable `CDP_PROFILE` (local | cluster) picks the profile and its folders; the
run conf keys `landing` / `lake` point one run at other folders.
The run at 03:00 (Asia/Shanghai) on day D+1 processes landing day D: the run date is the logical date in the
pipeline's time zone minus one day, or the run conf key `date` (YYYY-MM-DD). Backfills
(`airflow backfill create --dag-id cdp_daily --from-date ... --to-date ...`) re-run past days idempotently.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

from cdp.pipeline import stage_names

TIMEZONE = "Asia/Shanghai"
default_args = {"retries": 2, "retry_delay": pendulum.duration(minutes=5)}


@dag(
    dag_id="cdp_daily",
    schedule="0 3 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["cdp", "daily"],
    doc_md=__doc__,
)
def cdp_daily():
    @task
    def run_stage(stage_name: str) -> dict:
        from cdp.pipeline import run_stage as run

        context = get_current_context()
        conf = context["dag_run"].conf or {}
        run_date = conf.get("date") or pendulum.instance(context["logical_date"]).in_tz(TIMEZONE).subtract(days=1).date()
        return run(stage_name, str(run_date), profile=conf.get("profile"),
                   landing_dir=conf.get("landing"), lake_dir=conf.get("lake"))

    previous = None
    for name in stage_names():
        current = run_stage.override(task_id=name)(name)
        if previous is not None:
            previous >> current
        previous = current


cdp_daily()
