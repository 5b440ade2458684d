"""docs/tables.md is the contract downstream tools read: every table the daily DAG writes must have exactly the
columns the document lists (no undocumented column, no documented column missing).

The document's column cells are prose with the column names in backticks (`a, b int, c (note)`); the parser
reads only the backtick spans, drops type parameters (`<...>`) and notes (`(...)`), and keeps the leading name of
each comma-separated item. Column families written as `order_count_<channel>` match any suffix.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

TABLES_MD = Path(__file__).resolve().parent.parent / "docs" / "tables.md"
NAME = re.compile(r"[a-z_][a-z0-9_]*(?:\{[a-z_]+\})?")


def _strip(text: str, open_: str, close: str) -> str:
    pattern = re.compile(re.escape(open_) + r"[^" + re.escape(open_ + close) + r"]*" + re.escape(close))
    previous = None
    while previous != text:
        previous, text = text, pattern.sub("", text)
    return text


def _names(cell: str) -> list[str]:
    """The column names in a columns cell: notes in brackets and the prose after a dash are not columns."""
    cell = re.sub(r"_<([a-z_]+)>", r"_{\1}", cell)     # a family such as order_count_<channel> keeps its placeholder
    cell = _strip(_strip(cell, "(", ")"), "<", ">").split(" — ")[0]   # notes, type parameters (array<...>)
    names = []
    for span in re.findall(r"`([^`]*)`", cell):
        for item in span.split(","):
            match = NAME.match(item.strip())
            if match:
                names.append(match.group(0).replace("{", "<").replace("}", ">"))
    return names


def documented_tables(text: str) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """table -> (columns of its columns cell, names in its grain cell, its cells) for each row that names one
    table."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        table = re.findall(r"`([a-z_][a-z0-9_]*)`", cells[0])
        if len(cells) < 3 or len(table) != 1 or cells[0] != f"`{table[0]}`":
            continue
        grain = [w for span in re.findall(r"`([^`]*)`", cells[1]) for w in re.findall(r"[a-z_][a-z0-9_]*", span)]
        out[table[0]] = (_names(cells[-1]), grain, cells)
    return out


def _matches(column: str, documented: list[str]) -> bool:
    for name in documented:
        if "<" in name:
            if re.fullmatch(re.sub(r"<[a-z_]+>", r"[a-z0-9_]+", name), column):
                return True
        elif column == name:
            return True
    return False


def test_the_parser_reads_names_types_notes_and_families():
    text = ("| `t` | one row per `(one_id, day)` | `one_id, day date, kinds array<struct<a, b>>, "
            "status (ok\\|bad)` |\n| `bronze_<source>` (`x, y`) | z | `w` |\n")
    columns, grain, _ = documented_tables(text)["t"]
    assert (columns, grain) == (["one_id", "day", "kinds", "status"], ["one_id", "day"])
    assert _names("`a, b_<x>` (note `c`), `d` — prose `e`") == ["a", "b_<x>", "d"]
    assert _matches("amount_pos", ["amount_<channel>"]) and not _matches("amountpos", ["amount_<channel>"])


@pytest.mark.airflow
@pytest.mark.spark
def test_every_table_of_the_daily_run_has_its_documented_columns(daily_world, spark):
    from cdp.lake import read_table, table_exists
    from cdp.tags.engine import load_tag_catalog
    from cdp.tags.segments import load_segments

    settings = daily_world.settings
    docs = documented_tables(TABLES_MD.read_text(encoding="utf-8"))
    silver_provenance = ["source", "source_record_id", "brand_id", "dt", "source_file", "source_line",
                         "ingested_at", "one_id"]
    profiles = docs["gold_profiles"][0]
    tags = [t.name for t in load_tag_catalog(settings.conf_path("tags")).tags]
    feedback_tags = [s.campaign.feedback_tag for s in load_segments(settings) if s.campaign]
    expanded = {
        # "all gold_profiles columns except as_of_date, plus ..."
        "gold_segment_base": [c for c in profiles if c != "as_of_date"] + docs["gold_segment_base"][0],
        # "one column per declared tag and per campaign feedback tag"
        "gold_tags_wide": docs["gold_tags_wide"][0] + tags + feedback_tags,
    }
    checked, problems = [], {}
    for table in settings.tables:
        if table.startswith("bronze_") or not table_exists(spark, settings, table):
            continue
        assert table in docs, f"{table} is written by the daily run but has no row in docs/tables.md"
        columns, grain, cells = docs[table]
        columns = [c for c in expanded.get(table, columns) if c not in settings.tables]   # not "all `gold_profiles`"
        if table.startswith("silver_"):
            record_table = cells[2] != "–"   # reference tables (catalog, stores) have no source record
            columns = [c for c in silver_provenance if record_table or c not in ("source_record_id", "one_id")] + columns
        actual = read_table(spark, settings, table).columns
        undocumented = [c for c in actual if not _matches(c, columns + grain)]
        missing = [c for c in columns if "<" not in c and c not in actual]
        if undocumented or missing:
            problems[table] = {"undocumented": undocumented, "missing": missing}
        checked.append(table)
    assert problems == {}, json.dumps(problems, indent=1)
    # the run wrote the tables downstream tools read, so the check covered them
    assert {"silver_pos_lines", "identity_record_map", "gold_profiles", "gold_segment_base", "gold_tags_wide",
            "gold_tags_long", "gold_segment_members"} <= set(checked)
