"""What the console reads from the lake: profile 360 and overview pictures, as small JSON-ready dicts.

Every read goes through `cdp.lake.read_table` by logical name, filters with Column expressions (request values
are bound as literals, never formatted into SQL), and returns at most a bounded number of rows to the driver.
Missing tables (a stage that has not run yet) give empty sections, not errors.

Masking: gold tables hold no raw personal values; the console additionally masks identifiers that are
personal by themselves (member cards, WeCom external user ids, platform buyer ids) and shows hashes only as a
short prefix. No role sees raw mobiles, unionids, openids or names here: they live only in bronze/`pii_values`.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cdp.lake import read_table, table_exists
from cdp.privacy import MASKED_IDENTIFIER_FIELDS, mask_identifier

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

MAX_ORDERS = 200
MAX_ROWS = 500
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


def short_hash(value: str | None) -> str | None:
    """A keyed hash shown as `#` + its first 8 hex digits (enough to tell records apart, useless to reverse)."""
    return None if value is None else "#" + str(value)[:8]


def normalise_mobile(text: str) -> str | None:
    """Same normalisation as ingestion (docs/tables.md): strip separators and a +86/86/0086 prefix."""
    digits = re.sub(r"[\s\-.()（）]", "", text or "")
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            digits = digits[len(prefix):]
            break
    return digits if _MOBILE.match(digits) else None


def jsonable(value: Any) -> Any:
    """Spark Row values -> JSON-friendly values (dates as ISO text, decimals as float, rows as dicts)."""
    from pyspark.sql import Row

    if isinstance(value, Row):
        return {k: jsonable(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def rows(df: DataFrame, limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    return [jsonable(r) for r in df.limit(limit).collect()]


@dataclass
class LakeViews:
    """Reads for the console over one SparkSession and one lake. Small tables are cached on first use."""

    spark: SparkSession
    settings: Settings
    _cache: dict[str, DataFrame] = field(default_factory=dict)

    # --- plumbing ------------------------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        return table_exists(self.spark, self.settings, name)

    def table(self, name: str) -> DataFrame | None:
        if not self.has(name):
            return None
        return read_table(self.spark, self.settings, name)

    def refresh(self) -> None:
        """Forget cached tables (after a pipeline run wrote new versions)."""
        for df in self._cache.values():
            df.unpersist()
        self._cache.clear()

    # --- look-up -------------------------------------------------------------------------------------------
    def find_one_ids(self, *, one_id: str | None = None, member_card: str | None = None,
                     mobile_hash: str | None = None) -> list[str]:
        """One-IDs matching exactly one kind of key (the caller checks the role for mobiles)."""
        from pyspark.sql import functions as F

        profiles = self.table("gold_profiles")
        if profiles is None:
            return []
        if one_id is not None:
            df = profiles.where(F.col("one_id") == F.lit(one_id)).select("one_id")
        elif member_card is not None:
            df = profiles.where(F.exists("memberships", lambda m: m["member_card_no"] == F.lit(member_card)))
            df = df.select("one_id")
        elif mobile_hash is not None:
            parts = []
            for name in ("silver_crm_members", "silver_pos_lines", "silver_ecommerce_lines",
                         "silver_miniprogram_events"):
                t = self.table(name)
                if t is not None and "mobile_hash" in t.columns:
                    parts.append(t.where(F.col("mobile_hash") == F.lit(mobile_hash)).select("one_id"))
            if not parts:
                return []
            df = parts[0]
            for p in parts[1:]:
                df = df.unionByName(p)
            df = df.where(F.col("one_id").isNotNull())
        else:
            return []
        return sorted({r["one_id"] for r in df.distinct().limit(20).collect()})

    # --- profile 360 ---------------------------------------------------------------------------------------
    def profile(self, one_id: str, mask_cards: bool) -> dict[str, Any] | None:
        from pyspark.sql import functions as F

        profiles = self.table("gold_profiles")
        if profiles is None:
            return None
        found = profiles.where(F.col("one_id") == F.lit(one_id)).limit(1).collect()
        if not found:
            return None
        profile = jsonable(found[0])
        if mask_cards:
            for m in profile.get("memberships") or []:
                m["member_card_no"] = mask_identifier(m.get("member_card_no"))
        return {
            "profile": profile,
            "identities": self.identities(one_id, mask_cards),
            "orders": self.orders(one_id),
            "tags": self.tags(one_id),
            "lifecycle": self.lifecycle(one_id),
            "rfm": self._latest_for_one_id("gold_rfm", one_id, "as_of_date"),
            "scores": self.scores(one_id),
            "wecom": self.wecom(one_id, mask_cards),
            "identity_graph": self.identity_graph(one_id, mask_cards),
        }

    def tags(self, one_id: str) -> list[dict[str, Any]]:
        """The One-ID's tags of the latest computed date."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        t = self.table("gold_tags_long")
        if t is None:
            return []
        w = Window.partitionBy("one_id")
        df = (t.where(F.col("one_id") == F.lit(one_id)).withColumn("_last", F.max("computed_date").over(w))
              .where(F.col("computed_date") == F.col("_last")).drop("_last").orderBy("tag"))
        return rows(df)

    def _for_one_id(self, name: str, one_id: str, order: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        from pyspark.sql import functions as F

        t = self.table(name)
        if t is None:
            return []
        df = t.where(F.col("one_id") == F.lit(one_id))
        if order:
            df = df.orderBy(*order)
        return rows(df)

    def _latest_for_one_id(self, name: str, one_id: str, date_col: str) -> dict[str, Any] | None:
        from pyspark.sql import functions as F

        t = self.table(name)
        if t is None:
            return None
        got = t.where(F.col("one_id") == F.lit(one_id)).orderBy(F.col(date_col).desc()).limit(1).collect()
        return jsonable(got[0]) if got else None

    def identities(self, one_id: str, mask_cards: bool) -> list[dict[str, Any]]:
        """Distinct identifiers of a One-ID across silver sources, each masked: kind, shown value, source."""
        from pyspark.sql import functions as F

        specs = {  # table -> [(kind, column, how to show)]
            "silver_crm_members": [("member_card", "member_card_no", "card"), ("mobile", "mobile_masked", "as_is")],
            "silver_pos_lines": [("member_card", "member_card_no", "card"), ("mobile", "mobile_masked", "as_is")],
            "silver_miniprogram_events": [("openid", "openid_hash", "hash"), ("unionid", "unionid_hash", "hash"),
                                          ("mobile", "mobile_masked", "as_is"),
                                          ("member_card", "member_card_no", "card")],
            "silver_ecommerce_lines": [("buyer_id", "buyer_id", "mask"), ("mobile", "mobile_masked", "as_is")],
            "silver_wecom_contacts": [("external_userid", "external_userid", "mask"),
                                      ("unionid", "unionid_hash", "hash")],
        }
        found: dict[tuple[str, str], set[str]] = {}
        for name, columns in specs.items():
            t = self.table(name)
            if t is None:
                continue
            wanted = [c for _, c, _ in columns if c in t.columns]
            if not wanted:
                continue
            source = F.col("source") if "source" in t.columns else F.lit(name.removeprefix("silver_"))
            df = (t.where(F.col("one_id") == F.lit(one_id)).select(source.alias("_source"), *wanted).distinct())
            for r in df.limit(MAX_ROWS).collect():
                for kind, column, how in columns:
                    if column not in t.columns or r[column] is None:
                        continue
                    value = r[column]
                    shown = {"as_is": value, "hash": short_hash(value), "mask": mask_identifier(value),
                             "card": mask_identifier(value) if mask_cards else value}[how]
                    found.setdefault((kind, shown), set()).add(r["_source"])
        return [{"kind": k, "value": v, "sources": sorted(s)} for (k, v), s in sorted(found.items())]

    def orders(self, one_id: str) -> list[dict[str, Any]]:
        """Orders across channels on one timeline (newest first): one row per (channel, order), lines nested."""
        from pyspark.sql import functions as F

        facts = self.table("gold_order_facts")
        if facts is None:
            return []
        df = (facts.where(F.col("one_id") == F.lit(one_id))
              .groupBy("channel", "platform", "brand_id", "store_id", "order_id")
              .agg(F.min("paid_at").alias("paid_at"), F.min("paid_date").alias("paid_date"),
                   F.sum("amount").alias("amount"), F.max(F.col("is_return").cast("int")).cast("boolean")
                   .alias("has_return"),
                   F.sort_array(F.collect_list(F.struct("sku_id", "sku_name", "category", "quantity", "amount",
                                                        "is_return"))).alias("lines"))
              .orderBy(F.col("paid_at").desc(), "channel", "order_id"))
        return rows(df, MAX_ORDERS)

    def lifecycle(self, one_id: str) -> dict[str, Any]:
        return {"current": self._latest_for_one_id("gold_lifecycle", one_id, "as_of_date"),
                "transitions": self._for_one_id("gold_lifecycle_transitions", one_id, order=("changed_date",))}

    def scores(self, one_id: str) -> list[dict[str, Any]]:
        """Latest score per model."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        t = self.table("gold_model_scores")
        if t is None:
            return []
        w = Window.partitionBy("model").orderBy(F.col("scored_date").desc())
        df = (t.where(F.col("one_id") == F.lit(one_id)).withColumn("_n", F.row_number().over(w))
              .where("_n = 1").drop("_n").orderBy("model"))
        return rows(df)

    def wecom(self, one_id: str, mask_ids: bool) -> list[dict[str, Any]]:
        """The WeCom guides who added this customer (guide userid is staff data, shown as is)."""
        from pyspark.sql import functions as F

        t = self.table("silver_wecom_contacts")
        if t is None:
            return []
        cols = [c for c in ("guide_userid", "store_id", "external_userid", "added_at", "is_active",
                            "last_change_type", "tags") if c in t.columns]
        out = rows(t.where(F.col("one_id") == F.lit(one_id)).select(*cols).orderBy("guide_userid"))
        for r in out:
            if "external_userid" in r:
                r["external_userid"] = mask_identifier(r["external_userid"]) if mask_ids else r["external_userid"]
        return out

    def identity_graph(self, one_id: str, mask_ids: bool) -> dict[str, Any]:
        """Which records were joined and why: `{nodes: [{id, kind, label}], edges: [{source, target, rule, kept}]}`.

        Uses `cdp.identity.explain` when the identity stage provides it, else `identity_record_map` (records of
        the One-ID, linked through the identifiers they share).
        """
        from cdp.console.identity_adapter import explain_one_id

        return explain_one_id(self, one_id, mask_ids)

    # --- overview pictures ---------------------------------------------------------------------------------
    def rfm_grid(self) -> dict[str, Any]:
        """Counts per (r_score, fm_score) at the latest as_of_date, with the named segment of each cell."""
        from pyspark.sql import functions as F

        t = self.table("gold_rfm")
        if t is None:
            return {"as_of_date": None, "cells": []}
        latest = t.agg(F.max("as_of_date")).collect()[0][0]
        cells = (t.where(F.col("as_of_date") == F.lit(latest)).groupBy("r_score", "fm_score", "rfm_segment")
                 .agg(F.count("*").alias("customers")).orderBy("r_score", "fm_score", "rfm_segment"))
        return {"as_of_date": jsonable(latest), "cells": rows(cells, 200)}

    def lifecycle_funnel(self, days: int = 90) -> dict[str, Any]:
        """Customers per stage at the latest date, and per (date, stage) over the last `days` days."""
        from pyspark.sql import functions as F

        t = self.table("gold_lifecycle")
        if t is None:
            return {"as_of_date": None, "stages": [], "history": []}
        latest = t.agg(F.max("as_of_date")).collect()[0][0]
        stages = (t.where(F.col("as_of_date") == F.lit(latest)).groupBy("stage")
                  .agg(F.count("*").alias("customers")))
        since = latest - dt.timedelta(days=days)
        history = (t.where(F.col("as_of_date") > F.lit(since)).groupBy("as_of_date", "stage")
                   .agg(F.count("*").alias("customers")).orderBy("as_of_date", "stage"))
        return {"as_of_date": jsonable(latest), "stages": rows(stages, 50), "history": rows(history, 5000)}

    def segment_sizes(self) -> dict[str, Any]:
        """Members per segment at each segment's latest run, and pairwise overlaps between them."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        t = self.table("gold_segment_members")
        if t is None:
            return {"segments": [], "overlaps": []}
        w = Window.partitionBy("segment")
        latest = (t.withColumn("_last", F.max("run_date").over(w)).where(F.col("run_date") == F.col("_last"))
                  .select("segment", "one_id", "run_date"))
        sizes = latest.groupBy("segment", "run_date").agg(F.count("*").alias("members")).orderBy("segment")
        a, b = latest.alias("a"), latest.alias("b")
        overlaps = (a.join(b, (F.col("a.one_id") == F.col("b.one_id")) & (F.col("a.segment") < F.col("b.segment")))
                    .groupBy(F.col("a.segment").alias("segment_a"), F.col("b.segment").alias("segment_b"))
                    .agg(F.count("*").alias("members")).orderBy("segment_a", "segment_b"))
        return {"segments": rows(sizes, 200), "overlaps": rows(overlaps, 2000)}

    def data_quality(self, runs: int = 10) -> dict[str, Any]:
        """Accepted vs quarantined rows per source over the last `runs` ingest runs (ingest_run_summary), and the
        last `runs` identity stage runs (identity_run_summary: One-IDs, merges, splits, guardrails)."""
        from pyspark.sql import functions as F

        ident = self.table("identity_run_summary")
        identity_runs = [] if ident is None else rows(
            ident.orderBy(F.col("finished_at").desc())
            .select("run_date", "mode", "records_touched", "one_ids", "creates", "merges", "splits",
                    "nodes_shared", "nodes_blocked", "links_dropped_limit", "largest_profile_nodes",
                    "records_without_one_id", F.round("duration_s", 1).alias("duration_s")), runs)
        t = self.table("ingest_run_summary")
        if t is None:
            return {"runs": [], "identity_runs": identity_runs}
        last = [r["run_date"] for r in t.select("run_date").distinct().orderBy(F.col("run_date").desc())
                .limit(runs).collect()]
        df = (t.where(F.col("run_date").isin(last))
              .groupBy("run_date", "source")
              .agg(F.sum("files").alias("files"), F.sum("rows_landed").alias("rows_landed"),
                   F.sum("rows_accepted").alias("rows_accepted"),
                   F.sum("rows_quarantined").alias("rows_quarantined"),
                   F.min(F.col("is_balanced").cast("int")).cast("boolean").alias("is_balanced"))
              .orderBy(F.col("run_date").desc(), "source"))
        return {"runs": rows(df, 1000), "identity_runs": identity_runs}


# Keys whose values identify a person by themselves: masked for roles without `profiles:lookup_mobile`.
MASKED_KEYS = MASKED_IDENTIFIER_FIELDS
HASH_KEYS = frozenset({"mobile_hash", "unionid_hash", "openid_hash", "remark_mobile_hashes", "value_hash"})


# Columns holding a delivered line as it came (quarantine_rows.raw_record): raw mobiles, names and openids
# inside free text that no masking by key can reach, so the console serves them to no role.
RAW_TEXT_KEYS = frozenset({"raw_record"})


def withhold_raw_text(row: dict[str, Any]) -> dict[str, Any]:
    """Replace RAW_TEXT_KEYS values by a note with their length (the rule and reason stay readable).

    >>> withhold_raw_text({"rule": "mobile_valid", "raw_record": "O1,1,S1,13912345678"})
    {'rule': 'mobile_valid', 'raw_record': '(withheld by the console: 19 characters as delivered, may hold personal data)'}
    """
    return {k: (f"(withheld by the console: {len(v)} characters as delivered, may hold personal data)"
                if k in RAW_TEXT_KEYS and isinstance(v, str) else v) for k, v in row.items()}


def mask_record(value: Any, key: str | None = None) -> Any:
    """Recursively mask identifier values in a JSON-ready structure (see MASKED_KEYS / HASH_KEYS).

    >>> mask_record({"one_id": "OID1", "memberships": [{"member_card_no": "M00012345"}]})
    {'one_id': 'OID1', 'memberships': [{'member_card_no': 'M0*****45'}]}
    """
    if isinstance(value, dict):
        return {k: mask_record(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_record(v, key) for v in value]
    if key in MASKED_KEYS and isinstance(value, str):
        return mask_identifier(value)
    if key in HASH_KEYS and isinstance(value, str):
        return short_hash(value)
    return value
