"""The `cdp` command. Each area adds its own sub-commands through `add_commands(subparsers, common)`.

    cdp setup-jars                      fetch the Delta jars once into .jars/
    cdp generate --out DIR ...          write a sample landing folder (+ ground truth)
    cdp run --landing DIR --lake DIR    the whole daily pipeline without Airflow
    cdp ingest | identity | segment | ...  (see `cdp --help`)
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from typing import Sequence

from cdp.entry import common_parser, open_spark, run_date_from_args, settings_from_args, setup_logging
from cdp.errors import CdpError

log = logging.getLogger(__name__)

# Modules that contribute sub-commands; each defines add_commands(subparsers, common).
COMMAND_MODULES = (
    "cdp.generator.cli",
    "cdp.identity.cli",
    "cdp.tags.cli",
    "cdp.models.cli",
    "cdp.console.cli",
    "cdp.erasure",
    "cdp.maintain",
)


def _setup_jars(args: argparse.Namespace) -> int:
    from cdp.spark import fetch_jars

    for path in fetch_jars(args.jars_dir):
        print(path)
    return 0


def _run(args: argparse.Namespace) -> int:
    from cdp.pipeline import run_pipeline

    settings = settings_from_args(args)
    spark = open_spark(settings)
    stages = tuple(args.stages.split(",")) if args.stages else None
    summaries = run_pipeline(spark, settings, run_date_from_args(args, settings), stages)
    print(json.dumps(summaries, indent=2, default=str, ensure_ascii=False))
    return 0


def _query(args: argparse.Namespace) -> int:
    from cdp.access import get_role, run_query

    settings = settings_from_args(args)
    role = get_role(settings, args.role)
    spark = open_spark(settings)
    from pyspark.errors import AnalysisException, ParseException

    try:
        df = run_query(spark, settings, role, args.sql)
        df.show(args.limit, truncate=False)
    except (AnalysisException, ParseException) as exc:   # a typo in the SQL: its message, not a traceback
        message = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CdpError(f"the query does not run: {message}") from None
    return 0


def _tables(args: argparse.Namespace) -> int:
    from cdp.access import get_role, readable_tables

    settings = settings_from_args(args)
    role = get_role(settings, args.role)
    for name in readable_tables(settings, role):
        print(f"{name}\t{settings.table_path(name)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp", description="Customer data platform with One-ID resolution")
    sub = parser.add_subparsers(dest="command", required=True)
    common = common_parser()

    p = sub.add_parser("setup-jars", help="download the Delta jars from Maven Central once")
    p.add_argument("--jars-dir", default=".jars")
    p.set_defaults(func=_setup_jars)

    p = sub.add_parser("run", parents=[common], help="run the whole daily pipeline on a landing folder")
    p.add_argument("--stages", help="comma-separated subset of stages (default: all)")
    p.set_defaults(func=_run)

    p = sub.add_parser("query", parents=[common], help="run a read-only Spark SQL SELECT over the tables a role may read")
    p.add_argument("sql")
    p.add_argument("--role", help="marketer | data_engineer | admin (default $CDP_ROLE or data_engineer)")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=_query)

    p = sub.add_parser("tables", parents=[common], help="list the tables a role may read, with their locations")
    p.add_argument("--role", help="marketer | data_engineer | admin (default $CDP_ROLE or data_engineer)")
    p.set_defaults(func=_tables)

    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that area is not built yet
            raise
        module.add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        return int(args.func(args) or 0)
    except CdpError as exc:
        print(f"cdp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
