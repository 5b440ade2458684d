"""The console's door to the segment engine: a thin layer over `cdp.tags.segments` (the API behind the
`cdp segment preview|run|export` commands), so the page and the CLI give the same answers.

- definitions are validated by `cdp.tags.segments.load_segment` (the one condition parser; conditions become
  Spark Column expressions with bound literals, so nothing a request sends becomes SQL text);
- `preview` scans `gold_segment_base`, which the engine caches in memory while its Delta version is unchanged
  (the per-one_id base table written by `cdp tags build`);
- saves go to the settings' `conf/segments/<name>.yaml`, runs to `gold_segment_members`, exports to a CSV under
  the console's exports folder (consent-filtered and formula-safe by the engine).

The console adds only the builder's vocabulary (`catalog`) and the shaping of results for JSON.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdp.config import read_yaml
from cdp.errors import ConfigError
from cdp.tags.engine import DefinitionError
from cdp.tags.segments import SegmentDefinition

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

ENGINE_NAME = "cdp.tags.segments"
__all__ = ["DefinitionError", "ENGINE_NAME", "EngineCache", "catalog", "default_run_date", "dump_definition",
           "export", "list_definitions", "load_definition", "preview", "read_definition", "run",
           "save_definition"]


@dataclass
class EngineCache:
    """The builder catalog (small distinct lists); the base table itself is cached by the engine."""

    catalog: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        from cdp.tags.segments import clear_cache

        with self.lock:
            self.catalog = None
        clear_cache()


def load_definition(raw: dict[str, Any], settings: Settings) -> SegmentDefinition:
    """Validate a definition mapping in the conf/segments format; unsaved definitions may omit `name`."""
    from cdp.tags.segments import load_segment

    if not isinstance(raw, dict):
        raise DefinitionError("<console>", "segment", [("", "a segment definition is a mapping with `where:`")])
    return load_segment({"name": "unsaved", **raw}, settings)


def dump_definition(definition: SegmentDefinition) -> dict[str, Any]:
    return definition.to_yaml()


def read_definition(settings: Settings, name: str) -> dict[str, Any] | None:
    from cdp.tags.segments import segments_dir

    path = segments_dir(settings) / f"{name}.yaml"
    return read_yaml(path) if path.exists() else None


def list_definitions(settings: Settings) -> list[dict[str, Any]]:
    from cdp.tags.segments import segments_dir

    out = []
    for path in sorted(segments_dir(settings).glob("*.yaml")):
        raw = read_yaml(path)
        raw = raw if isinstance(raw, dict) else {}
        out.append({"name": path.stem, "label": raw.get("label"), "description": raw.get("description")})
    return out


def save_definition(definition: SegmentDefinition, settings: Settings, overwrite: bool) -> Path:
    from cdp.tags.segments import save_segment

    return save_segment(definition, settings, overwrite=overwrite)


def default_run_date(spark: SparkSession, settings: Settings) -> dt.date:
    """The as-of date of the base table: segments run and export for the date the base was built for."""
    from cdp.tags.segments import load_base

    return load_base(spark, settings)[1]


def preview(spark: SparkSession, settings: Settings, definition: SegmentDefinition) -> dict[str, Any]:
    """`cdp segment preview` as JSON: count, by_stage, by_channel, by_store, samples, seconds."""
    from cdp.console.views import jsonable
    from cdp.tags.segments import preview as engine_preview

    return jsonable(engine_preview(spark, settings, definition).to_dict())


def run(spark: SparkSession, settings: Settings, name: str, run_date: dt.date | None) -> dict[str, Any]:
    from cdp.tags.segments import run_segments

    summary = run_segments(spark, settings, run_date, names=[name])
    return {"segment": name, "run_date": summary["run_date"], "members": summary["segments"][name]}


def export(spark: SparkSession, settings: Settings, name: str, target: str, exports_dir: Path,
           run_date: dt.date | None) -> dict[str, Any]:
    """Write the activation CSV under `exports_dir` and return the engine's summary plus the file's text."""
    from cdp.tags.segments import export_segment

    stamp = run_date.isoformat() if run_date else "latest"
    out = Path(exports_dir) / f"{name}_{target}_{stamp}.csv"
    summary = export_segment(spark, settings, name, target, out, run_date=run_date)  # type: ignore[arg-type]
    final = out.with_name(f"{name}_{target}_{summary['run_date']}.csv")
    if final != out:
        out.replace(final)
    return {**summary, "out": final.name, "content": final.read_bytes()}


# --- the builder's vocabulary ----------------------------------------------------------------------------------
def catalog(spark: SparkSession, settings: Settings, cache: EngineCache) -> dict[str, Any]:
    """Values the builder offers in its pickers (small distinct lists from the lake and conf; cached)."""
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists
    from cdp.tags.engine import ATTRIBUTES, CHANNELS, LIFECYCLE_STAGES, RFM_SEGMENTS
    from cdp.tags.segments import known_tag_names

    with cache.lock:
        if cache.catalog is not None:
            return cache.catalog

    def distinct(name: str, *cols: str, limit: int = 2000) -> list[dict[str, Any]]:
        if not table_exists(spark, settings, name):
            return []
        df = read_table(spark, settings, name)
        if not all(c in df.columns for c in cols):
            return []
        return [r.asDict() for r in df.select(*cols).where(F.col(cols[0]).isNotNull()).distinct()
                .orderBy(*cols).limit(limit).collect()]

    try:
        tags = sorted(known_tag_names(settings))
    except ConfigError as exc:  # a broken conf/tags must not take the page down; validation will say why
        log.warning("tag catalog unavailable: %s", exc)
        tags = []
    skus = distinct("gold_order_facts", "sku_id", "sku_name", "category")
    seen: set[str] = set()
    unique_skus = [s for s in skus if not (s["sku_id"] in seen or seen.add(s["sku_id"]))]  # type: ignore[func-returns-value]
    result = {
        "attributes": [{"name": k, "kind": v} for k, v in ATTRIBUTES.items()],
        "lifecycle_stages": list(LIFECYCLE_STAGES),
        "rfm_segments": list(RFM_SEGMENTS),
        "channels": list(CHANNELS),
        "tags": tags,
        "models": distinct("gold_model_scores", "model", "grade", limit=200),
        "skus": unique_skus,
        "categories": sorted({s["category"] for s in skus if s["category"]}),
        "stores": [r["store_id"] for r in distinct("gold_order_facts", "store_id")],
        "brands": [r["brand_id"] for r in distinct("gold_order_facts", "brand_id")],
    }
    with cache.lock:
        cache.catalog = result
    return result
