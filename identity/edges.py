"""The identifier graph as pure DataFrame transforms over silver: observations, nodes and edges with evidence.

An *observation* is one identifier seen in one source record (a POS line with a card gives one observation of
`member_card:<brand>:<card>`). Nodes are the distinct identifiers; an edge joins two identifiers seen together in
one source record under a declared link rule (conf/identity.yaml `link_rules`) and keeps its evidence.

Node keys (no raw personal data: mobiles, unionids and openids are already keyed hashes in silver):

    mobile:<mobile_hash>            unionid:<unionid_hash>          external_userid:<external_userid>
    member_card:<brand_id>:<card>   openid:<appid>:<openid_hash>    buyer_id:<platform>:<buyer_id>

    >>> obs = extract_observations({"pos": pos_df}, rules)         # doctest: +SKIP
    >>> edges = extract_edges({"pos": pos_df}, rules)               # doctest: +SKIP
"""
from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from cdp.identity.config import IdentityRules, SourceIdentifier

OBSERVATION_COLUMNS = ("source", "source_record_id", "node_key", "id_type", "id_priority", "scope", "seen_at",
                       "anchor_at", "display")
EDGE_COLUMNS = ("src_key", "dst_key", "rule", "source", "rank", "sample_record_id", "first_seen_at",
                "last_seen_at", "record_count")

# Offset that turns a rule rank into an int64 edge rank ordered first by rule rank, then by the time the link
# was first seen (older evidence first): edge_rank = rank * 2**32 + epoch_seconds(first_seen_at).
RANK_SHIFT = 2 ** 32


def _clean(col: Column) -> Column:
    from pyspark.sql import functions as F

    text = F.trim(col.cast("string"))
    return F.when(text != "", text)


def node_key_col(id_type: str, value: Column, scope: Column | None) -> Column:
    """`<type>:<value>` or `<type>:<scope>:<value>`; null when the value (or a needed scope) is missing."""
    from pyspark.sql import functions as F

    value = _clean(value)
    if scope is None:
        return F.concat(F.lit(f"{id_type}:"), value)
    return F.concat(F.lit(f"{id_type}:"), _clean(scope), F.lit(":"), value)


def display_col(id_type: str, node_key: Column) -> Column:
    """A masked label for a node, safe to print: never a raw phone, never a whole hash or card number."""
    from pyspark.sql import functions as F

    value = F.substring_index(node_key, ":", -1)
    prefix = F.substring_index(node_key, ":", 2) if id_type in ("member_card", "openid", "buyer_id") else F.lit(id_type)
    if id_type == "member_card":
        shown = F.concat(F.lit("****"), F.substring(value, -4, 4))
    elif id_type in ("mobile", "unionid", "openid"):
        shown = F.concat(F.lit("#"), F.substring(value, 1, 8))  # first 8 hex digits of the keyed hash
    else:
        shown = F.concat(F.substring(value, 1, 4), F.lit("****"))
    return F.concat(prefix, F.lit(":"), shown)


def display_of(id_type: Column, node_key: Column, type_names: tuple[str, ...]) -> Column:
    """`display_col` for a column of identifier types (one branch per type name)."""
    from pyspark.sql import functions as F

    out = None
    for name in type_names:
        out = (F.when(id_type == name, display_col(name, node_key)) if out is None
               else out.when(id_type == name, display_col(name, node_key)))
    return out if out is not None else F.lit(None).cast("string")


def anchor_at_col(dt: Column, seen_at: Column) -> Column:
    """Time that orders nodes for the One-ID anchor: the landing date `dt`, then the time of day it was seen.

    Ordering by landing date first makes the anchor of a profile the same whether the data came in daily
    increments or in one full rebuild: a node that first lands later is never older than the nodes already
    persisted, even when its record carries an earlier business time (late data).
    """
    from pyspark.sql import functions as F

    tod = F.coalesce(F.unix_timestamp(seen_at) - F.unix_timestamp(F.date_trunc("day", seen_at)), F.lit(0))
    return F.timestamp_seconds(F.unix_timestamp(dt.cast("timestamp")) + tod)


def _with_record_times(df: DataFrame, seen_at: str) -> DataFrame:
    """Adds the record's times to each of its rows: _seen_first, _seen_last (its earliest and latest row) and
    _anchor_at (earliest `anchor_at_col`). An observation's and a link's times are their record's."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    record = Window.partitionBy("source_record_id")
    seen = F.col(seen_at).cast("timestamp")
    return (df.withColumn("_seen_first", F.min(seen).over(record)).withColumn("_seen_last", F.max(seen).over(record))
            .withColumn("_anchor_at", F.min(anchor_at_col(F.col("dt"), seen)).over(record)))


def _identifier_rows(df: DataFrame, id_type: str, ident: SourceIdentifier) -> DataFrame:
    """One row per (record, identifier value) with the node key (array columns exploded)."""
    from pyspark.sql import functions as F

    scope = F.col(ident.scope) if ident.scope else None
    if ident.array:
        df = df.withColumn("_value", F.explode_outer(F.col(ident.value)))
        value = F.col("_value")
    else:
        value = F.col(ident.value)
    return df.withColumn("node_key", node_key_col(id_type, value, scope))


def extract_observations(silver: dict[str, DataFrame], rules: IdentityRules) -> DataFrame:
    """One row per (source, source_record_id, node_key): every identifier of every source record.

    Columns: source, source_record_id, node_key, id_type, id_priority (0 = most trusted type), scope,
    seen_at (earliest time the record was seen), anchor_at, display (masked label).

    The identity stage computes the same from identifier combinations (`record_keys` and what follows); this
    row-by-row form serves the quality report and is the oracle of that path's tests.
    """
    from pyspark.sql import functions as F

    parts = []
    for source_name, source in rules.sources.items():
        if source_name not in silver:
            continue
        df = _with_record_times(silver[source_name], source.seen_at)
        for id_type, ident in source.identifiers.items():
            rows = (_identifier_rows(df, id_type, ident)
                    .where(F.col("node_key").isNotNull())
                    .select(F.lit(source_name).alias("source"), F.col("source_record_id").cast("string"),
                            "node_key", F.lit(id_type).alias("id_type"),
                            F.lit(rules.priority(id_type)).cast("int").alias("id_priority"),
                            (F.col(ident.scope).cast("string") if ident.scope else F.lit(None).cast("string")).alias("scope"),
                            F.col("_seen_first").alias("seen_at"), F.col("_anchor_at").alias("anchor_at")))
            parts.append(rows)
    if not parts:
        raise ValueError("no silver source table to read identifiers from")
    union = reduce(lambda a, b: a.unionByName(b), parts)
    # display is a function of (id_type, node_key): computed after the aggregation, not carried through it
    return (union.groupBy("source", "source_record_id", "node_key")
            .agg(F.first("id_type").alias("id_type"), F.first("id_priority").alias("id_priority"),
                 F.first("scope").alias("scope"), F.min("seen_at").alias("seen_at"),
                 F.min("anchor_at").alias("anchor_at"))
            .withColumn("display", display_of(F.col("id_type"), F.col("node_key"), rules.type_names))
            .select(*OBSERVATION_COLUMNS))


def build_nodes(observations: DataFrame, type_names: tuple[str, ...] = ()) -> DataFrame:
    """One row per node_key: id_type, id_priority, scope, display, first/last seen, anchor_at, number of records.

    `display` comes from the observations' column, or when they lack it from `display_of` over `type_names`
    (default: every known identifier type).
    """
    from pyspark.sql import functions as F

    if "display" in observations.columns:
        display = [F.first("display").alias("display")]
    else:
        display = []
    nodes = (observations.groupBy("node_key")
             .agg(F.first("id_type").alias("id_type"), F.first("id_priority").alias("id_priority"),
                  F.first("scope").alias("scope"), *display,
                  F.min("seen_at").alias("first_seen_at"), F.max("seen_at").alias("last_seen_at"),
                  F.min("anchor_at").alias("anchor_at"), F.count(F.lit(1)).alias("record_count")))
    if not display:
        from cdp.identity.config import IDENTIFIER_TYPES

        nodes = nodes.withColumn("display", display_of(F.col("id_type"), F.col("node_key"), type_names or IDENTIFIER_TYPES))
    return nodes.select("node_key", "id_type", "id_priority", "scope", "display", "first_seen_at", "last_seen_at",
                        "anchor_at", "record_count")


def extract_edges(silver: dict[str, DataFrame], rules: IdentityRules) -> DataFrame:
    """One row per (src_key, dst_key, rule) with src_key < dst_key: the links declared by `link_rules`.

    Evidence: source, rule rank, a sample source record id (the smallest), first/last seen, number of records.
    """
    from pyspark.sql import functions as F

    parts = []
    for rule in rules.link_rules:
        if rule.source not in silver:
            continue
        source = rules.sources[rule.source]
        df = _with_record_times(silver[rule.source], source.seen_at)
        if rule.where:
            df = df.where(F.expr(rule.where))
        left, right = source.identifiers[rule.left], source.identifiers[rule.right]
        df = _identifier_rows(df, rule.left, left).withColumnRenamed("node_key", "_left").drop("_value")
        df = _identifier_rows(df, rule.right, right).withColumnRenamed("node_key", "_right")
        pairs = (df.where(F.col("_left").isNotNull() & F.col("_right").isNotNull())
                 .select(F.least("_left", "_right").alias("src_key"), F.greatest("_left", "_right").alias("dst_key"),
                         F.col("source_record_id").cast("string").alias("source_record_id"),
                         F.col("_seen_first").alias("seen_at"), F.col("_seen_last").alias("seen_last"))
                 .withColumn("rule", F.lit(rule.name)).withColumn("source", F.lit(rule.source))
                 .withColumn("rank", F.lit(rule.rank).cast("int")))
        parts.append(pairs)
    if not parts:
        raise ValueError("no silver source table holds a link rule's identifiers")
    union = reduce(lambda a, b: a.unionByName(b), parts)
    # two aggregations instead of one with countDistinct (which Spark plans as an Expand doubling the rows):
    # first one row per (link, record), then per link
    per_record = (union.groupBy("src_key", "dst_key", "rule", "source_record_id")
                  .agg(F.first("source").alias("source"), F.first("rank").alias("rank"),
                       F.min("seen_at").alias("first_seen_at"), F.max("seen_last").alias("last_seen_at")))
    return (per_record.groupBy("src_key", "dst_key", "rule")
            .agg(F.first("source").alias("source"), F.first("rank").alias("rank"),
                 F.min("source_record_id").alias("sample_record_id"),
                 F.min("first_seen_at").alias("first_seen_at"), F.max("last_seen_at").alias("last_seen_at"),
                 F.count(F.lit(1)).alias("record_count"))
            .select(*EDGE_COLUMNS))


def edge_rank_col(rank: Column, first_seen_at: Column) -> Column:
    """int64 rank for the components step: rule rank first, then older evidence first."""
    from pyspark.sql import functions as F

    seconds = F.coalesce(F.unix_timestamp(first_seen_at), F.lit(0)).cast("long")
    return rank.cast("long") * F.lit(RANK_SHIFT) + seconds


# --- the identifier-combination path the identity stage runs ------------------------------------------------
# 15 M source records at 1M customers carry only about 3 M distinct identifier combinations (a member's POS
# orders repeat the same card and phone). The stage therefore reads each silver table once, reduces it to one row
# per record (with keys of the record's combinations) and one row per distinct combination, and derives nodes,
# edges and the guardrails' daily counts from combinations weighted by their number of records. The results are
# the same as `extract_observations` / `extract_edges` (tested): a record is counted once per identifier, and
# the times of an observation are the record's (its earliest and latest rows).
COMBO_KEY = ("source", "ck1", "ck2")   # source + two independent hashes of the combination (96 bits)
DAILY_COUNT_SCHEMA = "node_key string, id_type string, source string, day date, records long"
WEIGHT_COLUMNS = ("n", "sample_record_id", "first_seen_at", "last_first_seen_at", "last_seen_at", "anchor_at")


def _rule_flag(rule_name: str) -> str:
    return f"_where_{rule_name}"


def _combo_col(source_name: str, rules: IdentityRules) -> Column:
    """The identifier columns of one silver row (and each conditional link rule's verdict) as one struct."""
    from pyspark.sql import functions as F

    source = rules.sources[source_name]
    names = sorted({c for ident in source.identifiers.values() for c in (ident.value, ident.scope) if c})
    fields = [F.col(c).alias(c) for c in names]
    fields += [F.coalesce(F.expr(r.where).cast("boolean"), F.lit(False)).alias(_rule_flag(r.name))
               for r in rules.link_rules if r.source == source_name and r.where]
    return F.struct(*fields)


def combo_keys(source_name: str, rules: IdentityRules) -> tuple[Column, Column]:
    """ck1, ck2 of a silver row of `source_name`: two independent hashes of its identifier combination."""
    from pyspark.sql import functions as F

    combo = _combo_col(source_name, rules)
    return F.xxhash64(combo), F.hash(combo)


def _silver_rows(df: DataFrame, source_name: str, rules: IdentityRules) -> DataFrame:
    from pyspark.sql import functions as F

    seen_at = F.col(rules.sources[source_name].seen_at).cast("timestamp")
    combo = _combo_col(source_name, rules)
    ck1, ck2 = combo_keys(source_name, rules)
    one_id = F.col("one_id") if "one_id" in df.columns else F.lit(None).cast("string")
    brand = F.col("brand_id") if "brand_id" in df.columns else F.lit(None).cast("string")
    return df.select(F.lit(source_name).alias("source"), F.col("source_record_id").cast("string"),
                     combo.alias("combo"), ck1.alias("ck1"), ck2.alias("ck2"),
                     seen_at.alias("seen_at"), anchor_at_col(F.col("dt"), seen_at).alias("anchor_at"),
                     one_id.alias("one_id"), brand.alias("brand_id"))


def record_keys(silver: dict[str, DataFrame], rules: IdentityRules) -> DataFrame:
    """One row per source record: source, source_record_id, ckeys (sorted keys of its distinct identifier
    combinations), seen_first / seen_last (its earliest and latest rows), anchor_at, the state of the
    silver `one_id` its rows carry (rows, rows_without_one_id, min_one_id, max_one_id), and spans_brands: its rows
    carry more than one brand_id (two brands delivered one record id: docs/landing-contract.md asks for ids unique
    across brands, and the stage counts the records that are not)."""
    from pyspark.sql import functions as F

    parts = [_silver_rows(df, name, rules).drop("combo") for name, df in silver.items() if name in rules.sources]
    if not parts:
        raise ValueError("no silver source table to read identifiers from")
    return (reduce(lambda a, b: a.unionByName(b), parts)
            .groupBy("source", "source_record_id")
            .agg(F.array_sort(F.collect_set(F.struct("ck1", "ck2"))).alias("ckeys"),
                 F.min("seen_at").alias("seen_first"), F.max("seen_at").alias("seen_last"),
                 F.min("anchor_at").alias("anchor_at"), F.count(F.lit(1)).alias("rows"),
                 F.sum(F.col("one_id").isNull().cast("int")).alias("rows_without_one_id"),
                 F.min("one_id").alias("min_one_id"), F.max("one_id").alias("max_one_id"),
                 (F.min("brand_id") != F.max("brand_id")).alias("spans_brands")))


def identifier_combos(silver: dict[str, DataFrame], rules: IdentityRules) -> dict[str, DataFrame]:
    """Per source: one row per distinct identifier combination (source, ck1, ck2, combo)."""
    from pyspark.sql import functions as F

    return {name: (_silver_rows(df, name, rules).groupBy(*COMBO_KEY).agg(F.first("combo").alias("combo")))
            for name, df in silver.items() if name in rules.sources}


def weighted_combos(records: DataFrame, combos: DataFrame, source_name: str,
                    by: tuple[str, ...] = ()) -> tuple[DataFrame, DataFrame]:
    """The records of one source as identifier combinations with weights, in two frames:

    - one row per combination of the records with a single combination (nearly all): `n` records, the
      smallest record id, first / last of their first-seen times, latest time, earliest anchor;
    - one row per (record, combination) of the records whose rows carry several combinations, with n = 1 and
      the record id in `source_record_id` (their identifiers must be de-duplicated per record).
    Both carry the combination's columns (`combo.*`) and WEIGHT_COLUMNS. `by`: columns of `records` that split
    the weights into groups (the groups are kept apart all the way to `nodes_from_observations`).
    """
    from pyspark.sql import functions as F

    keyed = records.where(F.col("source") == F.lit(source_name))
    single = (keyed.where(F.size("ckeys") == 1)
              .select("source", *by, F.col("ckeys")[0]["ck1"].alias("ck1"), F.col("ckeys")[0]["ck2"].alias("ck2"),
                      "source_record_id", "seen_first", "seen_last", "anchor_at")
              .groupBy(*by, *COMBO_KEY)
              .agg(F.count(F.lit(1)).alias("n"), F.min("source_record_id").alias("sample_record_id"),
                   F.min("seen_first").alias("first_seen_at"), F.max("seen_first").alias("last_first_seen_at"),
                   F.max("seen_last").alias("last_seen_at"), F.min("anchor_at").alias("anchor_at"))
              .join(combos, list(COMBO_KEY))
              .select("source", *by, "combo.*", *WEIGHT_COLUMNS))
    multi = (keyed.where(F.size("ckeys") > 1)
             .select("source", *by, "source_record_id", F.explode("ckeys").alias("k"), "seen_first", "seen_last",
                     "anchor_at")
             .select("source", *by, "source_record_id", F.col("k.ck1").alias("ck1"), F.col("k.ck2").alias("ck2"),
                     F.lit(1).cast("long").alias("n"), F.col("source_record_id").alias("sample_record_id"),
                     F.col("seen_first").alias("first_seen_at"), F.col("seen_first").alias("last_first_seen_at"),
                     F.col("seen_last").alias("last_seen_at"), "anchor_at")
             .join(combos, list(COMBO_KEY))
             .select("source", *by, "source_record_id", "combo.*", *WEIGHT_COLUMNS))
    return single, multi


def _distinct_identifier_rows(df: DataFrame, id_type: str, ident: SourceIdentifier) -> DataFrame:
    from pyspark.sql import functions as F

    if ident.array:
        df = df.withColumn(ident.value, F.array_distinct(F.col(ident.value)))
    return _identifier_rows(df, id_type, ident)


def combo_observations(single: DataFrame, multi: DataFrame, source_name: str, rules: IdentityRules,
                       by: tuple[str, ...] = ()) -> DataFrame:
    """Weighted observations of one source: source, (by), node_key, id_type, id_priority, scope, WEIGHT_COLUMNS."""
    from pyspark.sql import functions as F

    source = rules.sources[source_name]
    out = []
    for df, per_record in ((single, False), (multi, True)):
        parts = []
        for id_type, ident in source.identifiers.items():
            parts.append(_distinct_identifier_rows(df, id_type, ident)
                         .where(F.col("node_key").isNotNull())
                         .select("source", *by, *(["source_record_id"] if per_record else []), "node_key",
                                 F.lit(id_type).alias("id_type"),
                                 F.lit(rules.priority(id_type)).cast("int").alias("id_priority"),
                                 (F.col(ident.scope).cast("string") if ident.scope
                                  else F.lit(None).cast("string")).alias("scope"), *WEIGHT_COLUMNS))
        rows = reduce(lambda a, b: a.unionByName(b), parts)
        if per_record:  # a record counts once per identifier, however many of its combinations carry it
            rows = rows.dropDuplicates(["source", *by, "source_record_id", "node_key"]).drop("source_record_id")
        out.append(rows)
    return out[0].unionByName(out[1])


def combo_links(single: DataFrame, multi: DataFrame, source_name: str, rules: IdentityRules,
                by: tuple[str, ...] = ()) -> DataFrame:
    """Weighted link evidence of one source: (by), src_key, dst_key, rule, source, rank, WEIGHT_COLUMNS."""
    from pyspark.sql import functions as F

    source = rules.sources[source_name]
    out = []
    for df, per_record in ((single, False), (multi, True)):
        parts = []
        for rule in (r for r in rules.link_rules if r.source == source_name):
            d = df.where(F.col(_rule_flag(rule.name))) if rule.where else df
            left, right = source.identifiers[rule.left], source.identifiers[rule.right]
            d = _distinct_identifier_rows(d, rule.left, left).withColumnRenamed("node_key", "_left").drop("_value")
            d = _distinct_identifier_rows(d, rule.right, right).withColumnRenamed("node_key", "_right")
            parts.append(d.where(F.col("_left").isNotNull() & F.col("_right").isNotNull())
                         .select(*by, *(["source_record_id"] if per_record else []),
                                 F.least("_left", "_right").alias("src_key"),
                                 F.greatest("_left", "_right").alias("dst_key"),
                                 F.lit(rule.name).alias("rule"), "source", F.lit(rule.rank).cast("int").alias("rank"),
                                 *WEIGHT_COLUMNS))
        if not parts:
            return None
        rows = reduce(lambda a, b: a.unionByName(b), parts)
        if per_record:
            rows = rows.dropDuplicates([*by, "source_record_id", "src_key", "dst_key", "rule"]).drop("source_record_id")
        out.append(rows)
    return out[0].unionByName(out[1])


def graph_from_combos(records: DataFrame, combos: dict[str, DataFrame], rules: IdentityRules,
                      materialise=lambda df: df, by: tuple[str, ...] = ()) -> tuple[DataFrame, DataFrame]:
    """Node rows (the columns of `build_nodes`) and edge rows (EDGE_COLUMNS) from `record_keys` and the
    per-source `identifier_combos`. `materialise` is applied to each source's weighted frames, which feed both
    (the stage passes a local checkpoint). `by`: columns of `records` that split them into groups, each with
    its own graph (the rows lead with the `by` columns): one pass for several record sets."""
    obs_parts, link_parts = [], []
    for name, source_combos in combos.items():
        single, multi = (materialise(df) for df in weighted_combos(records, source_combos, name, by))
        obs_parts.append(combo_observations(single, multi, name, rules, by))
        links = combo_links(single, multi, name, rules, by)
        if links is not None:
            link_parts.append(links)
    if not obs_parts or not link_parts:
        raise ValueError("no silver source table holds a link rule's identifiers")
    nodes = nodes_from_observations(reduce(lambda a, b: a.unionByName(b), obs_parts), rules.type_names, by)
    return nodes, edges_from_links(reduce(lambda a, b: a.unionByName(b), link_parts), by)


def nodes_from_observations(weighted: DataFrame, type_names: tuple[str, ...], by: tuple[str, ...] = ()) -> DataFrame:
    """identity node rows from weighted observations (the columns of `build_nodes`)."""
    from pyspark.sql import functions as F

    return (weighted.groupBy(*by, "node_key")
            .agg(F.first("id_type").alias("id_type"), F.first("id_priority").alias("id_priority"),
                 F.first("scope").alias("scope"), F.min("first_seen_at").alias("first_seen_at"),
                 F.max("last_first_seen_at").alias("last_seen_at"), F.min("anchor_at").alias("anchor_at"),
                 F.sum("n").alias("record_count"))
            .withColumn("display", display_of(F.col("id_type"), F.col("node_key"), type_names))
            .select(*by, "node_key", "id_type", "id_priority", "scope", "display", "first_seen_at", "last_seen_at",
                    "anchor_at", "record_count"))


def daily_record_counts(silver: dict[str, DataFrame], rules: IdentityRules, id_types: list[str]) -> DataFrame:
    """node_key, id_type, source, day, records: the distinct records of one source that carry the identifier in
    a row seen on that (UTC) day, for identifiers of `id_types` (the guardrails' `max_records_per_day`)."""
    from pyspark.sql import functions as F

    parts = []
    for source_name, source in rules.sources.items():
        if source_name not in silver:
            continue
        for id_type, ident in source.identifiers.items():
            if id_type not in id_types:
                continue
            parts.append(_identifier_rows(silver[source_name], id_type, ident)
                         .where(F.col("node_key").isNotNull())
                         .groupBy("node_key", F.to_date(F.col(source.seen_at).cast("timestamp")).alias("day"))
                         .agg(F.countDistinct(F.col("source_record_id").cast("string")).alias("records"))
                         .select("node_key", F.lit(id_type).alias("id_type"), F.lit(source_name).alias("source"),
                                 "day", "records"))
    if not parts:   # no limited type declared, or no silver table holds one
        return next(iter(silver.values())).sparkSession.createDataFrame([], DAILY_COUNT_SCHEMA)
    return reduce(lambda a, b: a.unionByName(b), parts)


def edges_from_links(weighted: DataFrame, by: tuple[str, ...] = ()) -> DataFrame:
    """identity edge rows (EDGE_COLUMNS) from weighted link evidence."""
    from pyspark.sql import functions as F

    return (weighted.groupBy(*by, "src_key", "dst_key", "rule")
            .agg(F.first("source").alias("source"), F.first("rank").alias("rank"),
                 F.min("sample_record_id").alias("sample_record_id"), F.min("first_seen_at").alias("first_seen_at"),
                 F.max("last_seen_at").alias("last_seen_at"), F.sum("n").alias("record_count"))
            .select(*by, *EDGE_COLUMNS))


def combo_identifiers(combos: DataFrame, source_name: str, rules: IdentityRules) -> DataFrame:
    """source, ck1, ck2, node_key, id_priority: every identifier of each combination of one source."""
    from pyspark.sql import functions as F

    source = rules.sources[source_name]
    flat = combos.select(*COMBO_KEY, "combo.*")
    parts = [_identifier_rows(flat, id_type, ident).where(F.col("node_key").isNotNull())
             .select(*COMBO_KEY, "node_key", F.lit(rules.priority(id_type)).cast("int").alias("id_priority"))
             for id_type, ident in source.identifiers.items()]
    return reduce(lambda a, b: a.unionByName(b), parts)


def combo_schema(silver: DataFrame, source_name: str, rules: IdentityRules):
    """The Spark type of the `combo` struct of one source (to read combinations back from their JSON state)."""
    return silver.select(_combo_col(source_name, rules).alias("combo")).schema["combo"].dataType


def combo_best_nodes(combos: DataFrame, source_name: str, rules: IdentityRules, node_one_ids: DataFrame) -> DataFrame:
    """source, ck1, ck2, best: the combination's most trusted identifier that has a One-ID
    (struct id_priority, node_key, one_id; the rule of `persist.record_one_ids`)."""
    from pyspark.sql import functions as F

    return best_of_identifiers(combo_identifiers(combos, source_name, rules)
                               .join(node_one_ids.select("node_key", "one_id"), "node_key"))


def best_of_identifiers(identifiers: DataFrame) -> DataFrame:
    """source, ck1, ck2, best from rows (COMBO_KEY, node_key, id_priority, one_id) of identifiers that have a
    One-ID: per combination the most trusted (id_priority, then node_key)."""
    from pyspark.sql import functions as F

    return identifiers.groupBy(*COMBO_KEY).agg(F.min(F.struct("id_priority", "node_key", "one_id")).alias("best"))


def priority_of_type(id_type: Column, rules: IdentityRules) -> Column:
    """The id_priority (0 = most trusted, `IdentityRules.priority`) of a column of identifier type names."""
    from pyspark.sql import functions as F

    priority = F.create_map(*[x for t in rules.type_names for x in (F.lit(t), F.lit(rules.priority(t)))])
    return priority[id_type].cast("int")


def priority_of_key(node_key: Column, rules: IdentityRules) -> Column:
    """The id_priority of an identifier from its node key (`<type>:...`, see `node_key_col`)."""
    from pyspark.sql import functions as F

    return priority_of_type(F.substring_index(node_key, ":", 1), rules)
