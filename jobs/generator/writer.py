"""Bounded-memory writing: rows are staged per (source, day), then each day is sorted and written once.

Phase 1 (`Stager.add`) keeps at most `buffer_chars` characters in memory and appends the rest to staging files
`_staging/<source>/<day>.tsv`. Phase 2 (`finalize_day`) reads one staged day at a time, sorts it by event time,
writes the landing file(s) in the source's encoding and reports where the corrupt rows ended up. Memory is bounded
by the buffer plus the largest single day of one source.

A staged line is `sort_key \t corrupt_kind \t source_record_id \t person_id \t payload`; the last three are only
filled for corrupt rows (they feed `_truth/corrupt_rows.csv`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path


def csv_line(values) -> str:
    """One CSV line (RFC 4180 quoting only where needed), without the newline."""
    texts = ["" if v is None else str(v) for v in values]
    line = ",".join(texts)
    if line.count(",") == len(texts) - 1 and '"' not in line and "\n" not in line and "\r" not in line:
        return line  # fast path: nothing to quote
    out = []
    for value in texts:
        text = "" if value is None else str(value)
        if any(c in text for c in ',"\n\r'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out)


class Stager:
    def __init__(self, staging_dir: Path, buffer_chars: int) -> None:
        self.dir = staging_dir
        self.limit = buffer_chars
        self.buffers: dict[tuple[str, int], list[str]] = {}
        self.size = 0

    def add(self, source: str, day: int, key: str, payload: str, corrupt: str = "", record_id: str = "",
            person_id: str = "") -> None:
        line = f"{key}\t{corrupt}\t{record_id}\t{person_id}\t{payload}\n"
        self.buffers.setdefault((source, day), []).append(line)
        self.size += len(line)
        if self.size > self.limit:
            self.flush()

    def flush(self) -> None:
        for (source, day), lines in sorted(self.buffers.items()):
            folder = self.dir / source
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{day:05d}.tsv", "a", encoding="utf-8", newline="") as handle:
                handle.writelines(lines)
        self.buffers.clear()
        self.size = 0

    def staged(self) -> list[tuple[str, int]]:
        """All (source, day) pairs with staged rows, in a stable order."""
        self.flush()
        found = []
        if self.dir.exists():
            for source_dir in sorted(self.dir.iterdir()):
                for path in sorted(source_dir.glob("*.tsv")):
                    found.append((source_dir.name, int(path.stem)))
        return found

    def read(self, source: str, day: int) -> list[str]:
        with open(self.dir / source / f"{day:05d}.tsv", encoding="utf-8", newline="") as handle:
            text = handle.read()
        return text.split("\n")[:-1] if text else []

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass(frozen=True)
class CorruptRow:
    source: str
    file: str     # relative to the landing folder
    line: int     # 1-based physical line number; the CSV header is line 1
    kind: str
    source_record_id: str
    person_id: str


def write_day(root: Path, source: str, date_text: str, stem: str, ext: str, header: str | None,
              staged_lines: list[str], encoding: str, max_rows: int) -> tuple[list[Path], list[CorruptRow]]:
    """Sort one staged day and write it as one or more files; returns the files and the corrupt rows' places."""
    staged_lines.sort()
    folder = root / source / f"dt={date_text}"
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    corrupt: list[CorruptRow] = []
    parts = max(1, -(-len(staged_lines) // max_rows))
    for part in range(parts):
        chunk = staged_lines[part * max_rows:(part + 1) * max_rows]
        name = f"{stem}.{ext}" if part == 0 else f"{stem}_p{part + 1}.{ext}"
        path = folder / name
        offset = 2 if header is not None else 1
        body = []
        for n, line in enumerate(chunk):
            _key, kind, record_id, person_id, payload = line.split("\t", 4)
            body.append(payload)
            if kind:
                corrupt.append(CorruptRow(source, f"{source}/dt={date_text}/{name}", n + offset, kind, record_id,
                                          person_id))
        text = ("" if header is None else header + "\n") + "".join(p + "\n" for p in body)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", encoding=encoding, newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
        files.append(path)
    return files, corrupt
