"""`cdp models train|score|evaluate-uci|lookalike`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cdp.entry import add_job_command


def _evaluate(args: argparse.Namespace) -> int:
    from cdp.models.evaluate import metrics_table, run_evaluation

    result = run_evaluation(args.data_dir, args.out, with_older_history=args.with_older_history, threads=args.threads)
    print(metrics_table(result))
    print(json.dumps(result["clv"], indent=2))
    return 0


def _lookalike(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from cdp.entry import open_spark, run_date_from_args, settings_from_args
    from cdp.errors import CdpError
    from cdp.lake import read_table
    from cdp.models.config import load_models_config
    from cdp.models.lookalike import expand_lookalike
    from cdp.models.propensity import snapshot
    from cdp.train_models import load_inputs

    settings = settings_from_args(args)
    run_date = run_date_from_args(args, settings)
    spark = open_spark(settings)
    if args.seed_file:
        seeds = [line.strip() for line in Path(args.seed_file).read_text(encoding="utf-8").splitlines() if line.strip()]
    elif args.segment:
        from cdp.tags.segments import load_segment

        load_segment(args.segment, settings)   # an unknown name is an error with the closest declared names
        members = read_table(spark, settings, "gold_segment_members").where(F.col("segment") == args.segment)
        last = members.agg(F.max("run_date")).first()[0]
        if last is None:
            raise CdpError(f"segment {args.segment!r} has never been run. Fix: `cdp segment run {args.segment}`")
        seeds = [r.one_id for r in members.where(F.col("run_date") == F.lit(last)).select("one_id").collect()]
    else:
        raise CdpError("give --segment NAME or --seed-file FILE (one one_id per line)")
    cfg = load_models_config(settings)
    look_cfg = cfg.lookalike.model_copy(update={"top_k": args.top_k}) if args.top_k else cfg.lookalike
    inputs = load_inputs(spark, settings, run_date)
    try:
        # features are keyed by customer codes: translate the seeds there and the expansion back (in Spark)
        codes = {r.one_id: r.customer for r in inputs.customers.where(F.col("one_id").isin(seeds)).collect()}
        result = expand_lookalike(snapshot(inputs.compact, run_date, inputs.profiles), list(codes.values()),
                                  look_cfg, cfg.seed)
        top = result.scores["one_id"].astype(int).tolist()
        names = {r.customer: r.one_id for r in inputs.customers.where(F.col("customer").isin(top)).collect()}
    finally:
        inputs.release()
    scores = result.scores.assign(one_id=[names[c] for c in top])
    if args.out:
        scores.to_csv(args.out, index=False)
    print(json.dumps({"metrics": result.metrics, "expansion_rows": len(result.scores), "out": args.out}, indent=2))
    return 0


def add_commands(subparsers, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("models", help="train, score and evaluate the predictive models")
    sub = p.add_subparsers(dest="models_command", required=True)
    add_job_command(sub, "train", common, "cdp.train_models", help="train and register churn + repurchase (weekly)")
    add_job_command(sub, "score", common, "cdp.score_models",
                    help="write gold_model_scores and gold_replenishment (daily)")
    e = sub.add_parser("evaluate-uci", help="the UCI Online Retail evaluation against the baselines")
    e.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "external"
                                             / "online_retail"))
    e.add_argument("--out", help="folder for models_uci_metrics.json and the SVG charts (e.g. docs)")
    e.add_argument("--with-older-history", action="store_true", help="add Online Retail II (2009-2010) as history")
    e.add_argument("--threads", type=int, default=1, help="OpenMP threads for the boosted models (default 1)")
    e.set_defaults(func=_evaluate)
    lk = sub.add_parser("lookalike", parents=[common], help="expand a seed segment to its top-K look-alikes")
    lk.add_argument("--segment", help="segment name in gold_segment_members (latest run)")
    lk.add_argument("--seed-file", help="file with one one_id per line")
    lk.add_argument("--top-k", type=int)
    lk.add_argument("--out", help="CSV file for the expansion (one_id, score, rank)")
    lk.set_defaults(func=_lookalike)
