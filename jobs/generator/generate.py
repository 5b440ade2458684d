"""`generate(out, options)`: simulate every person, then write the landing folder day by day, then the truth."""
from __future__ import annotations

import csv
import itertools
import json
import logging
import random
import shutil
from dataclasses import asdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cdp.errors import ConfigError
from cdp.generator.options import GeneratorOptions
from cdp.generator.reference import CATALOG
from cdp.generator.simulate import (
    CATALOG_COLUMNS, CRM_COLUMNS, ECOMMERCE_COLUMNS, ORDER_COLUMNS, POS_COLUMNS, STORES_COLUMNS, Simulation,
    person_columns,
)
from cdp.generator.writer import CorruptRow, Stager, csv_line, write_day

log = logging.getLogger(__name__)

SOURCE_FILES = {  # source -> (file extension, CSV header or None for JSON lines)
    "pos": ("csv", POS_COLUMNS),
    "miniprogram": ("jsonl", None),
    "wecom": ("jsonl", None),
    "ecommerce": ("csv", ECOMMERCE_COLUMNS),
    "crm": ("csv", CRM_COLUMNS),
}
OWNED = ("pos", "miniprogram", "wecom", "ecommerce", "crm", "catalog", "stores", "_truth", "_staging", "_end_date")


def generate(out: str | Path, options: GeneratorOptions | None = None, overwrite: bool = False,
             **fields: Any) -> dict[str, Any]:
    """Write a landing folder for `options.customers` persons over `options.days` days into `out`.

    Options come as a `GeneratorOptions` or as its fields: `generate(out, customers=100_000, days=120, seed=7)`.
    Returns a summary (counts only, no personal data). The same options give the same bytes.
    """
    if options is None:
        options = GeneratorOptions(**fields)
    elif fields:
        raise TypeError("pass either options or option fields, not both")
    root = Path(out)
    _prepare(root, overwrite)
    staging = Stager(root / "_staging", options.buffer_chars)
    truth_dir = root / "_truth"
    truth_dir.mkdir(parents=True)
    with (open(truth_dir / "records.csv", "w", encoding="utf-8", newline="") as records_fh,
          open(truth_dir / "persons.csv", "w", encoding="utf-8", newline="") as persons_fh,
          open(truth_dir / "orders.csv", "w", encoding="utf-8", newline="") as orders_fh):
        truth = {"records": csv.writer(records_fh, lineterminator="\n"),
                 "persons": csv.writer(persons_fh, lineterminator="\n"),
                 "orders": csv.writer(orders_fh, lineterminator="\n")}
        truth["records"].writerow(("source", "source_record_id", "person_id"))
        truth["persons"].writerow(person_columns(options.brands))
        truth["orders"].writerow(ORDER_COLUMNS)
        sim = Simulation(options, staging, truth)
        for i in range(options.customers):
            sim.person(i)
            if (i + 1) % 100_000 == 0:
                log.info("generated %d of %d persons", i + 1, options.customers)

    first_day = sim.date_text[0]
    _write_reference(root, first_day, sim)
    resend = _pick_redeliveries(sorted(staging.days), options)
    corrupt: list[CorruptRow] = []
    files: dict[str, int] = {}
    redelivered: list[tuple[str, str]] = []
    for source, day, lines in _days(staging):
        ext, header = SOURCE_FILES[source]
        stem = f"{source}_{sim.date_compact[day]}"
        if source == "crm":
            stem = f"crm_members_{'full' if day == 0 else 'delta'}_{sim.date_compact[day]}"
        encoding = options.pos_encoding if source == "pos" else "utf-8"
        written, bad = write_day(root, source, sim.date_text[day], stem, ext,
                                 None if header is None else csv_line(header), lines, encoding,
                                 options.max_rows_per_file)
        corrupt.extend(bad)
        files[source] = files.get(source, 0) + len(written)
        if (source, day) in resend:
            copies = _redeliver(root, written, sim.date_text[min(options.days - 1, day + resend[(source, day)])])
            for original, copy in copies:
                redelivered.append((original, copy))
                corrupt.extend(CorruptRow(c.source, copy, c.line, c.kind, c.source_record_id, c.person_id)
                               for c in bad if c.file == original)
            files[source] += len(copies)
    staging.remove()

    with open(truth_dir / "corrupt_rows.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("source", "file", "line", "kind", "source_record_id", "person_id"))
        writer.writerows((c.source, c.file, c.line, c.kind, c.source_record_id, c.person_id) for c in corrupt)
    with open(truth_dir / "redelivered_files.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("original_file", "copy_file"))
        writer.writerows(redelivered)
    (root / "_end_date").write_text(sim.date_text[-1] + "\n", encoding="utf-8")

    stats = dict(sorted(sim.stats.items()))
    stats["redelivered_files"] = len(redelivered)
    summary = {
        "customers": options.customers, "days": options.days, "seed": options.seed,
        "start_date": first_day, "end_date": sim.date_text[-1], "brands": list(options.brands),
        "pos_encoding": options.pos_encoding, "files": files, "stores": len(sim.stores), "skus": len(CATALOG),
        "orders": {k: v for k, v in sorted(sim.counters.items()) if k != "event"},
        "miniprogram_events": sim.counters["event"], "corrupt_rows": len(corrupt), "noise": stats,
        "noise_rates": asdict(options.noise),
    }
    (truth_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    log.info("generated %d persons over %d days into %s", options.customers, options.days, root)
    return {"out": str(root), **summary}


def _days(staging: Stager) -> Iterator[tuple[str, int, Iterator[str]]]:
    """(source, day, that day's sorted staged lines), streamed from the merged runs."""
    for source in staging.sources():
        for day, lines in itertools.groupby(staging.merged(source), key=lambda line: int(line[:5])):
            yield source, day, lines


def _prepare(root: Path, overwrite: bool) -> None:
    """An empty or new folder is used as is; a previous generator output (it has `_truth/summary.json`) is
    replaced, so `make demo` can run twice; any other non-empty folder needs `overwrite`."""
    if root.exists() and any(root.iterdir()):
        if not overwrite and not (root / "_truth" / "summary.json").exists():
            raise ConfigError(f"{root} is not empty and is not a previous generator output: choose a new --out "
                              f"folder or pass --overwrite (which deletes only {', '.join(OWNED)})")
        log.info("replacing the previous generator output in %s", root)
        for name in OWNED:
            target = root / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _write_reference(root: Path, first_day: str, sim: Simulation) -> None:
    """Catalog and store list, delivered once in the first day's folder."""
    for source, header, rows in (
            ("catalog", CATALOG_COLUMNS,
             [(s.sku_id, s.sku_name, s.category, s.brand, f"{s.list_price:.2f}", s.unit) for s in CATALOG]),
            ("stores", STORES_COLUMNS,
             [(s.store_id, s.store_name, s.city, s.region, s.brand_id, s.phone) for s in sim.stores])):
        folder = root / source / f"dt={first_day}"
        folder.mkdir(parents=True, exist_ok=True)
        text = "".join(csv_line(r) + "\n" for r in [header, *rows])
        (folder / f"{source}.csv").write_text(text, encoding="utf-8")


def _pick_redeliveries(staged: list[tuple[str, int]], options: GeneratorOptions) -> dict[tuple[str, int], int]:
    """Which staged days are delivered twice, and how many days later the copy lands (0 = same day)."""
    count = options.noise.redelivered_files
    candidates = [s for s in staged if s[0] in ("pos", "miniprogram", "ecommerce", "wecom")]
    if count <= 0 or not candidates:
        return {}
    rng = random.Random(options.seed * 31 + 5)
    chosen = rng.sample(candidates, min(count, len(candidates)))
    return {key: (0 if n % 2 == 0 else rng.randint(1, 3)) for n, key in enumerate(chosen)}


def _redeliver(root: Path, written: list[Path], date_text: str) -> list[tuple[str, str]]:
    """Copy the files of one day again: same folder under a new name, or a later day's folder."""
    copies = []
    for path in written:
        folder = root / path.parent.parent.name / f"dt={date_text}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / (path.name if folder != path.parent else f"{path.stem}_resend{path.suffix}")
        if target.exists():
            target = folder / f"{path.stem}_resend{path.suffix}"
        shutil.copyfile(path, target)
        copies.append((path.relative_to(root).as_posix(), target.relative_to(root).as_posix()))
    return copies
