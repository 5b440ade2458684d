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
    seen_at (earliest time the record was seen), display (masked label).
    """
    from pyspark.sql import functions as F

    parts = []
    for source_name, source in rules.sources.items():
        if source_name not in silver:
            continue
        df = silver[source_name]
        for id_type, ident in source.identifiers.items():
            rows = (_identifier_rows(df, id_type, ident)
                    .where(F.col("node_key").isNotNull())
                    .select(F.lit(source_name).alias("source"), F.col("source_record_id").cast("string"),
                            "node_key", F.lit(id_type).alias("id_type"),
                            F.lit(rules.priority(id_type)).cast("int").alias("id_priority"),
                            (F.col(ident.scope).cast("string") if ident.scope else F.lit(None).cast("string")).alias("scope"),
                            F.col(source.seen_at).cast("timestamp").alias("seen_at"),
                            anchor_at_col(F.col("dt"), F.col(source.seen_at).cast("timestamp")).alias("anchor_at")))
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
        df = silver[rule.source]
        if rule.where:
            df = df.where(F.expr(rule.where))
        left, right = source.identifiers[rule.left], source.identifiers[rule.right]
        df = _identifier_rows(df, rule.left, left).withColumnRenamed("node_key", "_left").drop("_value")
        df = _identifier_rows(df, rule.right, right).withColumnRenamed("node_key", "_right")
        pairs = (df.where(F.col("_left").isNotNull() & F.col("_right").isNotNull())
                 .select(F.least("_left", "_right").alias("src_key"), F.greatest("_left", "_right").alias("dst_key"),
                         F.col("source_record_id").cast("string").alias("source_record_id"),
                         F.col(source.seen_at).cast("timestamp").alias("seen_at"))
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
                       F.min("seen_at").alias("first_seen_at"), F.max("seen_at").alias("last_seen_at")))
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


def unique_pairs(edges: DataFrame) -> DataFrame:
    """One row per (src_key, dst_key): the most trusted rule's rank decides the pair's edge_rank."""
    from pyspark.sql import functions as F

    ranked = edges.withColumn("edge_rank", edge_rank_col(F.col("rank"), F.col("first_seen_at")))
    return ranked.groupBy("src_key", "dst_key").agg(F.min("edge_rank").alias("edge_rank"))
