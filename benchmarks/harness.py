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
from typing import Callable, Iterator

import psutil

OUT = Path(__file__).resolve().parent / "out"


@dataclass
class Measurement:
    name: str
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    rows: int | None = None
    cpu_s: float = 0.0  # user + system CPU seconds of the process tree (driver Python + JVM + subprocesses)
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.rows and self.wall_s else None

    def row(self) -> str:
        rps = f"{self.rows_per_s:,.0f}" if self.rows_per_s else "-"
        rows = f"{self.rows:,}" if self.rows else "-"
        return f"| {self.name} | {self.wall_s:,.1f} | {self.cpu_s:,.1f} | {rows} | {rps} | {self.peak_rss_mb:,.0f} |"


HEADER = ("| step | wall s | CPU s | rows | rows/s | peak RSS MB (driver + JVM) |\n"
          "|---|---:|---:|---:|---:|---:|")


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [proc, *proc.children(recursive=True)]
    return [proc]


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in _tree(proc):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _tree_pss(proc: psutil.Process) -> int:
    """Proportional set size of the tree: pages shared between processes (Spark's forked Python workers and
    their daemon) are split between them instead of counted in full by each, as the RSS sum does."""
    total = 0
    for p in _tree(proc):
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
        except (OSError, StopIteration, ValueError):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    return total


def _system_used() -> int:
    """Memory in use on the machine (total - available), whoever uses it."""
    vm = psutil.virtual_memory()
    return vm.total - vm.available


def _tree_cpu(proc: psutil.Process) -> dict[int, float]:
    """CPU seconds (user + system) of each live process of the tree, by pid."""
    cpu = {}
    for p in _tree(proc):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            cpu[p.pid] = t.user + t.system
    return cpu


@contextlib.contextmanager
def measure(name: str, rows: int | None = None) -> Iterator[Measurement]:
    """Time a block; sample the peak RSS and the CPU seconds of this process tree (every 0.2 s) while it runs.

    CPU of a child that ends between two samples is counted up to its last sample (< 0.2 s lost per child).
    """
    result = Measurement(name, rows=rows)
    proc = psutil.Process(os.getpid())
    stop = threading.Event()
    peak = [_tree_rss(proc)]
    peak_pss = [_tree_pss(proc)]
    system_before = _system_used()
    peak_system = [system_before]
    baseline = _tree_cpu(proc)
    latest = dict(baseline)

    def sample() -> None:
        n = 0
        while not stop.wait(0.2):
            peak[0] = max(peak[0], _tree_rss(proc))
            peak_system[0] = max(peak_system[0], _system_used())
            if n % 5 == 0:  # smaps_rollup walks the page tables: once a second is enough
                peak_pss[0] = max(peak_pss[0], _tree_pss(proc))
            latest.update(_tree_cpu(proc))
            n += 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.wall_s = time.perf_counter() - start
        stop.set()
        thread.join()
        latest.update(_tree_cpu(proc))
        result.peak_rss_mb = max(peak[0], _tree_rss(proc)) / 2**20
        result.extra["peak_pss_mb"] = round(peak_pss[0] / 2**20)
        # the machine's memory in use at its peak, and how much of it this block added
        result.extra["system_used_peak_mb"] = round(peak_system[0] / 2**20)
        result.extra["system_used_added_mb"] = round((peak_system[0] - system_before) / 2**20)
        result.cpu_s = sum(cpu - baseline.get(pid, 0.0) for pid, cpu in latest.items())
        result.extra.setdefault("load_avg_1m", [round(load_before, 1), round(os.getloadavg()[0], 1)])


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


# ------------------------------------------------------------------ helpers the benchmark scripts share
REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"


def size_label(n: int) -> str:
    """How a size reads in a step name: 100000 -> "100k", 1000000 -> "1M"."""
    return f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"


def tree_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process and its live children (the Spark JVM): on a
    shared, busy machine wall time overstates the cost, CPU time does not."""
    return sum(_tree_cpu(psutil.Process(os.getpid())).values())


def bench_settings(lake: str | Path, landing: str | Path, profile: str | None = "local"):
    """The profile's settings (default `local`; None: $CDP_PROFILE or local) with the benchmark's own lake and
    landing folders."""
    from cdp.config import load_settings

    return load_settings(profile, overrides={"lake_dir": str(lake), "landing_dir": str(landing)})


def bench_session(lake: str | Path, landing: str | Path, profile: str | None = "local",
                  extra_conf: dict[str, str] | None = None):
    """`(settings, spark)` for a benchmark's lake and landing folders: `bench_settings` plus the profile's Spark
    session (with `extra_conf` on top)."""
    from cdp.spark import build_spark

    settings = bench_settings(lake, landing, profile)
    return settings, build_spark(settings.spark, extra_conf=extra_conf)


def bench_sizes(prefix: str, sizes: list[int], bench: Callable[..., list[Measurement]]) -> list[Measurement]:
    """The measurements of `bench(spark, settings, n)` for each size n, in one Spark session (local profile) over
    a fresh lake in a temporary folder named `prefix...`; the lake is removed after each size, the folder at the end."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        settings, spark = bench_session(work / "lake", work)
        results: list[Measurement] = []
        for n in sizes:
            results += bench(spark, settings, n)
            shutil.rmtree(work / "lake", ignore_errors=True)
        spark.stop()
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replace_docs_section(heading: str, text: str, doc: Path | None = None) -> None:
    """Replace the section under `heading` (e.g. "## Models") in docs/benchmarks.md, or add it at the end."""
    import re

    doc = doc or DOCS
    content = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{text.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    content = (pattern.sub(lambda _: section + "\n", content) if pattern.search(content)
               else content.rstrip("\n") + "\n\n" + section)
    doc.write_text(content)

def _rows_of(summary: dict) -> int | None:
    """The row count a stage summary reports (ingest: rows landed over all sources)."""
    if "sources" in summary:
        return sum(s.get("rows_landed", 0) for s in summary["sources"].values()) or None
    for key in ("rows_landed", "records", "rows", "profiles"):
        if isinstance(summary.get(key), int):
            return summary[key]
    return None


def main(argv: list[str] | None = None) -> int:
    """Generate N customers (unless the landing folder exists), then run every pipeline stage as its own process.

    Each stage runs as `cdp run --stages NAME` in a fresh process, as an Airflow task would, so its wall time
    includes the JVM start and its peak memory is that stage's alone; the full run's peak is the largest of them.
    """
    import subprocess
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", default="data/bench", help="folder holding c<N>/landing and c<N>/lake")
    parser.add_argument("--stages", help="comma-separated subset of stages (default: all)")
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory for the stage processes")
    args = parser.parse_args(argv)

    from cdp.pipeline import stage_names

    work = Path(args.work) / f"c{args.customers}"
    landing, lake = work / "landing", work / "lake"
    results = []
    if not (landing / "_end_date").exists():
        from cdp.generator import generate

        with measure("generate") as m:
            generate(out=landing, customers=args.customers, days=args.days, seed=args.seed)
        results.append(m)
    run_date = (landing / "_end_date").read_text().strip()
    env = dict(os.environ)
    if args.driver_memory:  # read by cdp.config.load_settings on top of the profile's Spark conf
        env["CDP_SPARK_CONF"] = f"spark.driver.memory={args.driver_memory}"
    stages = args.stages.split(",") if args.stages else list(stage_names())
    title = f"Pipeline stages {args.customers} customers"
    for stage in stages:
        cmd = [sys.executable, "-m", "cdp.cli", "run", "--stages", stage, "--landing", str(landing),
               "--lake", str(lake), "--date", run_date]
        log_path = OUT / f"pipeline_{args.customers}_{stage}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with measure(stage) as m, log_path.open("w") as log:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        m.extra["exit_code"] = proc.returncode
        if proc.returncode != 0:
            results.append(m)
            print(write_report(title, results))
            print(f"stage {stage} failed with exit code {proc.returncode}; see {log_path}", file=sys.stderr)
            return proc.returncode
        summary = json.loads(proc.stdout).get(stage, {})
        m.rows = _rows_of(summary)
        m.extra["summary"] = summary
        results.append(m)
        print(m.row(), flush=True)
    print(write_report(title, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
