"""`cdp generate`: write a sample landing folder with its ground truth."""
from __future__ import annotations

import argparse
import json
import time

from cdp.entry import parse_date
from cdp.generator.options import DEFAULT_END_DATE, POS_ENCODINGS, GeneratorOptions, NoiseRates


def add_commands(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "generate", help="write a realistic sample landing folder (+ ground truth in <out>/_truth)",
        description="Simulate N customers of a fruit retail group over D days and write the five sources, the "
                    "reference data and the ground truth. Deterministic for a seed.")
    p.add_argument("--out", required=True, help="landing folder to create")
    p.add_argument("--customers", type=int, default=1000, help="number of persons (default 1000)")
    p.add_argument("--days", type=int, default=120, help="number of days ending at --end-date (default 120)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--end-date", type=parse_date, default=DEFAULT_END_DATE,
                   help=f"last day YYYY-MM-DD (default {DEFAULT_END_DATE}, fixed so the seed decides the output)")
    p.add_argument("--brands", default="main,fresh",
                   help="brand ids of the group, first = the main brand (default main,fresh)")
    p.add_argument("--pos-encoding", choices=POS_ENCODINGS, default="utf-8", help="encoding of the POS files")
    p.add_argument("--noise", type=float, default=1.0,
                   help="multiplier of every noise rate: 0 = clean data, 2 = twice as dirty (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that is not a previous generator output (deletes only the "
                        "generator's own folders there; a previous output is always replaced)")
    p.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    from cdp.generator.generate import generate

    options = GeneratorOptions(
        customers=args.customers, days=args.days, seed=args.seed, end_date=args.end_date,
        brands=tuple(b.strip() for b in args.brands.split(",") if b.strip()), pos_encoding=args.pos_encoding,
        noise=NoiseRates().scaled(args.noise))
    started = time.perf_counter()
    summary = generate(args.out, options, overwrite=args.overwrite)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0
