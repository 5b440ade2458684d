"""Test helpers of the profile stage: silver frames in the docs/tables.md contract schema from a few fields."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any


def silver(spark, name: str, rows: list[dict[str, Any]]):
    """A DataFrame of silver table `name` (contract columns of cdp.tags.facts.SILVER_COLUMNS); unset fields null."""
    from cdp.tags.facts import SILVER_COLUMNS, schema_fields

    ddl = SILVER_COLUMNS[name]
    names = [n for n, _ in schema_fields(ddl)]
    unknown = {k for row in rows for k in row} - set(names)
    assert not unknown, f"{name} has no columns {unknown}"
    return spark.createDataFrame([tuple(row.get(n) for n in names) for row in rows], ddl)


def ts(text: str) -> dt.datetime:
    """A naive UTC timestamp (the Spark session time zone is UTC)."""
    return dt.datetime.fromisoformat(text)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def dec(text: str) -> Decimal:
    return Decimal(text)


def changed_conf(tmp_path: Path, name: str, change: dict[str, Any]) -> Path:
    """A copy of the shipped conf/`name` with top-level keys replaced by `change` (for rejected-rules tests)."""
    import yaml

    from cdp.config import default_conf_dir

    raw = yaml.safe_load((default_conf_dir() / name).read_text())
    raw.update(change)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path
