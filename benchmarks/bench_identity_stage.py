"""Identity stage end to end (silver -> edges -> guardrails -> components -> stable ids written to Delta),
with peak memory, and its quality against the generator's ground truth.

    python -m benchmarks.bench_identity_stage --customers 100000 --days 120

Steps: generate the landing folder (skipped when it exists), ingest it (not timed here: the ingestion has its
own benchmark), then time `cdp.resolve_identity.run` for the end date, and score the record map against
`_truth/records.csv` (pairwise precision/recall with group counts, recall of what the links allow).
The table goes to benchmarks/out/ and is meant for docs/benchmarks.md under "Identity stage".
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from benchmarks.harness import measure, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="data/bench/identity")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--runs", type=int, default=2, help="timed identity runs (the 2nd is a no-change re-run)")
    args = parser.parse_args(argv)

    import pandas as pd

    from cdp.config import load_settings
    from cdp.spark import build_spark

    work = Path(args.work) / f"c{args.customers}"
    landing, lake = work / "landing", work / "lake"
    results = []
    if not (landing / "_end_date").exists():
        from cdp.generator import generate

        with measure("generate (not identity)") as m:
            generate(out=landing, customers=args.customers, days=args.days, seed=args.seed)
        results.append(m)
    run_date = dt.date.fromisoformat((landing / "_end_date").read_text().strip())
    settings = load_settings(overrides={"landing_dir": str(landing), "lake_dir": str(lake)})
    spark = build_spark(settings.spark, extra_conf={"spark.driver.memory": args.driver_memory})

    from cdp.lake import read_table, table_exists

    if not table_exists(spark, settings, "silver_pos_lines"):
        from cdp.ingest import run as ingest

        with measure("ingest (not identity)") as m:
            ingest(spark, settings, run_date)
        results.append(m)

    from cdp.resolve_identity import run

    summaries = []
    for i in range(args.runs):
        label = "identity stage, first run" if i == 0 else "identity stage, re-run (no change)"
        with measure(label) as m:
            summary = run(spark, settings, run_date)
        m.rows = summary["records"]
        m.extra = {k: summary[k] for k in ("nodes", "link_pairs", "one_ids", "records_without_one_id")}
        results.append(m)
        summaries.append(summary)

    from cdp.identity.config import load_identity_rules
    from cdp.identity.edges import extract_observations
    from cdp.identity.quality import pairwise_quality, reachable_groups
    from cdp.resolve_identity import read_silver

    truth = pd.read_csv(landing / "_truth" / "records.csv", dtype=str)
    rm = read_table(spark, settings, "identity_record_map").select("source", "source_record_id", "one_id").toPandas()
    obs = (extract_observations(read_silver(spark, settings, load_identity_rules(settings), run_date),
                                load_identity_rules(settings))
           .select("source", "source_record_id", "node_key").toPandas())
    rejections = read_table(spark, settings, "identity_rejections").count()
    quality = pairwise_quality(rm, truth, reachable=reachable_groups(obs, truth), rejections=rejections)
    report = write_report(f"Identity stage {args.customers} customers", results)
    print(report)
    print(json.dumps({"summary": summaries[0], "quality": quality}, indent=2, default=str))
    (Path("benchmarks/out") / f"identity_quality_{args.customers}.json").write_text(
        json.dumps({"summary": summaries, "quality": quality}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
