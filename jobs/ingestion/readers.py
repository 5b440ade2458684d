"""Landing files -> staged rows: discover, hash, decode in the declared encoding, split into records.

Python reads each file once as a byte stream (bounded memory: one chunk plus one line at a time), checks that
the bytes decode in the encoding declared for the source, splits lines and writes a small Parquet staging file
per landing file (`source_line` + every field as a string). Spark then reads all staged files of a source in one
job; everything after staging (typing, normalising, validation) is Spark built-ins.

A file that cannot be read as a whole (bytes not valid in the declared encoding, no header, missing required
columns) is a `FileRejection`; a line that cannot be split (wrong number of CSV fields, invalid JSON) is kept as
a staged row with `parse_error` set, so the row is counted as landed and then quarantined by the `well_formed`
rule. Blank lines are not records.

Contract assumptions (docs/landing-contract.md): one record per physical line (no newlines inside CSV fields),
CSV with a header row, comma separated, `"` quoting.
"""
from __future__ import annotations

import codecs
import csv
import fnmatch
import gzip
import hashlib
import json
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
BATCH_ROWS = 50_000
DT_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")

# Columns every source may carry besides its required ones (kept typed in bronze; others go to `extra`).
COMMON_OPTIONAL_COLUMNS: tuple[str, ...] = ("brand_id",)
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"ecommerce": ("member_card_no",)}


def optional_columns(source: str) -> tuple[str, ...]:
    return OPTIONAL_COLUMNS.get(source, ()) + COMMON_OPTIONAL_COLUMNS


def bronze_columns(source: str, required: Sequence[str]) -> tuple[str, ...]:
    """The named string columns of a CSV source's bronze table: required first, then the known optional ones."""
    return tuple(required) + tuple(c for c in optional_columns(source) if c not in required)


@dataclass(frozen=True)
class LandedFile:
    source: str
    path: str
    dt: str  # YYYY-MM-DD from the dt= folder
    content_hash: str
    size_bytes: int
    relative_path: str  # path under the landing folder: <source>/dt=YYYY-MM-DD/<file>


@dataclass
class StagedFile:
    landed: LandedFile
    staged_path: str
    rows_landed: int


@dataclass
class FileRejection:
    landed: LandedFile
    reason: str


def matches_pattern(name: str, pattern: str) -> bool:
    """Whether a landed file name is one of the source's files: `pattern` matched without regard to case
    (`P1.CSV` is a `*.csv`), the name with or without a `.gz` suffix (gzip-compressed deliveries are read too)."""
    name, pattern = name.lower(), pattern.lower()
    return fnmatch.fnmatch(name, pattern) or (name.endswith(".gz") and fnmatch.fnmatch(name[:-3], pattern))


def _dt_folder_files(landing_source_dir: str, up_to: str) -> Iterator[tuple[Path, str]]:
    """Every visible file of the `dt=YYYY-MM-DD/` folders with dt <= `up_to`, sorted by (dt, name). Hidden and
    in-flight files (`.` or `_` prefix) are not landed yet."""
    root = Path(landing_source_dir)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        match = DT_FOLDER.match(folder.name)
        if not folder.is_dir() or not match or match.group(1) > up_to:
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and not entry.name.startswith((".", "_")):
                yield entry, match.group(1)


def discover_files(landing_source_dir: str, pattern: str, source: str, up_to: str) -> list[tuple[str, str]]:
    """`(path, dt)` of files under `<landing>/<source>/dt=YYYY-MM-DD/` matching `pattern` (`matches_pattern`)
    with dt <= `up_to`.

    Sorted by (dt, path) so runs are deterministic. Hidden files and in-flight files (`.tmp`, `_` prefix) are
    ignored.
    """
    return [(str(entry), day) for entry, day in _dt_folder_files(landing_source_dir, up_to)
            if matches_pattern(entry.name, pattern)]


def stray_files(landing_source_dir: str, pattern: str, up_to: str) -> list[tuple[str, str]]:
    """`(path, dt)` of the visible files in the same folders that do NOT match `pattern`: a delivery under a name
    the contract does not know (`pos_1101.txt`, `pos.csv.zip`), or a sidecar (a checksum, a manifest). Ingest
    lists them in its summary (`not_read`) instead of passing over them in silence."""
    return [(str(entry), day) for entry, day in _dt_folder_files(landing_source_dir, up_to)
            if not matches_pattern(entry.name, pattern)]


def misplaced(landing_dir: str, sources: Sequence[str]) -> list[str]:
    """What lies in the landing folder where no source reads (paths relative to it): a folder that is not a
    declared source, and a file or folder in a source's folder that is not a `dt=YYYY-MM-DD` folder (a file
    dropped beside the dt folders, `dt=2026-1-5`, `2026-11-21`). Hidden and `_` names are not deliveries."""
    root = Path(landing_dir)
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        if entry.name not in sources or not entry.is_dir():
            found.append(entry.name + ("/" if entry.is_dir() else ""))
            continue
        for child in sorted(entry.iterdir()):
            if not child.name.startswith((".", "_")) and not (child.is_dir() and DT_FOLDER.match(child.name)):
                found.append(f"{entry.name}/{child.name}" + ("/" if child.is_dir() else ""))
    return found


def open_landed(path: str):
    """The landed file's bytes as a binary stream: decompressed when the name ends with `.gz`."""
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def hash_file(path: str) -> tuple[str, int]:
    """sha256 hex of the file's bytes and its size."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class DecodeFailure(Exception):
    """The bytes stop being valid in the declared encoding (or, `compressed`, the gzip stream is broken)."""

    def __init__(self, line_no: int, detail: str, compressed: bool = False):
        super().__init__(detail)
        self.line_no = line_no
        self.detail = detail
        self.compressed = compressed


def _unreadable(landed: LandedFile, encoding: str, exc: DecodeFailure) -> FileRejection:
    if exc.compressed:
        return FileRejection(landed, f"{exc.detail}: deliver it again, compressed whole, or uncompressed")
    return FileRejection(landed, f"not decodable as the declared encoding {encoding} "
                                 f"(conf/sources.yaml {landed.source}.encoding): {exc.detail}")


def iter_lines(path: str, encoding: str) -> Iterator[tuple[int, str]]:
    """`(line_no, text)` of each physical line, decoded strictly; a leading UTF-8 BOM is dropped.

    Raises DecodeFailure naming the line where the bytes stop being valid in `encoding`.
    """
    codec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    line_no = 0
    pending = ""
    with open_landed(path) as handle:
        while True:
            try:
                chunk = handle.read(CHUNK_BYTES)
            except (OSError, EOFError, zlib.error) as exc:
                if not path.lower().endswith(".gz"):   # a disk error on a plain file is not a bad delivery
                    raise
                raise DecodeFailure(line_no + 1, f"not a readable gzip file ({exc})", compressed=True) from None
            final = not chunk
            try:
                text = decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                bad = exc.object[exc.start:exc.start + 4]
                line_at = line_no + 1 + pending.count("\n") + exc.object[:exc.start].count(b"\n")
                raise DecodeFailure(line_at, f"bytes {bad.hex(' ')} at line {line_at} are not valid {encoding}") from None
            if text:
                pending += text
                *complete, pending = pending.split("\n")
                for line in complete:
                    line_no += 1
                    yield line_no, line.rstrip("\r")
            if final:
                break
    if pending:
        yield line_no + 1, pending.rstrip("\r")


# Python's csv module refuses fields over 128 KiB ("field larger than field limit"), which quarantined a row with a
# long free-text column; the contract sets no limit on a field, and a line is read whole anyway.
csv.field_size_limit(2**31 - 1)


def _csv_split(line: str) -> list[str]:
    return next(csv.reader([line]))


class _ParquetSink:
    """Writes staged rows in batches of BATCH_ROWS (bounded memory) to one Parquet file."""

    def __init__(self, path: str, schema, landed: LandedFile):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.constants = {"content_hash": landed.content_hash, "source_file": landed.relative_path, "dt": landed.dt}
        self.schema = schema
        self.full_schema = pa.schema([*[(name, pa.string()) for name in self.constants], *schema])
        self.writer = pq.ParquetWriter(path, self.full_schema, compression="zstd")
        self.rows: dict[str, list] = {name: [] for name in schema.names}
        self.count = 0

    def add(self, row: dict) -> None:
        for name, values in self.rows.items():
            values.append(row.get(name))
        self.count += 1
        if len(self.rows["source_line"]) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa

        n = len(self.rows["source_line"])
        if n:
            data = {name: [value] * n for name, value in self.constants.items()}
            data.update(self.rows)
            self.writer.write_table(pa.table(data, schema=self.full_schema))
            self.rows = {name: [] for name in self.schema.names}

    def close(self) -> None:
        self.flush()
        self.writer.close()


def csv_stage_schema(columns: Sequence[str]):
    import pyarrow as pa

    return pa.schema([("source_line", pa.int32()), *[(c, pa.string()) for c in columns],
                      ("extra", pa.map_(pa.string(), pa.string())), ("raw_line", pa.string()),
                      ("parse_error", pa.string())])


def json_stage_schema():
    import pyarrow as pa

    return pa.schema([("source_line", pa.int32()), ("raw_record", pa.string()), ("parse_error", pa.string())])


def _numbered_repeats(header: list[str]) -> list[str]:
    """Header names with the 2nd, 3rd, ... occurrence of a name numbered (`remark`, `remark_2`), so every extra
    column keeps its values under its own key.

    >>> _numbered_repeats(["a", "remark", "remark", "remark"])
    ['a', 'remark', 'remark_2', 'remark_3']
    """
    taken = set(header)
    seen: dict[str, int] = {}
    out = []
    for name in header:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == 1:
            out.append(name)
            continue
        n = seen[name]
        while f"{name}_{n}" in taken:   # `remark_2` delivered as a column of its own keeps its name
            n += 1
        taken.add(f"{name}_{n}")
        out.append(f"{name}_{n}")
    return out


def stage_csv(landed: LandedFile, encoding: str, required: Sequence[str], staged_path: str) -> StagedFile | FileRejection:
    """Stage one CSV file: header checked against `required`, each line split into named string fields."""
    columns = bronze_columns(landed.source, required)
    sink = None
    try:
        lines = iter_lines(landed.path, encoding)
        header: list[str] | None = None
        for line_no, line in lines:
            if not line.strip():
                continue
            header = [h.strip().lower() for h in _csv_split(line)]
            break
        if header is None:
            return FileRejection(landed, "empty file: no header row")
        duplicated = sorted({h for h in header if header.count(h) > 1})
        ambiguous = [h for h in duplicated if h in columns]
        if ambiguous:
            return FileRejection(landed, f"header repeats column(s) {', '.join(ambiguous)}, which the contract reads: "
                                         f"it is ambiguous which one holds the value (rename or drop one)")
        header = _numbered_repeats(header)   # a repeated extra column is kept as `name`, `name_2`, ...
        missing = [c for c in required if c not in header]
        if missing:
            return FileRejection(landed, f"missing required column(s) {', '.join(missing)} "
                                         f"(declared in conf/sources.yaml {landed.source}.required_columns; "
                                         f"header has: {', '.join(header)})")
        known = [(i, h) for i, h in enumerate(header) if h in columns]
        extra = [(i, h) for i, h in enumerate(header) if h not in columns]
        width = len(header)
        sink = _ParquetSink(staged_path, csv_stage_schema(columns), landed)
        for line_no, line in lines:
            if not line.strip():
                continue
            row: dict = {"source_line": line_no}
            try:
                fields = _csv_split(line)
                error = None if len(fields) == width else f"expected {width} fields, found {len(fields)}"
            except csv.Error as exc:
                fields, error = [], f"CSV syntax: {exc}"
            if error is None:
                for i, name in known:
                    row[name] = fields[i]
                row["extra"] = [(name, fields[i]) for i, name in extra] or None
            else:
                row["raw_line"] = line
                row["parse_error"] = error
            sink.add(row)
        sink.close()
        return StagedFile(landed, staged_path, sink.count)
    except DecodeFailure as exc:
        _discard(sink, staged_path)
        return _unreadable(landed, encoding, exc)


def stage_jsonl(landed: LandedFile, encoding: str, required: Sequence[str], staged_path: str) -> StagedFile | FileRejection:
    """Stage one JSON-lines file: each line kept raw; syntax checked here so the reason is precise."""
    sink = _ParquetSink(staged_path, json_stage_schema(), landed)
    keys_seen: set[str] = set()
    objects = 0
    try:
        for line_no, line in iter_lines(landed.path, encoding):
            if not line.strip():
                continue
            error = None
            try:
                value = json.loads(line)
                if isinstance(value, dict):
                    keys_seen.update(value.keys())
                    objects += 1
                else:
                    error = f"not a JSON object but a {type(value).__name__}"
            except ValueError as exc:
                error = f"not valid JSON: {exc}"
            sink.add({"source_line": line_no, "raw_record": line, "parse_error": error})
        sink.close()
    except DecodeFailure as exc:
        _discard(sink, staged_path)
        return _unreadable(landed, encoding, exc)
    missing = [c for c in required if c not in keys_seen]
    if objects and missing:
        _discard(None, staged_path)
        return FileRejection(landed, f"missing required field(s) {', '.join(missing)} in every record "
                                     f"(declared in conf/sources.yaml {landed.source}.required_columns)")
    return StagedFile(landed, staged_path, sink.count)


def _discard(sink: _ParquetSink | None, staged_path: str) -> None:
    if sink is not None:
        try:
            sink.writer.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
    if os.path.exists(staged_path):
        os.remove(staged_path)


def stage_file(landed: LandedFile, fmt: str, encoding: str, required: Sequence[str],
               staged_path: str) -> StagedFile | FileRejection:
    if fmt == "csv":
        return stage_csv(landed, encoding, required, staged_path)
    return stage_jsonl(landed, encoding, required, staged_path)


def count_records(path: str, fmt: str) -> int:
    """Non-blank lines of a file that is quarantined as a whole (minus the CSV header): its landed rows.

    Blank as staging sees it: a line of whitespace only, full-width spaces (U+3000) included, is not a row (the
    bytes are read as UTF-8, an undecodable byte counts as a character)."""
    count = 0
    try:
        with open_landed(path) as handle:
            for line in handle:
                if line.decode("utf-8", errors="replace").strip():
                    count += 1
    except (OSError, EOFError, zlib.error):   # a broken gzip stream: the lines read before the break
        pass
    return max(count - 1, 0) if fmt == "csv" else count
