"""Weekly lake maintenance: compact small files, vacuum old ones (docs/reliability.md "Maintenance").

Thin: one task calling `cdp.pipeline.run_job("cdp.maintain", ...)`, which waits for the lake lock, so it never
runs while a `cdp_daily` stage writes. Sunday 01:00 Asia/Shanghai, two hours before the 03:00 daily run (which
waits for the lock if maintenance is late).
Run conf keys as in `cdp_daily` (`lake`, `profile`), plus `retain_hours` (default 168, Delta's default: time
travel and the identity stage's increments reach back 7 days) and `tables` (a list of logical names; default all).
"""
from __future__ import annotations

import pendulum
from airflow.sdk import dag, get_current_context, task

TIMEZONE = "Asia/Shanghai"


@dag(
    dag_id="cdp_maintenance_weekly",
    schedule="0 1 * * 0",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=30)},
    tags=["cdp", "maintenance", "weekly"],
    doc_md=__doc__,
)
def cdp_maintenance_weekly():
    @task
    def maintain_lake() -> dict:
        from cdp.maintain import DEFAULT_RETAIN_HOURS
        from cdp.pipeline import run_job

        context = get_current_context()
        conf = context["dag_run"].conf or {}
        run_date = pendulum.instance(context["logical_date"]).in_tz(TIMEZONE).date()
        return run_job("cdp.maintain", str(run_date), profile=conf.get("profile"), landing_dir=conf.get("landing"),
                       lake_dir=conf.get("lake"), retain_hours=float(conf.get("retain_hours", DEFAULT_RETAIN_HOURS)),
                       tables=conf.get("tables"))

    maintain_lake()


cdp_maintenance_weekly()
