"""Generator benchmark: wall time, CPU time, rows written per second and peak memory per size.

    python -m benchmarks.generator --customers 20000 100000 --days 120

Each size is generated into a fresh folder under --work (deleted afterwards unless --keep). Memory must stay flat
as N grows (streaming writes): the table shows peak RSS next to N.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from benchmarks.harness import measure, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="data/bench/generator")
    parser.add_argument("--keep", action="store_true", help="keep the generated folders")
    args = parser.parse_args(argv)

    from cdp.generator import GeneratorOptions, generate

    results = []
    for customers in args.customers:
        out = Path(args.work) / f"c{customers}_d{args.days}"
        shutil.rmtree(out, ignore_errors=True)
        cpu = time.process_time()
        with measure(f"generate {customers:,} customers x {args.days} days") as m:
            summary = generate(out, GeneratorOptions(customers=customers, days=args.days, seed=args.seed))
        rows = sum(1 for p in out.rglob("dt=*/*") if p.is_file() for _ in open(p, "rb"))
        m.rows = rows
        m.extra = {"cpu_s": round(time.process_time() - cpu, 1), "files": summary["files"],
                   "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}
        m.name += f" (CPU {m.extra['cpu_s']} s, {m.extra['bytes'] / 2**20:,.0f} MiB)"
        results.append(m)
        print(json.dumps({"customers": customers, "wall_s": round(m.wall_s, 1), **m.extra}))
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    print(write_report("Generator", results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
