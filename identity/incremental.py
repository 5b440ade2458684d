"""Incremental identity runs as pure DataFrame transforms: update the graph for the records that changed.

A full resolution reduces all silver to records (`edges.record_keys`) and their distinct identifier
combinations (`edges.identifier_combos`) and derives nodes and edges from them. Those two frames are the state a
daily run starts from (tables `identity_record_state`, `identity_combo_state`). A daily run then reads only the
silver rows of the *touched* records (changed since the last run, or newly inside the run's date window) and:

1. replaces the touched records in the record state (a record whose rows are gone leaves it);
2. finds the *recomputed* nodes: every identifier of the combinations, before and after, of a touched record
   that was in the state already (re-delivered, changed or gone);
3. recomputes those nodes and every edge touching them from all records that carry a recomputed node
   (`graph_from_combos` on that subset);
4. adds the new records' contribution to every other node and edge they carry: the aggregates (first/last
   seen, anchor, record count, sample record) are mins, maxes and sums, so the persisted row combined with the
   new records' rows equals the row over all records (`combine_nodes`, `combine_edges`). Nodes and edges no
   touched record carries are kept as persisted.

This is exact, not an approximation: a node's aggregates are over the records that carry it, and an edge's over
the records that carry both ends, so all of them are in the subset whenever one end is recomputed. A changed
record cannot be patched (its old contribution to a min or a max cannot be taken out), hence step 3; on a
typical day nearly all touched records are new, and step 3 recomputes few identifiers (it still scans the
record state for the records that carry them, and is skipped when no touched record existed before). The busy-identifier guard
(`max_records_per_day`) keeps the (node, source, day) counts above the limit; the days a change touches are
counted again from silver (`update_busy_days`).

    >>> nodes, edges, touched = update_graph(records, combos, combo_ids, changed_keys, added, nodes_before,
    ...                                      edges_before, rules)                         # doctest: +SKIP
"""
from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cdp.identity.config import IdentityRules

RECORD_KEY = ("source", "source_record_id")
RECORD_STATE_COLUMNS = ("source", "source_record_id", "ckeys", "seen_first", "seen_last", "anchor_at")
COMBO_STATE_COLUMNS = ("source", "ck1", "ck2", "combo_json")
BUSY_DAY_COLUMNS = ("node_key", "id_type", "source", "day", "records")


# --- state <-> frames -----------------------------------------------------------------------------------------
def combos_to_state(combos: dict[str, DataFrame]) -> DataFrame:
    """One table for the combinations of every source: the `combo` struct (its columns differ per source) as
    JSON text (null fields omitted; read back with `combos_from_state`)."""
    from pyspark.sql import functions as F

    return reduce(lambda a, b: a.unionByName(b),
                  [c.select("source", "ck1", "ck2", F.to_json("combo").alias("combo_json")) for c in combos.values()])


def combos_from_state(state: DataFrame, schemas: dict) -> dict[str, DataFrame]:
    """Per source (of `schemas`: source -> combo struct type, `edges.combo_schema`): source, ck1, ck2, combo."""
    from pyspark.sql import functions as F

    return {name: state.where(F.col("source") == name)
            .select("source", "ck1", "ck2", F.from_json("combo_json", schema).alias("combo"))
            for name, schema in schemas.items()}


def nodes_from_table(identity_nodes: DataFrame, rules: IdentityRules) -> DataFrame:
    """The graph columns of persisted `identity_nodes` rows (the columns of `edges.build_nodes`)."""
    from pyspark.sql import functions as F

    priority = F.create_map(*[x for t in rules.identifier_types for x in (F.lit(t.name), F.lit(rules.priority(t.name)))])
    return identity_nodes.select("node_key", "id_type", priority[F.col("id_type")].cast("int").alias("id_priority"),
                                 "scope", "display", "first_seen_at", "last_seen_at", "anchor_at", "record_count")


def edges_from_table(identity_edges: DataFrame) -> DataFrame:
    """The link-rule edges (EDGE_COLUMNS) of persisted `identity_edges` rows (steward always-links are added
    again by every run from the overrides table)."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import EDGE_COLUMNS

    return identity_edges.where(F.col("rule") != "override_always_link").select(*EDGE_COLUMNS)


# --- the update -----------------------------------------------------------------------------------------------
def record_combo_keys(records: DataFrame) -> DataFrame:
    """source, source_record_id, ck1, ck2: one row per (record, combination)."""
    from pyspark.sql import functions as F

    return (records.select(*RECORD_KEY, F.explode("ckeys").alias("_k"))
            .select(*RECORD_KEY, F.col("_k.ck1").alias("ck1"), F.col("_k.ck2").alias("ck2")))


def records_carrying(records: DataFrame, combo_ids: DataFrame, node_keys: DataFrame,
                     keep: list[str] | tuple[str, ...] = ()) -> DataFrame:
    """source, source_record_id (and the `keep` columns) of every record with a combination that holds one of
    `node_keys`, in one pass over `records`."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import COMBO_KEY

    hit = (combo_ids.join(F.broadcast(node_keys.select("node_key").distinct()), "node_key")
           .select(*COMBO_KEY).distinct().localCheckpoint())
    exploded = (records.select(*RECORD_KEY, *keep, F.explode("ckeys").alias("_k"))
                .select(*RECORD_KEY, *keep, F.col("_k.ck1").alias("ck1"), F.col("_k.ck2").alias("ck2")))
    return (exploded.join(F.broadcast(hit), list(COMBO_KEY), "left_semi").select(*RECORD_KEY, *keep)
            .dropDuplicates(list(RECORD_KEY)))


def replace_records(before: DataFrame, touched: DataFrame, touched_now: DataFrame) -> DataFrame:
    """The record state after a run: `before` without the touched records, plus their current form
    (`touched_now`; a touched record with no silver row left is not in it and leaves the state)."""
    from pyspark.sql import functions as F

    return (before.join(F.broadcast(touched.select(*RECORD_KEY)), list(RECORD_KEY), "left_anti")
            .unionByName(touched_now.select(*RECORD_STATE_COLUMNS)))


def update_graph(records: DataFrame, combos: dict[str, DataFrame], combo_ids: DataFrame, changed_keys: DataFrame,
                 added: DataFrame, nodes_before: DataFrame, edges_before: DataFrame, rules: IdentityRules,
                 materialise: Callable[[DataFrame], DataFrame] = lambda df: df) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Nodes and edges after replacing the touched records, and the node keys whose aggregates or links changed.

    records: the record state after the replacement (`replace_records`); combos: per source, every combination
    (source, ck1, ck2, combo); combo_ids: their identifiers (`edges.combo_identifiers`, all sources);
    changed_keys: COMBO_KEY of the combinations, before and after, of the touched records that were in the state
    already (re-delivered, changed or gone); added: the record-state rows of the touched records that are new;
    nodes_before / edges_before: the persisted graph (`nodes_from_table`, `edges_from_table`).

    The identifiers of changed records are recomputed from every record carrying them (a changed record's old
    contribution cannot be taken out of a min or a max). A new record only adds to its identifiers' aggregates,
    and every aggregate is a min, a max or a sum, so the others are the persisted row combined with the new
    records' rows (`combine_nodes`, `combine_edges`), without reading the records that carry them already.
    """
    from pyspark.sql import functions as F

    from cdp.identity.edges import COMBO_KEY, graph_from_combos

    def graph_of(subset: DataFrame) -> tuple[DataFrame, DataFrame]:
        # only the combinations of the subset are read (and their JSON parsed)
        keys = F.broadcast(materialise(record_combo_keys(subset).select(*COMBO_KEY).distinct()))
        return graph_from_combos(subset, {name: c.join(keys, list(COMBO_KEY), "left_semi") for name, c in combos.items()},
                                 rules, materialise=materialise)

    recomputed = materialise(combo_ids.join(F.broadcast(changed_keys.select(*COMBO_KEY).distinct()), list(COMBO_KEY))
                             .select("node_key").distinct())
    hit = F.broadcast(recomputed)
    r_src = F.broadcast(recomputed.select(F.col("node_key").alias("src_key"), F.lit(True).alias("_r_src")))
    r_dst = F.broadcast(recomputed.select(F.col("node_key").alias("dst_key"), F.lit(True).alias("_r_dst")))

    def outside(edges: DataFrame) -> DataFrame:   # edges with no recomputed end
        return edges.join(r_src, "src_key", "left_anti").join(r_dst, "dst_key", "left_anti")

    nodes_add, edges_add = (materialise(df) for df in graph_of(added))
    nodes = combine_nodes(nodes_before.join(hit, "node_key", "left_anti"), nodes_add.join(hit, "node_key", "left_anti"))
    edges = combine_edges(outside(edges_before), outside(edges_add))
    if not recomputed.isEmpty():
        subset = materialise(records_carrying(records, combo_ids, recomputed,
                                              keep=[c for c in records.columns if c not in RECORD_KEY]))
        nodes_new, edges_new = graph_of(subset)
        nodes = nodes.unionByName(nodes_new.join(hit, "node_key", "left_semi"))
        redone = (edges_new.join(r_src, "src_key", "left").join(r_dst, "dst_key", "left")
                  .where(F.col("_r_src").isNotNull() | F.col("_r_dst").isNotNull())
                  .select(*edges_before.columns))
        edges = edges.unionByName(redone)
    return nodes, edges, materialise(recomputed.unionByName(nodes_add.select("node_key")).distinct())


def combine_nodes(before: DataFrame, added: DataFrame) -> DataFrame:
    """Node rows of the same records split in two frames, as one (min / max / sum).

    `added` is the day's rows (small): it goes to the executors as a broadcast, and `before` (every persisted
    node) is only streamed past it, never shuffled."""
    from pyspark.sql import functions as F

    key = ["node_key"]
    keys = F.broadcast(added.select(*key))
    hit = before.join(keys, key, "left_semi")
    a = added.select(*[F.col(c).alias(f"_a_{c}") if c not in key else F.col(c) for c in added.columns])
    j = a.join(F.broadcast(hit), key, "left")
    first = [F.coalesce(c, f"_a_{c}").alias(c) for c in ("id_type", "id_priority", "scope", "display")]
    both = j.select("node_key", *first,
                    F.least("first_seen_at", "_a_first_seen_at").alias("first_seen_at"),
                    F.greatest("last_seen_at", "_a_last_seen_at").alias("last_seen_at"),
                    F.least("anchor_at", "_a_anchor_at").alias("anchor_at"),
                    (F.coalesce("record_count", F.lit(0)) + F.coalesce("_a_record_count", F.lit(0)))
                    .cast("long").alias("record_count"))
    return before.join(keys, key, "left_anti").select(*both.columns).unionByName(both)


def combine_edges(before: DataFrame, added: DataFrame) -> DataFrame:
    """Edge rows (EDGE_COLUMNS) of the same records split in two frames, as one (min / max / sum); `added` is
    broadcast as in `combine_nodes`."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import EDGE_COLUMNS

    key = ["src_key", "dst_key", "rule"]
    keys = F.broadcast(added.select(*key))
    hit = before.join(keys, key, "left_semi")
    a = added.select(*[F.col(c).alias(f"_a_{c}") if c not in key else F.col(c) for c in added.columns])
    j = a.join(F.broadcast(hit), key, "left")
    both = j.select(*key, F.coalesce("source", "_a_source").alias("source"), F.coalesce("rank", "_a_rank").alias("rank"),
                    F.least("sample_record_id", "_a_sample_record_id").alias("sample_record_id"),
                    F.least("first_seen_at", "_a_first_seen_at").alias("first_seen_at"),
                    F.greatest("last_seen_at", "_a_last_seen_at").alias("last_seen_at"),
                    (F.coalesce("record_count", F.lit(0)) + F.coalesce("_a_record_count", F.lit(0)))
                    .cast("long").alias("record_count")).select(*EDGE_COLUMNS)
    return before.join(keys, key, "left_anti").select(*EDGE_COLUMNS).unionByName(both)


# --- busy identifiers -----------------------------------------------------------------------------------------
def over_limit_days(daily: DataFrame, rules: IdentityRules) -> DataFrame:
    """The (node, source, day) counts above the type's `max_records_per_day` (BUSY_DAY_COLUMNS)."""
    from pyspark.sql import functions as F

    from cdp.identity.guardrails import busy_limits

    limits = busy_limits(rules)
    if not limits:
        return daily.where(F.lit(False)).select(*BUSY_DAY_COLUMNS)
    limit = F.create_map(*[x for k, v in limits.items() for x in (F.lit(k), F.lit(v))])
    return daily.where(F.col("records") > limit[F.col("id_type")]).select(*BUSY_DAY_COLUMNS)


def update_busy_days(before: DataFrame, recounted: DataFrame, touched_days: DataFrame, rules: IdentityRules) -> DataFrame:
    """Busy days after a run: the persisted ones outside the touched (source, day) pairs, plus the recount of
    those pairs (`recounted`: `edges.daily_record_counts` over the silver rows of the touched days)."""
    from pyspark.sql import functions as F

    days = F.broadcast(touched_days.select(F.col("source").alias("_s"), F.col("day").alias("_d")).distinct())

    def on(df: DataFrame):   # null-safe: rows without a time count on a null day
        return (df["source"] == days["_s"]) & df["day"].eqNullSafe(days["_d"])

    before = before.select(*BUSY_DAY_COLUMNS)
    recounted = over_limit_days(recounted, rules)
    return (before.join(days, on(before), "left_anti")
            .unionByName(recounted.join(days, on(recounted), "left_semi")))
