"""Benchmark harness: wall time, rows/s and peak memory (this process + children, i.e. the Spark JVM).

    python -m benchmarks.harness --customers 100000 --days 120      # generate, then time each pipeline stage

Results are appended as a markdown table row to benchmarks/out/<name>.md and printed; docs/benchmarks.md
collects the numbers we report. Peak memory is sampled every 0.2 s with psutil over the whole process tree
(the driver Python plus the JVM that PySpark starts as a child process).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import psutil

OUT = Path(__file__).resolve().parent / "out"


@dataclass
class Measurement:
    name: str
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    rows: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.rows and self.wall_s else None

    def row(self) -> str:
        rps = f"{self.rows_per_s:,.0f}" if self.rows_per_s else "-"
        rows = f"{self.rows:,}" if self.rows else "-"
        return f"| {self.name} | {self.wall_s:,.1f} | {rows} | {rps} | {self.peak_rss_mb:,.0f} |"


HEADER = "| step | wall s | rows | rows/s | peak RSS MB (driver + JVM) |\n|---|---:|---:|---:|---:|"


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


@contextlib.contextmanager
def measure(name: str, rows: int | None = None) -> Iterator[Measurement]:
    """Time a block and sample the peak RSS of this process tree while it runs."""
    result = Measurement(name, rows=rows)
    proc = psutil.Process(os.getpid())
    stop = threading.Event()
    peak = [_tree_rss(proc)]

    def sample() -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], _tree_rss(proc))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.wall_s = time.perf_counter() - start
        stop.set()
        thread.join()
        result.peak_rss_mb = max(peak[0], _tree_rss(proc)) / 2**20


def machine() -> str:
    return (f"{platform.node()} · {psutil.cpu_count()} cores · {psutil.virtual_memory().total / 2**30:.0f} GiB · "
            f"Python {platform.python_version()} · {dt.date.today()}")


def write_report(title: str, measurements: list[Measurement], out: Path | None = None) -> str:
    text = "\n".join([f"### {title}", "", machine(), "", HEADER, *(m.row() for m in measurements), ""])
    out = out or OUT / (title.lower().replace(" ", "_").replace("/", "_") + ".md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps([asdict(m) for m in measurements], indent=2))
    return text


def main(argv: list[str] | None = None) -> int:
    """Generate N customers, then time every pipeline stage separately (one Spark session)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="data/bench")
    args = parser.parse_args(argv)

    from cdp.config import load_settings
    from cdp.generator import generate
    from cdp.pipeline import STAGES
    from cdp.spark import build_spark

    work = Path(args.work) / f"c{args.customers}_d{args.days}"
    landing, lake = work / "landing", work / "lake"
    results = []
    with measure("generate") as m:
        generate(out=landing, customers=args.customers, days=args.days, seed=args.seed)
    results.append(m)
    run_date = dt.date.fromisoformat((landing / "_end_date").read_text().strip())
    settings = load_settings(overrides={"landing_dir": str(landing), "lake_dir": str(lake)})
    spark = build_spark(settings.spark)
    for stage in STAGES:
        with measure(stage.name) as m:
            summary = stage.load()(spark, settings, run_date) or {}
        m.rows = summary.get("rows_landed") or summary.get("rows")
        results.append(m)
    print(write_report(f"Pipeline stages {args.customers} customers", results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
