"""Shared plumbing of every entry point: common arguments, settings, the Spark session, logging.

A job module looks like:

    def run(spark, settings, run_date) -> dict: ...          # the work, SparkSession passed in
    def main(argv=None) -> int: return job_main(run, argv)    # `spark-submit jobs/<job>.py --date ...`
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import logging
import sys
from typing import Any, Callable, Sequence

from cdp.config import Settings, load_settings


def common_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--profile", help="configuration profile in conf/profiles (default $CDP_PROFILE or local)")
    parser.add_argument("--conf-dir", help="configuration folder (default $CDP_CONF_DIR or the packaged conf/)")
    parser.add_argument("--landing", help="landing folder (overrides the profile's landing_dir)")
    parser.add_argument("--lake", help="lake folder for the Delta tables (overrides the profile's lake_dir)")
    parser.add_argument("--date", type=parse_date, help="run date YYYY-MM-DD (default: today in the profile's time zone)")
    return parser


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(profile=args.profile, conf_dir=args.conf_dir,
                         overrides={"landing_dir": args.landing, "lake_dir": args.lake})


def run_date_from_args(args: argparse.Namespace, settings: Settings) -> dt.date:
    if getattr(args, "date", None):
        return args.date
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(settings.timezone)).date()


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("py4j", "great_expectations", "urllib3", "numexpr"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # PySpark logs every analysis error it builds (even ones the caller handles) as a JSON Java stack; the error
    # itself still reaches the caller and the CLI prints its message. Created through PySparkLogger: the logger
    # is called with keyword fields a plain logging.Logger would reject.
    from pyspark.logger import PySparkLogger

    PySparkLogger.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)


def open_spark(settings: Settings):
    from cdp.spark import build_spark

    return build_spark(settings.spark)


def run_job(run: Callable[..., dict[str, Any]], args: argparse.Namespace) -> int:
    """Call a job's `run(spark, settings, run_date)` for parsed common arguments and print its summary as JSON."""
    settings = settings_from_args(args)
    spark = open_spark(settings)
    from cdp.locking import lake_lock

    with lake_lock(settings.lake_dir):  # like `cdp run` and the Airflow tasks: one writer per lake at a time
        summary = run(spark, settings, run_date_from_args(args, settings))
    print(json.dumps(summary, indent=2, default=str, ensure_ascii=False))
    return 0


def add_job_command(subparsers: Any, name: str, common: argparse.ArgumentParser, job: str,
                    help: str) -> argparse.ArgumentParser:
    """A CLI sub-command that runs the job module `job` (e.g. "cdp.build_tags", imported when the command runs)
    as `job_main` would: `cdp tags build --date D` is `spark-submit jobs/build_tags.py --date D`."""
    parser = subparsers.add_parser(name, parents=[common], help=help)
    parser.set_defaults(func=lambda args: run_job(importlib.import_module(job).run, args))
    return parser


def job_main(run: Callable[..., dict[str, Any]], argv: Sequence[str] | None = None, description: str = "") -> int:
    """`main(argv)` of a job module: parse common arguments, build the session, call `run` under the lake lock,
    print the summary."""
    parser = argparse.ArgumentParser(description=description, parents=[common_parser()])
    args = parser.parse_args(argv)
    setup_logging()
    return run_job(run, args)
