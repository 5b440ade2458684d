"""Identity stage end to end (silver -> edges -> guardrails -> components -> stable ids written to Delta),
per step with wall time, CPU seconds, peak memory and Spark job counts, and its quality against the
generator's ground truth.

    python -m benchmarks.bench_identity_stage --customers 100000 --work /tmp/bench
    python -m benchmarks.bench_identity_stage --customers 1000000 --work /work/bench --no-quality
    python -m benchmarks.bench_identity_stage --customers 1000000 --work /work/bench --no-quality --fresh --daily
    python -m benchmarks.bench_identity_stage --customers 1000000 --work /work/bench --no-quality --replay

Steps: generate the landing folder into `<work>/c<customers>/landing` (skipped when `_end_date` exists), ingest
it into `<work>/c<customers>/lake` (skipped when silver exists; not timed here: the ingestion has its own
benchmark), then time `cdp.resolve_identity.run` for the end date `--runs` times (the first run on a lake without
identity tables is a first resolution; later runs are no-change re-runs), each step of the stage separately, and
score the record map against `_truth/records.csv` (pairwise precision/recall with group counts, recall of what
the links allow). `--fresh` drops the identity tables (and the silver `one_id` values) before the first run.

`--daily` also keeps the lake as it stands just before the daily run in `<work>/c<customers>/daily_start` (data
files hard-linked, Delta logs copied); `--replay` puts that lake back and times the same daily run (and its
full-pass baseline) again, so a code change is measured on the same day without the first resolution.

CPU seconds are user + system time of this process and its children (the Spark JVM), so on a shared machine
they say more than wall time. The tables go to benchmarks/out/ and are meant for docs/benchmarks.md under
"Identity stage".
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator


from benchmarks.harness import OUT, machine, measure

IDENTITY_TABLES = ("identity_nodes", "identity_edges", "identity_rejections", "identity_history",
                   "identity_redirects", "identity_record_map", "identity_state", "identity_record_state",
                   "identity_combo_state", "identity_combo_nodes", "identity_busy_days")


class StepMeter:
    """A step hook for `cdp.resolve_identity.run`: wall, CPU s, peak RSS (harness.measure) and Spark jobs of
    every step."""

    def __init__(self, spark, label: str):
        self.spark, self.label, self.rows = spark, label, []

    def _last_job(self) -> int:
        ids = self.spark.sparkContext.statusTracker().getJobIdsForGroup(None)
        return max(ids) if ids else -1

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        job0 = self._last_job()
        with measure(name) as m:
            yield
        self.rows.append({"run": self.label, "step": name, "wall_s": m.wall_s, "cpu_s": m.cpu_s,
                          "peak_rss_mb": m.peak_rss_mb, "peak_pss_mb": m.extra["peak_pss_mb"],
                          "spark_jobs": self._last_job() - job0})
        print(f"{self.label} | {name}: {m.wall_s:.1f} s wall, {m.cpu_s:.1f} CPU s", flush=True)


def _table(rows: list[dict]) -> str:
    # RSS sums the processes' resident pages, so pages two processes share (a momentary child of the JVM, the
    # likely cause of single steps showing 20-25 GB) count twice; PSS splits them between the sharers
    lines = ["| run | step | wall s | CPU s | Spark jobs | peak RSS MB (driver + JVM) | peak PSS MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['step']} | {r['wall_s']:,.1f} | {r['cpu_s']:,.1f} | {r['spark_jobs']} | "
                     f"{r['peak_rss_mb']:,.0f} | {r.get('peak_pss_mb', 0):,.0f} |")
    return "\n".join(lines)


def _drop_identity(spark, settings) -> None:
    """Back to a lake as ingest left it: no identity tables, silver one_id null."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.identity.config import load_identity_rules
    from cdp.lake import table_exists

    for name in IDENTITY_TABLES:
        path = Path(settings.table_path(name))
        if path.exists():
            shutil.rmtree(path)
    for source in load_identity_rules(settings).sources.values():
        if table_exists(spark, settings, source.table):
            (DeltaTable.forPath(spark, settings.table_path(source.table))
             .update(F.col("one_id").isNotNull(), {"one_id": F.lit(None).cast("string")}))


SILVER_TABLES = ("silver_pos_lines", "silver_miniprogram_events", "silver_wecom_contacts", "silver_ecommerce_lines",
                 "silver_crm_members")


def _hold_out(spark, settings, held: Path, day: dt.date) -> None:
    """Take the rows landed on `day` out of silver (kept as parquet under `held`), so the day before can be
    resolved first and `day` then lands in new files, as a daily ingestion would write it."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    for table in SILVER_TABLES:
        if table_exists(spark, settings, table):
            read_table(spark, settings, table).where(F.col("dt") == F.lit(day)).write.mode("overwrite").parquet(str(held / table))
            DeltaTable.forPath(spark, settings.table_path(table)).delete(F.col("dt") == F.lit(day))


def _land_held_out(spark, settings, held: Path) -> None:
    from cdp.lake import append_table

    for part in sorted(held.iterdir()):
        append_table(spark.read.parquet(str(part)), settings, part.name)
    shutil.rmtree(held)


def _link_copy(src: Path, dst: Path) -> None:
    """A copy of a lake that costs no disk: data files are immutable in Delta, so they are hard-linked; the
    `_delta_log` folders, where a file can be rewritten in place (`_last_checkpoint`), are copied."""
    if dst.exists():
        shutil.rmtree(dst)
    for folder, _, files in os.walk(src):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        copy = "_delta_log" in rel.parts
        for name in files:
            (shutil.copy2 if copy else os.link)(Path(folder) / name, dst / rel / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="data/bench/identity",
                        help="folder holding c<customers>/landing and c<customers>/lake (reused when present)")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--runs", type=int, default=2, help="timed identity runs (the 2nd is a no-change re-run)")
    parser.add_argument("--fresh", action="store_true", help="drop identity tables and silver one_id first")
    parser.add_argument("--no-quality", action="store_true", help="skip scoring against the ground truth")
    parser.add_argument("--daily", action="store_true",
                        help="a day's increment instead: the end date's rows are taken out of silver, the day "
                             "before is resolved (first resolution), the end date's rows are appended again (as "
                             "ingestion writes a new day), then the end date's daily (incremental) run, then a "
                             "full pass of the end date (the baseline, which must change nothing)")
    parser.add_argument("--replay", action="store_true",
                        help="put back the lake a --daily benchmark kept before its daily run and time that daily "
                             "run and its baseline again")
    parser.add_argument("--no-baseline", action="store_true", help="with --daily or --replay: skip the full pass")
    args = parser.parse_args(argv)
    from cdp.entry import setup_logging

    setup_logging()          # the stage logs each step's wall time as it finishes: progress of a long run

    import pandas as pd

    from cdp.config import load_settings
    from cdp.spark import build_spark

    work = Path(args.work) / f"c{args.customers}"
    landing, lake = work / "landing", work / "lake"
    daily_start = work / "daily_start"
    if args.replay:
        if not daily_start.exists():
            parser.error(f"--replay needs {daily_start}: run with --daily first")
        _link_copy(daily_start, lake)
    prep = []
    if not (landing / "_end_date").exists():
        from cdp.generator import generate

        start = time.perf_counter()
        generate(out=landing, customers=args.customers, days=args.days, seed=args.seed)
        prep.append(("generate (not identity)", time.perf_counter() - start))
    run_date = dt.date.fromisoformat((landing / "_end_date").read_text().strip())
    settings = load_settings(overrides={"landing_dir": str(landing), "lake_dir": str(lake)})
    spark = build_spark(settings.spark, extra_conf={"spark.driver.memory": args.driver_memory})

    from cdp.lake import read_table, table_exists

    if not table_exists(spark, settings, "silver_pos_lines"):
        from cdp.ingest import run as ingest

        start = time.perf_counter()
        ingest(spark, settings, run_date)
        prep.append(("ingest (not identity)", time.perf_counter() - start))
    if args.fresh and not args.replay:
        _drop_identity(spark, settings)
    held = work / "held_out_last_day"
    if held.exists() and not args.replay:   # an interrupted --daily benchmark: the day goes back first
        _land_held_out(spark, settings, held)
    if not args.replay:
        # the layout the ingest stage leaves (a lake ingested before it existed gets it here, timed apart)
        from cdp.ingest import lay_out_silver

        start = time.perf_counter()
        laid_out = lay_out_silver(spark, settings, SILVER_TABLES)
        if laid_out:
            prep.append((f"silver laid out by dt: {', '.join(laid_out)} (ingest stage; not identity)",
                         time.perf_counter() - start))
    if args.daily and not args.replay:
        _hold_out(spark, settings, held, run_date)

    from cdp.resolve_identity import run

    silver_rows = sum(read_table(spark, settings, t).count() for t in
                      ("silver_pos_lines", "silver_miniprogram_events", "silver_wecom_contacts",
                       "silver_ecommerce_lines", "silver_crm_members") if table_exists(spark, settings, t))
    summaries, steps, totals, report = [], [], [], ""
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")

    def save() -> str:
        """Write the timings so far (after every run: an interrupted benchmark keeps its finished runs)."""
        s0 = summaries[0] if summaries else {}
        head = (f"### Identity stage {args.customers:,} customers\n\n{machine()}\n\n"
                f"silver rows {silver_rows:,}; source records {s0.get('records', 0):,}; nodes {s0.get('nodes', 0):,}; "
                f"link pairs {s0.get('link_pairs', 0):,}; One-IDs {s0.get('one_ids', 0):,}\n\n"
                + "".join(f"- {name}: {secs:,.1f} s wall\n" for name, secs in prep))
        whole = "\n".join(f"| {t['run']} | {t['wall_s']:,.1f} | {t['cpu_s']:,.1f} | {t['spark_jobs']} | "
                          f"{t['peak_rss_mb']:,.0f} | {t.get('peak_pss_mb', 0):,.0f} | {t['load_avg_1m']:.1f} |"
                          for t in totals)
        report = (head + "\n| run | wall s | CPU s | Spark jobs | peak RSS MB | peak PSS MB | load avg (1 min, at end) |\n"
                  "|---|---:|---:|---:|---:|---:|---:|\n" + whole + "\n\n" + _table(steps) + "\n")
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"identity_stage_{args.customers}_{stamp}.md").write_text(report)
        (OUT / f"identity_stage_{args.customers}_{stamp}.json").write_text(
            json.dumps({"totals": totals, "steps": steps, "summary": summaries, "silver_rows": silver_rows},
                       indent=2, default=str))
        return report

    if args.replay:
        plan = [(f"daily run {run_date} (incremental, replayed)", run_date, False),
                (f"full pass {run_date} (baseline)", run_date, True)]
        del plan[1 if args.no_baseline else 2:]
    elif args.daily:
        day_before = run_date - dt.timedelta(days=1)
        plan = [(f"first resolution {day_before}", day_before, False),
                (f"daily run {run_date} (incremental)", run_date, False),
                (f"full pass {run_date} (baseline)", run_date, True)]
        del plan[2 if args.no_baseline else 3:]
    else:
        plan = [("first run" if i == 0 else f"re-run {i} (no change)", run_date, False) for i in range(args.runs)]
    for label, day, full in plan:
        if args.daily and day == run_date and held.exists():
            start = time.perf_counter()
            _land_held_out(spark, settings, held)
            prep.append((f"land {run_date} (appends, as ingestion does; not identity)", time.perf_counter() - start))
            _link_copy(lake, daily_start)
        meter = StepMeter(spark, label)
        with meter("whole stage"):
            summary = run(spark, settings, day, step=meter, full=full)
        whole = meter.rows.pop()              # the outer measurement, reported separately
        steps.extend(meter.rows)
        totals.append({**whole, "step": "whole stage", "load_avg_1m": os.getloadavg()[0]})
        summaries.append(summary)
        report = save()
    print(report, flush=True)

    quality = None
    if not args.no_quality:
        from cdp.identity.config import load_identity_rules
        from cdp.identity.edges import extract_observations
        from cdp.identity.quality import pairwise_quality, reachable_groups
        from cdp.resolve_identity import read_silver

        rules = load_identity_rules(settings)
        truth = pd.read_csv(landing / "_truth" / "records.csv", dtype=str)
        rm = read_table(spark, settings, "identity_record_map").select("source", "source_record_id", "one_id").toPandas()
        obs = (extract_observations(read_silver(spark, settings, rules, run_date), rules)
               .select("source", "source_record_id", "node_key").toPandas())
        rejections = read_table(spark, settings, "identity_rejections").count()
        quality = pairwise_quality(rm, truth, reachable=reachable_groups(obs, truth), rejections=rejections)

    print(json.dumps({"summary": summaries, "quality": quality}, indent=2, default=str))
    if quality is not None:
        (OUT / f"identity_quality_{args.customers}_{stamp}.json").write_text(json.dumps(quality, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
