"""Segments: declared definitions (conf/segments/*.yaml), preview, run and export. The API the console calls.

A segment file:

    name: kyoho_not_black_vine
    label: 买过巨峰葡萄但没买过黑藤巨峰
    description: trial coupon for black-vine Kyoho
    brand_id: main                     # optional: consent is then checked on this brand's membership
    where:
      all:
        - bought: {sku_name_or_category...}
        - never_bought: {sku: SKU-HTJF}
    campaign:                          # optional: coupon redemptions flow back as a tag
      coupon_id: CP-HTJF-TRIAL
      feedback_tag: redeemed_htjf_trial
      days: 30

Python API (everything takes the SparkSession and Settings as parameters):

    definition = load_segment({"name": "x", "where": {...}}, settings)   # dict, YAML text, file or name
    result = preview(spark, settings, definition)          # count, by stage/channel/store, masked samples
    save_segment(definition, settings)                      # conf/segments/<name>.yaml
    run_segments(spark, settings, run_date)                 # gold_segment_members for the run date
    export_segment(spark, settings, "x", "wecom", "out.csv")  # consent-filtered, formula-safe CSV
"""
from __future__ import annotations

import csv
import datetime as dt
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal

import yaml

from cdp.errors import ConfigError
from cdp.tags.engine import (
    CampaignFeedback,
    Condition,
    DefinitionError,
    TagCatalog,
    _suggest,
    collect_problems,
    load_tag_catalog,
    ParseContext,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

SEGMENT_KEYS = ("name", "label", "description", "brand_id", "where", "campaign")
CAMPAIGN_KEYS = ("coupon_id", "feedback_tag", "start_date", "days")
EXPORT_KINDS = ("wecom", "unionid", "mobile_hash")
SORTED_SAMPLES_UP_TO = 1_000
SAMPLE_COLUMNS = ("one_id", "name_masked", "gender", "city", "lifecycle_stage", "rfm_segment", "channels",
                  "home_store_id", "order_count", "total_amount", "is_member", "is_wecom_added")


@dataclass(frozen=True)
class SegmentDefinition:
    """A validated segment. `to_yaml()` gives the declared form (what `save_segment` writes)."""
    name: str
    where: Condition
    label: str | None = None
    description: str | None = None
    brand_id: str | None = None
    campaign: CampaignFeedback | None = None
    source: str = "<inline>"

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        return F.coalesce(self.where.column(run_date), F.lit(False))

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for key in ("label", "description", "brand_id"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["where"] = self.where.to_yaml()
        if self.campaign:
            c = self.campaign
            out["campaign"] = {k: v for k, v in (("coupon_id", c.coupon_id), ("feedback_tag", c.feedback_tag),
                                                 ("start_date", c.start_date), ("days", c.days)) if v is not None}
        return out

    def describe(self) -> str:
        return self.where.describe()


# -------------------------------------------------------------------------------------------- load and validate
def parse_segment(raw: Any, source: str = "<inline>", known_tags: set[str] | None = None,
                  known_models: dict[str, tuple[str, ...]] | None = None) -> SegmentDefinition:
    """Validate one segment mapping; raise DefinitionError naming the source, the segment, each key and the fix.
    Tag and model references are checked when `known_tags` / `known_models` are given."""
    subject = "segment"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        subject = f"segment {raw['name']!r}"
    if not isinstance(raw, dict):
        raise DefinitionError(source, subject, [("", f"a segment is a mapping with name and where, got {raw!r}. "
                                                     "Fix: `name: my_segment` and `where: {...}`")])
    ctx = ParseContext(known_tags=known_tags, known_models=known_models)
    ctx.check_name(raw.get("name"), "segment", "name")
    ctx.check_keys(raw, SEGMENT_KEYS)
    for key in ("label", "description", "brand_id"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            ctx.fail(key, f"expected text, got {raw[key]!r}. Fix: quote it")
    where = None
    if "where" not in raw:
        ctx.fail("where", "required. Fix: `where: {all: [...]}` with the conditions members must meet")
    else:
        where = collect_problems(raw["where"], "where", ctx)
    campaign = _parse_campaign(raw.get("campaign"), raw.get("name"), ctx) if "campaign" in raw else None
    if ctx.problems or where is None:
        raise DefinitionError(source, subject, ctx.problems)
    return SegmentDefinition(name=raw["name"], where=where, label=raw.get("label"),
                             description=raw.get("description"), brand_id=raw.get("brand_id"),
                             campaign=campaign, source=source)


def _parse_campaign(raw: Any, segment: Any, ctx: ParseContext) -> CampaignFeedback | None:
    fix = "Fix: `campaign: {coupon_id: CP-1, feedback_tag: redeemed_cp_1, days: 30}`"
    if not isinstance(raw, dict):
        ctx.fail("campaign", f"expected a mapping, got {raw!r}. {fix}")
        return None
    bad = ctx.check_keys(raw, CAMPAIGN_KEYS, prefix="campaign.")
    name_ok = ctx.check_name(raw.get("feedback_tag"), "feedback_tag", "campaign.feedback_tag")
    days = raw.get("days", 30)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
        ctx.fail("campaign.days", f"expected whole days between 1 and 366, got {days!r}. {fix}")
    start = raw.get("start_date")
    if start is not None and not isinstance(start, dt.date):
        ctx.fail("campaign.start_date", f"expected a date YYYY-MM-DD, got {start!r}")
    coupon = raw.get("coupon_id")
    if coupon is not None and not isinstance(coupon, str):
        ctx.fail("campaign.coupon_id", f"expected text, got {coupon!r}. Fix: quote it")
    if bad or not name_ok or ctx.problems:
        return None
    return CampaignFeedback(segment=str(segment), feedback_tag=raw["feedback_tag"], coupon_id=coupon,
                            start_date=start, days=days)


def segments_dir(settings: Settings) -> Path:
    return settings.conf_path("segments")


def tag_catalog(settings: Settings) -> TagCatalog:
    return load_tag_catalog(settings.conf_path("tags"), known_model_grades(settings))


def _raw_segment_files(folder: Path) -> list[tuple[Path, Any]]:
    from cdp.config import read_yaml

    return [(path, read_yaml(path)) for path in sorted(folder.glob("*.yaml"))]


def known_tag_names(settings: Settings) -> set[str]:
    """Declared tags plus the feedback tags that segment campaigns declare."""
    names = set(tag_catalog(settings).names)
    for _, raw in _raw_segment_files(segments_dir(settings)):
        if isinstance(raw, dict) and isinstance(raw.get("campaign"), dict) and raw["campaign"].get("feedback_tag"):
            names.add(str(raw["campaign"]["feedback_tag"]))
    return names


def known_model_grades(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The models the models stage scores (gold_model_scores.model) and the grades each gives (conf/models.yaml)."""
    from cdp.models.config import load_models_config

    return load_models_config(settings).grade_names()


def load_segments(settings: Settings, names: Iterable[str] | None = None) -> list[SegmentDefinition]:
    """Load and validate every conf/segments/*.yaml (or only `names`); file stem must equal the name."""
    known = known_tag_names(settings)
    models = known_model_grades(settings)
    wanted = set(names) if names else None
    segments = []
    for path, raw in _raw_segment_files(segments_dir(settings)):
        seg = parse_segment(raw, str(path), known, models)
        if seg.name != path.stem:
            raise DefinitionError(str(path), f"segment {seg.name!r}", [("name", f"differs from the file name "
                                  f"{path.stem!r}. Fix: rename the file to {seg.name}.yaml or the segment")])
        if wanted is None or seg.name in wanted:
            segments.append(seg)
    if wanted:
        missing = wanted - {s.name for s in segments}
        if missing:
            raise ConfigError(f"{segments_dir(settings)}: no segment {sorted(missing)}; "
                              f"known: {sorted(p.stem for p, _ in _raw_segment_files(segments_dir(settings)))}")
    return segments


def load_segment(source: dict | str | Path, settings: Settings | None = None,
                 known_tags: set[str] | None = None) -> SegmentDefinition:
    """A segment from a dict (console), YAML text, a file path, or a name in conf/segments.

    Tag references are checked against `known_tags`, else the settings' declared tags when settings are given.
    """
    if known_tags is None and settings is not None:
        known_tags = known_tag_names(settings)
    models = known_model_grades(settings) if settings is not None else None
    if isinstance(source, dict):
        return parse_segment(source, "<inline>", known_tags, models)
    text = str(source)
    path = Path(text)
    if isinstance(source, Path) or text.endswith((".yaml", ".yml")) and "\n" not in text:
        from cdp.config import read_yaml

        return parse_segment(read_yaml(path), str(path), known_tags, models)
    if "\n" not in text and ":" not in text:
        if settings is None:
            raise ConfigError(f"segment {text!r}: give settings to look names up in conf/segments")
        candidate = segments_dir(settings) / f"{text}.yaml"
        if not candidate.exists():
            known = sorted(p.stem for p in segments_dir(settings).glob("*.yaml"))
            raise ConfigError(f"no segment {text!r} in {segments_dir(settings)}{_suggest(text, known)}; known: {known}")
        return load_segment(candidate, settings, known_tags)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError("<inline>", "segment", [("", f"not valid YAML: {exc}")]) from None
    return parse_segment(raw, "<inline>", known_tags, models)


def segment_yaml(definition: SegmentDefinition) -> str:
    return yaml.safe_dump(definition.to_yaml(), allow_unicode=True, sort_keys=False)


def save_segment(definition: SegmentDefinition, settings: Settings, overwrite: bool = False) -> Path:
    """Write the definition as conf/segments/<name>.yaml (the declared format); refuse to overwrite unless asked."""
    path = segments_dir(settings) / f"{definition.name}.yaml"
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists. Fix: choose another name or save with overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(segment_yaml(definition), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------- the base
@dataclass
class _Cached:
    key: tuple
    df: DataFrame
    as_of_date: dt.date
    checked_at: float = 0.0


# A cached base is trusted this long before its Delta version is checked again (reading the Delta log is a
# Spark job); `cdp tags build` in the same process drops the cache at once.
RECHECK_SECONDS = 10.0


_CACHE: dict[str, _Cached] = {}
_LOCK = threading.Lock()


def load_base(spark: SparkSession, settings: Settings, cache: bool = True) -> tuple[DataFrame, dt.date]:
    """The per-one_id base table written by `cdp tags build` (gold_segment_base), cached in memory while its
    Delta version is unchanged; returns (DataFrame, its as_of_date)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists, table_version

    path = settings.table_path("gold_segment_base")
    app = spark.sparkContext.applicationId
    with _LOCK:
        hit = _CACHE.get(path)
        if hit and hit.key[0] == app and time.monotonic() - hit.checked_at < RECHECK_SECONDS:
            return hit.df, hit.as_of_date
    if not table_exists(spark, settings, "gold_segment_base"):
        raise ConfigError("gold_segment_base does not exist yet. Fix: run `cdp tags build` (or the pipeline) first")
    key = (app, path, table_version(spark, settings, "gold_segment_base"))
    with _LOCK:
        hit = _CACHE.get(path)
        if hit and hit.key == key:
            hit.checked_at = time.monotonic()
            return hit.df, hit.as_of_date
        if hit:
            hit.df.unpersist()
        df = read_table(spark, settings, "gold_segment_base")
        as_of = df.select(F.max("as_of_date")).first()[0]
        if cache:
            df = df.persist(StorageLevel.MEMORY_AND_DISK)
            df.count()
            _CACHE[path] = _Cached(key, df, as_of, time.monotonic())
        return df, as_of


def clear_cache() -> None:
    with _LOCK:
        for hit in _CACHE.values():
            hit.df.unpersist()
        _CACHE.clear()


def members(base: DataFrame, definition: SegmentDefinition, run_date: dt.date) -> DataFrame:
    """Base rows of the segment's members on `run_date`."""
    return base.filter(definition.column(run_date))


# --------------------------------------------------------------------------------------------------- preview
@dataclass
class PreviewResult:
    segment: str
    as_of_date: dt.date
    count: int
    total_profiles: int | None
    by_stage: dict[str, int]
    by_channel: dict[str, int]
    by_store: list[tuple[str, int]]
    samples: list[dict[str, Any]]
    seconds: float
    definition: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["as_of_date"] = self.as_of_date.isoformat()
        out["by_store"] = [{"store_id": s, "count": n} for s, n in self.by_store]
        return out


def summarize(filtered: DataFrame) -> list[tuple[str | None, str | None, tuple[str, ...], int]]:
    """One small aggregation for the breakdowns: (stage, home store, channels) -> count."""
    from pyspark.sql import functions as F

    rows = (filtered.groupBy(F.col("lifecycle_stage").alias("stage"), F.col("home_store_id").alias("store"),
                             F.array_sort(F.coalesce(F.col("channels"), F.array().cast("array<string>")))
                             .alias("channels"))
            .count().collect())
    return [(r["stage"], r["store"], tuple(r["channels"]), int(r["count"])) for r in rows]


def preview(spark: SparkSession, settings: Settings, definition: SegmentDefinition | dict | str,
            samples: int = 5, top_stores: int = 10, with_total: bool = False) -> PreviewResult:
    """Count the segment on the cached base table, break it down by lifecycle stage, channel (a profile counts
    once per channel it uses; `none` = no purchase channel) and home store, and return a few masked samples.

    Sample profiles carry only masked or pseudonymous fields (one_id, name_masked, ...); never raw identifiers.
    """
    from pyspark.sql import functions as F

    start = time.perf_counter()
    if not isinstance(definition, SegmentDefinition):
        definition = load_segment(definition, settings)
    base, as_of = load_base(spark, settings)
    filtered = members(base, definition, as_of)
    counts = summarize(filtered)
    by_stage: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    by_store: dict[str, int] = {}
    for stage, store, channels, n in counts:
        by_stage[stage or "unknown"] = by_stage.get(stage or "unknown", 0) + n
        for ch in channels or ("none",):
            by_channel[ch] = by_channel.get(ch, 0) + n
        by_store[store or "none"] = by_store.get(store or "none", 0) + n
    total = sum(n for *_, n in counts)
    sample_rows: list[dict[str, Any]] = []
    if samples and total:
        columns = [c for c in SAMPLE_COLUMNS if c in base.columns]
        picked = filtered.select(*columns)
        # small segments: the first one_ids (stable output); large ones: the first rows found (no full sort)
        picked = picked.orderBy(F.col("one_id")) if total <= SORTED_SAMPLES_UP_TO else picked
        sample_rows = [r.asDict() for r in picked.limit(samples).collect()]
    total_profiles = base.count() if with_total else None
    stores = sorted(by_store.items(), key=lambda kv: (-kv[1], kv[0]))[:top_stores]
    return PreviewResult(
        segment=definition.name, as_of_date=as_of, count=total, total_profiles=total_profiles,
        by_stage=dict(sorted(by_stage.items(), key=lambda kv: -kv[1])),
        by_channel=dict(sorted(by_channel.items(), key=lambda kv: -kv[1])), by_store=stores,
        samples=sample_rows, seconds=round(time.perf_counter() - start, 3), definition=definition.describe())


# ------------------------------------------------------------------------------------------------------- run
def segment_members(base: DataFrame, segments: list[SegmentDefinition], run_date: dt.date) -> DataFrame:
    """gold_segment_members rows for `run_date`: one row per (segment, one_id)."""
    from functools import reduce

    from pyspark.sql import functions as F

    parts = [members(base, s, run_date).select(F.lit(s.name).alias("segment"), "one_id",
                                              F.lit(run_date).alias("run_date")) for s in segments]
    return reduce(lambda a, b: a.unionByName(b), parts)


def run_segments(spark: SparkSession, settings: Settings, run_date: dt.date | None = None,
                 names: Iterable[str] | None = None) -> dict[str, Any]:
    """Materialise the segments (all, or `names`) into gold_segment_members for the run date, replacing that
    date's rows of those segments (idempotent). The base must have been built for the same date."""
    from pyspark.sql import functions as F

    from cdp.lake import overwrite_table, read_table, table_exists
    from cdp.tags.retention import SEGMENT_TABLES, apply_retention

    segments = load_segments(settings, names)
    if not segments:
        return {"segments": 0}
    base, as_of = load_base(spark, settings, cache=False)
    run_date = run_date or as_of
    if run_date != as_of:
        raise ConfigError(f"gold_segment_base is for {as_of}, not {run_date}. "
                          f"Fix: run `cdp tags build --date {run_date}` first")
    rows = segment_members(base, segments, run_date)
    where = f"run_date = '{run_date.isoformat()}'"
    if names:
        quoted = ", ".join(f"'{s.name}'" for s in segments)
        where += f" AND segment IN ({quoted})"
    exists = table_exists(spark, settings, "gold_segment_members")
    overwrite_table(rows, settings, "gold_segment_members", partition_by=("run_date",),
                    replace_where=where if exists else None)
    written = read_table(spark, settings, "gold_segment_members").filter(F.col("run_date") == F.lit(run_date))
    counts = {r["segment"]: int(r["count"]) for r in written.groupBy("segment").count().collect()}
    sizes = {s.name: counts.get(s.name, 0) for s in segments}
    log.info("segments for %s: %s", run_date, sizes)
    # last: the partition just written is never older than the retention (conf/tags.yaml)
    retention = apply_retention(spark, settings, run_date, SEGMENT_TABLES)
    return {"run_date": run_date.isoformat(), "segments": sizes, "retention_kept_from": retention}


# ---------------------------------------------------------------------------------------------------- export
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """CSV cell text that a spreadsheet will not run as a formula: a leading = + - @ tab or CR gets a `'`
    prefix (OWASP "CSV injection"), e.g. '=HYPERLINK("http://x")' -> "'=HYPERLINK(...)"."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def consented(members_df: DataFrame, profiles: DataFrame, brand_id: str | None) -> DataFrame:
    """Members with marketing consent: any brand, or the segment's brand when it names one. Adds `is_consented`."""
    from pyspark.sql import functions as F

    if brand_id:
        ok = F.exists(F.coalesce(F.col("memberships"), F.array()),
                      lambda m: (m["brand_id"] == F.lit(brand_id)) & F.coalesce(m["marketing_consent"], F.lit(False)))
    else:
        ok = F.coalesce(F.col("has_marketing_consent"), F.lit(False))
    return members_df.join(profiles.select("one_id", ok.alias("is_consented")), "one_id", "left").select(
        "one_id", F.coalesce("is_consented", F.lit(False)).alias("is_consented"))


def identifiers(kind: str, tables: dict[str, DataFrame]) -> DataFrame:
    """(one_id, export columns...) for an export kind from the silver tables present in `tables`:
    wecom -> external_userid, guide_userid, store_id (active contacts); unionid -> unionid (raw, from
    pii_values); mobile_hash -> mobile_hash."""
    from functools import reduce

    from pyspark.sql import functions as F

    if kind == "wecom":
        c = tables["silver_wecom_contacts"]
        return (c.filter(F.coalesce(F.col("is_active"), F.lit(True)) & F.col("one_id").isNotNull())
                .select("one_id", "external_userid", "guide_userid", "store_id").distinct())
    if kind == "unionid":
        hashes = [tables[t].select("one_id", F.col("unionid_hash").alias("value_hash"))
                  for t in ("silver_miniprogram_events", "silver_wecom_contacts") if t in tables]
        if not hashes:
            raise ConfigError("no silver table with unionid_hash. Fix: run ingestion and identity first")
        pii = tables["pii_values"].filter(F.col("kind") == "unionid").select("value_hash", F.col("value").alias("unionid"))
        return (reduce(lambda a, b: a.unionByName(b), hashes)
                .filter(F.col("one_id").isNotNull() & F.col("value_hash").isNotNull()).distinct()
                .join(pii, "value_hash").select("one_id", "unionid").distinct())
    if kind == "mobile_hash":
        parts = [tables[t].select("one_id", "mobile_hash") for t in
                 ("silver_crm_members", "silver_pos_lines", "silver_miniprogram_events", "silver_ecommerce_lines")
                 if t in tables]
        if "silver_wecom_contacts" in tables:
            parts.append(tables["silver_wecom_contacts"].select(
                "one_id", F.explode_outer("remark_mobile_hashes").alias("mobile_hash")))
        if not parts:
            raise ConfigError("no silver table with mobile_hash. Fix: run ingestion and identity first")
        return (reduce(lambda a, b: a.unionByName(b), parts)
                .filter(F.col("one_id").isNotNull() & F.col("mobile_hash").isNotNull()).distinct())
    raise ConfigError(f"unknown export target {kind!r}. Fix: use one of {list(EXPORT_KINDS)}")


EXPORT_TABLES = {
    "wecom": ("silver_wecom_contacts",),
    "unionid": ("silver_miniprogram_events", "silver_wecom_contacts", "pii_values"),
    "mobile_hash": ("silver_crm_members", "silver_pos_lines", "silver_miniprogram_events",
                    "silver_ecommerce_lines", "silver_wecom_contacts"),
}


def write_csv(rows: Iterable[Any], columns: list[str], out: str | Path) -> int:
    """Write rows as UTF-8 CSV (with BOM so spreadsheets read Chinese text) with every cell made formula-safe."""
    count = 0
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([safe_cell(row[c]) for c in columns])
            count += 1
    return count


def export_segment(spark: SparkSession, settings: Settings, name: str,
                   to: Literal["wecom", "unionid", "mobile_hash"], out: str | Path,
                   run_date: dt.date | None = None) -> dict[str, Any]:
    """Write the activation file of segment `name` (members of its latest run, or of `run_date`) to `out`.

    Only members with marketing consent are exported; the summary reports how many were excluded for lack of
    consent and how many consenting members had no identifier of that kind. Rows stream to the driver
    (toLocalIterator), sorted for a stable file.
    """
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    if to not in EXPORT_KINDS:
        raise ConfigError(f"unknown export target {to!r}. Fix: use one of {list(EXPORT_KINDS)}")
    definition = load_segment(name, settings)
    if not table_exists(spark, settings, "gold_segment_members"):
        raise ConfigError("gold_segment_members does not exist. Fix: run `cdp segment run` first")
    all_members = read_table(spark, settings, "gold_segment_members").filter(F.col("segment") == definition.name)
    if run_date is None:
        run_date = all_members.agg(F.max("run_date")).first()[0]
        if run_date is None:
            raise ConfigError(f"segment {definition.name!r} has never been run. Fix: `cdp segment run {definition.name}`")
    else:
        members_table = read_table(spark, settings, "gold_segment_members")
        if members_table.where(F.col("run_date") == F.lit(run_date)).limit(1).count() == 0:
            latest = [r[0].isoformat() for r in members_table.select("run_date").distinct()
                      .orderBy(F.col("run_date").desc()).limit(3).collect()]
            raise ConfigError(f"no segment has members on {run_date.isoformat()}: segments were not run for that date "
                              f"(latest run dates: {', '.join(latest) or 'none'}). "
                              f"Fix: `cdp segment run --date {run_date.isoformat()}` or export another date")
    seg_members = all_members.filter(F.col("run_date") == F.lit(run_date)).select("one_id").distinct()
    profiles = read_table(spark, settings, "gold_profiles")
    flagged = consented(seg_members, profiles, definition.brand_id).cache()
    stats = flagged.agg(F.count("*").alias("members"),
                        F.sum(F.col("is_consented").cast("int")).alias("consented")).first()
    tables = {t: read_table(spark, settings, t) for t in EXPORT_TABLES[to] if table_exists(spark, settings, t)}
    ids = identifiers(to, tables)
    allowed = flagged.filter("is_consented").select("one_id")
    rows_df = allowed.join(ids, "one_id")
    columns = rows_df.columns
    rows_df = rows_df.orderBy(*columns)
    with_id = rows_df.select("one_id").distinct().count()
    written = write_csv(rows_df.toLocalIterator(), columns, out)
    flagged.unpersist()
    members_n, consented_n = int(stats["members"] or 0), int(stats["consented"] or 0)
    summary = {"segment": definition.name, "run_date": run_date.isoformat(), "to": to, "out": str(out),
               "members": members_n, "consented": consented_n, "excluded_no_consent": members_n - consented_n,
               "consented_without_identifier": consented_n - with_id, "rows": written}
    log.info("export %s", summary)
    return summary
