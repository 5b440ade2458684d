"""Bounded-memory writing: an external merge sort from per-person generation to per-day, time-ordered files.

Phase 1 (`Stager.add`) keeps at most `buffer_chars` characters in memory; a full buffer is sorted and written as
one sorted *run* per source (`_staging/<source>/run00000.tsv`). Phase 2 (`Stager.merged`) merges the runs of a
source with `heapq.merge` (at most `MAX_OPEN_RUNS` files at once; more runs are first merged in batches), which
yields the rows ordered by (day, time, record id); `write_day` streams one day's rows into its landing file(s).
Memory is bounded by the buffer plus one line per open run, whatever the number of persons or the size of a day.

A staged line is `DDDDD<sort key> \t corrupt_kind \t source_record_id \t person_id \t payload` (DDDDD = day
number); the middle three are only filled for corrupt rows (they feed `_truth/corrupt_rows.csv`).
"""
from __future__ import annotations

import heapq
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_OPEN_RUNS = 128


def csv_line(values) -> str:
    """One CSV line (RFC 4180 quoting only where needed), without the newline."""
    texts = ["" if v is None else str(v) for v in values]
    line = ",".join(texts)
    if line.count(",") == len(texts) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
        return line  # fast path: nothing to quote
    out = []
    for text in texts:
        if any(c in text for c in ',"\n\r'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out)


class Stager:
    def __init__(self, staging_dir: Path, buffer_chars: int) -> None:
        self.dir = staging_dir
        self.limit = buffer_chars
        self.buffers: dict[str, list[str]] = {}
        self.runs: dict[str, int] = {}
        self.days: set[tuple[str, int]] = set()  # (source, day) pairs that have rows: at most 5 x days entries
        self.size = 0

    def add(self, source: str, day: int, key: str, payload: str, corrupt: str = "", record_id: str = "",
            person_id: str = "") -> None:
        line = f"{day:05d}{key}\t{corrupt}\t{record_id}\t{person_id}\t{payload}\n"
        self.buffers.setdefault(source, []).append(line)
        self.days.add((source, day))
        self.size += len(line)
        if self.size > self.limit:
            self.flush()

    def flush(self) -> None:
        for source, lines in sorted(self.buffers.items()):
            lines.sort()
            self._write_run(source, lines)
        self.buffers.clear()
        self.size = 0

    def _write_run(self, source: str, lines: Iterable[str]) -> None:
        folder = self.dir / source
        folder.mkdir(parents=True, exist_ok=True)
        number = self.runs.get(source, 0)
        self.runs[source] = number + 1
        with open(folder / f"run{number:06d}.tsv", "w", encoding="utf-8", newline="") as handle:
            handle.writelines(lines)

    def sources(self) -> list[str]:
        """The sources with staged rows, in a stable order (flushes what is still buffered)."""
        self.flush()
        return sorted(self.runs)

    def merged(self, source: str) -> Iterator[str]:
        """Every staged line of `source`, in sorted order (day first)."""
        paths = sorted((self.dir / source).glob("run*.tsv"))
        while len(paths) > MAX_OPEN_RUNS:  # merge in batches until one merge can hold every run open
            batches = [paths[i:i + MAX_OPEN_RUNS] for i in range(0, len(paths), MAX_OPEN_RUNS)]
            paths = []
            for batch in batches:
                self._write_run(source, _merge(batch))
                for path in batch:
                    path.unlink()
            paths = sorted((self.dir / source).glob("run*.tsv"))
        yield from _merge(paths)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _merge(paths: list[Path]) -> Iterator[str]:
    handles = [open(p, encoding="utf-8", newline="") for p in paths]
    try:
        yield from heapq.merge(*handles)
    finally:
        for handle in handles:
            handle.close()


@dataclass(frozen=True)
class CorruptRow:
    source: str
    file: str     # relative to the landing folder
    line: int     # 1-based physical line number; the CSV header is line 1
    kind: str
    source_record_id: str
    person_id: str


def write_day(root: Path, source: str, date_text: str, stem: str, ext: str, header: str | None,
              staged_lines: Iterable[str], encoding: str, max_rows: int) -> tuple[list[Path], list[CorruptRow]]:
    """Stream one day's sorted staged lines into one or more files (a new part after `max_rows` rows).

    Returns the files written and the places of the corrupt rows."""
    folder = root / source / f"dt={date_text}"
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    corrupt: list[CorruptRow] = []
    handle = None
    tmp = path = None
    rows = 0
    offset = 2 if header is not None else 1
    for line in staged_lines:
        if handle is None or rows == max_rows:
            if handle is not None:
                handle.close()
                os.replace(tmp, path)
                files.append(path)
            name = f"{stem}.{ext}" if not files else f"{stem}_p{len(files) + 1}.{ext}"
            path = folder / name
            tmp = path.with_suffix(path.suffix + ".tmp")
            handle = open(tmp, "w", encoding=encoding, newline="")
            if header is not None:
                handle.write(header + "\n")
            rows = 0
        _key, kind, record_id, person_id, payload = line.split("\t", 4)
        handle.write(payload)  # ends with its newline
        if kind:
            corrupt.append(CorruptRow(source, f"{source}/dt={date_text}/{path.name}", rows + offset, kind,
                                      record_id, person_id))
        rows += 1
    if handle is not None:
        handle.close()
        os.replace(tmp, path)
        files.append(path)
    return files, corrupt
