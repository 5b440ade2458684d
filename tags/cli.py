"""`cdp tags ...` and `cdp segment ...` sub-commands (added to the `cdp` command by jobs/cli.py).

    cdp tags build [--date D]                          base table + tags (long, wide, history)
    cdp tags list                                       declared tags (validates conf/tags)
    cdp segment list                                    declared segments (validates conf/segments)
    cdp segment preview FILE_OR_NAME [--samples N]      count, breakdown by stage/channel/store, masked samples
    cdp segment run [NAME ...] [--date D]               gold_segment_members for the run date
    cdp segment export NAME --to wecom|unionid|mobile_hash --out FILE.csv
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from cdp.entry import add_job_command, open_spark, settings_from_args


def _tags_list(args: argparse.Namespace) -> int:
    from cdp.tags.segments import tag_catalog

    settings = settings_from_args(args)
    for tag in tag_catalog(settings).tags:
        detail = tag.condition.describe() if tag.condition else (tag.value_column or tag.value_model or "")
        print(f"{tag.name:32} {tag.kind:8} {'flag ' if tag.is_flag else 'value'} {tag.label or ''} {detail}")
    return 0


def _segment_list(args: argparse.Namespace) -> int:
    from cdp.tags.segments import load_segments

    settings = settings_from_args(args)
    for seg in load_segments(settings):
        campaign = f" [campaign -> tag {seg.campaign.feedback_tag}]" if seg.campaign else ""
        print(f"{seg.name:32} {seg.label or ''}{campaign}\n    {seg.describe()}")
    return 0


def _print_preview(result: Any, load_s: float) -> None:
    print(f"segment {result.segment} as of {result.as_of_date}: {result.count:,} profiles")
    print(f"  {result.definition}")
    print("by lifecycle stage: " + ", ".join(f"{k} {v:,}" for k, v in result.by_stage.items()))
    print("by channel:         " + ", ".join(f"{k} {v:,}" for k, v in result.by_channel.items()))
    print("by home store:      " + ", ".join(f"{s} {n:,}" for s, n in result.by_store))
    print("samples (masked):")
    for row in result.samples:
        print("  " + json.dumps(row, ensure_ascii=False, default=str))
    print(f"time: {result.seconds:.2f} s query (+ {load_s:.2f} s to load and cache the base table)")


def _segment_preview(args: argparse.Namespace) -> int:
    from cdp.tags.segments import load_base, load_segment, preview

    settings = settings_from_args(args)
    definition = load_segment(args.segment, settings)
    spark = open_spark(settings)
    start = time.perf_counter()
    load_base(spark, settings)
    load_s = time.perf_counter() - start
    result = preview(spark, settings, definition, samples=args.samples)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        _print_preview(result, load_s)
    return 0


def _segment_run(args: argparse.Namespace) -> int:
    from cdp.locking import lake_lock
    from cdp.tags.segments import run_segments

    settings = settings_from_args(args)
    spark = open_spark(settings)
    with lake_lock(settings.lake_dir):   # one writer per lake, as `cdp run` and the Airflow tasks
        summary = run_segments(spark, settings, args.date, args.names or None)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def _segment_export(args: argparse.Namespace) -> int:
    from cdp.access import get_role, require_export
    from cdp.tags.segments import export_segment

    settings = settings_from_args(args)
    require_export(get_role(settings, args.role), args.to)
    spark = open_spark(settings)
    summary = export_segment(spark, settings, args.name, args.to, args.out, run_date=args.date)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    tags = subparsers.add_parser("tags", help="declared tags: build, list")
    tag_sub = tags.add_subparsers(dest="tags_command", required=True)
    add_job_command(tag_sub, "build", common, "cdp.build_tags",
                    help="compute the base table and all tags for the run date")
    p = tag_sub.add_parser("list", parents=[common], help="list (and validate) the tags declared in conf/tags")
    p.set_defaults(func=_tags_list)

    seg = subparsers.add_parser("segment", help="segments: list, preview, run, export")
    seg_sub = seg.add_subparsers(dest="segment_command", required=True)
    p = seg_sub.add_parser("list", parents=[common], help="list (and validate) the segments in conf/segments")
    p.set_defaults(func=_segment_list)
    p = seg_sub.add_parser("preview", parents=[common], help="count, breakdown and masked samples of a segment")
    p.add_argument("segment", help="a segment name in conf/segments or a YAML file")
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_segment_preview)
    p = seg_sub.add_parser("run", parents=[common], help="materialise segments into gold_segment_members")
    p.add_argument("names", nargs="*", help="segment names (default: all)")
    p.set_defaults(func=_segment_run)
    p = seg_sub.add_parser("export", parents=[common], help="write a consent-filtered, formula-safe activation CSV")
    p.add_argument("name")
    p.add_argument("--to", required=True, choices=("wecom", "unionid", "mobile_hash"))
    p.add_argument("--out", required=True, help="the CSV file to write")
    p.add_argument("--role", help="marketer | data_engineer | admin (default $CDP_ROLE or data_engineer); "
                                  "--to unionid needs a role that may read pii_values (admin)")
    p.set_defaults(func=_segment_export)
