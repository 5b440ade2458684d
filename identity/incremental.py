"""Incremental identity runs as pure DataFrame transforms: update the graph for the records that changed.

A full resolution reduces all silver to records (`edges.record_keys`) and their distinct identifier
combinations (`edges.identifier_combos`) and derives nodes and edges from them. Those two frames are the state a
daily run starts from (tables `identity_record_state`, `identity_combo_state`). A daily run then reads only the
silver rows of the *touched* records (changed since the last run, or newly inside the run's date window) and:

1. replaces the touched records in the record state (a record whose rows are gone leaves it);
2. derives the node and edge rows of the touched records over their persisted form (the contribution that goes
   out) and over their current form (the contribution that comes in), in one pass kept apart by a group column;
3. patches the persisted row of every identifier and link they carry (`patch_rows`): the aggregates (first/last
   seen, anchor, record count, sample record) are mins, maxes and sums, so the persisted row combined with the
   new rows equals the row over all records; a count is also exact after a subtraction, and so is a min (max)
   unless the outgoing records held the extreme and the incoming ones do not reach it again;
4. recomputes those few identifiers (and every edge touching them) from all records that carry them
   (`graph_from_combos` on that subset, a scan of the record state). Nodes and edges no touched record carries
   are kept as persisted.

This is exact, not an approximation: a node's aggregates are over the records that carry it, and an edge's over
the records that carry both ends, so all of them are in the subset whenever one end is recomputed. On a typical
day nearly all touched records are new, a re-delivered record usually carries its identifiers with the same
times, and step 4 has nothing to do. The busy-identifier guard
(`max_records_per_day`) keeps the (node, source, day) counts above the limit; the days a change touches are
counted again from silver (`update_busy_days`).

    >>> nodes, edges, touched = update_graph(records, combos_of, combo_ids, removed, added, nodes_before,
    ...                                      edges_before, rules)                         # doctest: +SKIP
"""
from __future__ import annotations

import logging
from functools import reduce
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from cdp.identity.config import IdentityRules

log = logging.getLogger(__name__)

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


def combos_with_keys(state: DataFrame, fresh: dict[str, DataFrame], schemas: dict, keys: DataFrame,
                     materialise: Callable[[DataFrame], DataFrame] = lambda df: df) -> dict[str, DataFrame]:
    """Per source, the combinations (source, ck1, ck2, combo) whose COMBO_KEY is in `keys` (a few rows): the
    persisted ones (`state`, the JSON table) in one scan for all sources, then parsed per source (`schemas`,
    as in `combos_from_state`), and the run's new ones (`fresh`: per source, not persisted yet)."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import COMBO_KEY

    keys = F.broadcast(keys.select(*COMBO_KEY))
    persisted = combos_from_state(materialise(state.join(keys, list(COMBO_KEY), "left_semi")), schemas)
    return {name: persisted[name].unionByName(fresh[name].join(keys, list(COMBO_KEY), "left_semi"))
            if name in fresh else persisted[name] for name in persisted}


def combos_from_state(state: DataFrame, schemas: dict) -> dict[str, DataFrame]:
    """Per source (of `schemas`: source -> combo struct type, `edges.combo_schema`): source, ck1, ck2, combo."""
    from pyspark.sql import functions as F

    return {name: state.where(F.col("source") == name)
            .select("source", "ck1", "ck2", F.from_json("combo_json", schema).alias("combo"))
            for name, schema in schemas.items()}


def nodes_from_table(identity_nodes: DataFrame, rules: IdentityRules) -> DataFrame:
    """The graph columns of persisted `identity_nodes` rows (the columns of `edges.build_nodes`)."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import priority_of_type

    return identity_nodes.select("node_key", "id_type", priority_of_type(F.col("id_type"), rules).alias("id_priority"),
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


def update_graph(records: DataFrame, combos_of: Callable[[DataFrame], dict[str, DataFrame]], combo_ids: DataFrame,
                 removed: DataFrame, added: DataFrame, nodes_before: DataFrame, edges_before: DataFrame, rules: IdentityRules,
                 materialise: Callable[[DataFrame], DataFrame] = lambda df: df) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Nodes and edges after replacing the touched records, and the node keys the touched records carry (before
    or after).

    records: the record state after the replacement (`replace_records`); combos_of: given a frame of COMBO_KEY
    rows, per source the combinations (source, ck1, ck2, combo) with those keys (`combos_with_keys`);
    combo_ids: the identifiers of every combination (`edges.combo_identifiers`, all sources);
    removed: the persisted record-state rows of the touched records that were in the state (their contribution
    goes out); added: the current record-state rows of the touched records (their contribution comes in);
    nodes_before / edges_before: the persisted graph (`nodes_from_table`, `edges_from_table`).

    Every aggregate of a node or an edge is a min, a max or a sum over the records that carry it, so the rows of
    the touched identifiers are patched (`patch_rows`): the removed records' contribution is taken out of the
    persisted row and the added records' put in. Taking a value out of a min (or a max) is exact unless the
    removed records held the extreme and the added ones do not reach it again; only those identifiers (and the
    ends of such edges) are recomputed from every record that carries them, which scans the record state.
    """
    from pyspark.sql import functions as F

    from cdp.identity.edges import COMBO_KEY, graph_from_combos

    def graph_of(subset: DataFrame, by: tuple[str, ...] = ()) -> tuple[DataFrame, DataFrame]:
        # only the combinations of the subset are read (and their JSON parsed)
        keys = F.broadcast(materialise(record_combo_keys(subset).select(*COMBO_KEY).distinct()))
        return graph_from_combos(subset, combos_of(keys), rules, materialise=materialise, by=by)

    if removed.isEmpty():
        nodes_in, edges_in = (materialise(df) for df in graph_of(added))
        nodes_out = nodes_in.where(F.lit(False))
        edges_out = edges_in.where(F.lit(False))
    else:
        # both contributions in one pass over the combinations: `_incoming` keeps them apart
        sides = (removed.select(*RECORD_STATE_COLUMNS).withColumn("_incoming", F.lit(False))
                 .unionByName(added.select(*RECORD_STATE_COLUMNS).withColumn("_incoming", F.lit(True))))
        nodes_both, edges_both = (materialise(df) for df in graph_of(sides, by=("_incoming",)))
        nodes_in, nodes_out = (nodes_both.where(F.col("_incoming") == side).drop("_incoming") for side in (True, False))
        edges_in, edges_out = (edges_both.where(F.col("_incoming") == side).drop("_incoming") for side in (True, False))
    node_rows, node_redo = patch_rows(nodes_before, nodes_out, nodes_in, NODE_AGGREGATES, materialise)
    edge_rows, edge_redo = patch_rows(edges_before, edges_out, edges_in, EDGE_AGGREGATES, materialise)
    touched = materialise(nodes_out.select("node_key").unionByName(nodes_in.select("node_key")).distinct())
    nodes = nodes_before.join(F.broadcast(touched), "node_key", "left_anti").unionByName(node_rows)
    edge_key = list(EDGE_KEY)
    edges = (edges_before.join(F.broadcast(edges_out.select(*edge_key).unionByName(edges_in.select(*edge_key)).distinct()),
                               edge_key, "left_anti")
             .unionByName(edge_rows.select(*edges_before.columns)))
    redo = materialise(node_redo.unionByName(edge_redo.select(F.col("src_key").alias("node_key")))
                       .unionByName(edge_redo.select(F.col("dst_key").alias("node_key"))).distinct())
    recounted = redo.count()
    log.info("graph update: %d identifiers recounted from the record state", recounted)
    if recounted:
        hit = F.broadcast(redo)
        r_src = F.broadcast(redo.select(F.col("node_key").alias("src_key"), F.lit(True).alias("_r_src")))
        r_dst = F.broadcast(redo.select(F.col("node_key").alias("dst_key"), F.lit(True).alias("_r_dst")))
        subset = materialise(records_carrying(records, combo_ids, redo,
                                              keep=[c for c in records.columns if c not in RECORD_KEY]))
        nodes_new, edges_new = graph_of(subset)
        nodes = nodes.join(hit, "node_key", "left_anti").unionByName(nodes_new.join(hit, "node_key", "left_semi"))
        redone = (edges_new.join(r_src, "src_key", "left").join(r_dst, "dst_key", "left")
                  .where(F.col("_r_src").isNotNull() | F.col("_r_dst").isNotNull())
                  .select(*edges_before.columns))
        edges = (edges.join(r_src, "src_key", "left_anti").join(r_dst, "dst_key", "left_anti")
                 .unionByName(redone))
    return nodes, edges, touched


# key, columns kept from either side, then the aggregates by kind (min, max; `record_count` is the sum)
NODE_AGGREGATES = (("node_key",), ("id_type", "id_priority", "scope", "display"),
                   ("first_seen_at", "anchor_at"), ("last_seen_at",))
EDGE_KEY = ("src_key", "dst_key", "rule")
EDGE_AGGREGATES = (EDGE_KEY, ("source", "rank"), ("sample_record_id", "first_seen_at"), ("last_seen_at",))


def patch_rows(before: DataFrame, removed: DataFrame, added: DataFrame, aggregates: tuple[tuple[str, ...], ...],
               materialise: Callable[[DataFrame], DataFrame] = lambda df: df) -> tuple[DataFrame, DataFrame]:
    """Node (or edge) rows over all records, patched for a change of some records: `before` is the rows over the
    old records, `removed` the rows over the records that go (their old form), `added` the rows over the
    records that come (their new form), each a min / max / `record_count` sum per key.

    Returns the patched rows of every key in `removed` or `added` that can be patched exactly (a key no record
    carries any more is left out), and the keys that cannot: a min (max) the removed records reached, the added
    ones do not reach again and `before` does not beat strictly (another record may or may not hold the same
    value). Those need a recount over every record that carries them.

    `added` and `removed` are the day's rows: both go to the executors as broadcasts with the rows of `before`
    they meet, and `before` is streamed past them once, never shuffled. `materialise` is applied to the joined
    rows both results are cut from, so that scan runs once.
    """
    from pyspark.sql import functions as F

    key, kept, mins, maxes = (list(a) for a in aggregates)
    summed = ["record_count"]
    keys = removed.select(*key).unionByName(added.select(*key)).distinct()
    b = before.join(F.broadcast(keys), key, "left_semi").select(
        *key, *[F.col(c).alias(f"_b_{c}") for c in (*kept, *mins, *maxes, *summed)], F.lit(True).alias("_b"))
    o = removed.select(*key, *[F.col(c).alias(f"_o_{c}") for c in (*mins, *maxes, *summed)], F.lit(True).alias("_o"))
    a = added.select(*key, *[F.col(c).alias(f"_a_{c}") for c in (*kept, *mins, *maxes, *summed)])
    j = keys.join(F.broadcast(b), key, "left").join(F.broadcast(o), key, "left").join(F.broadcast(a), key, "left")

    def true(cond):
        return F.coalesce(cond, F.lit(False))

    rest = F.coalesce(F.col("_b_record_count"), F.lit(0)) - F.coalesce(F.col("_o_record_count"), F.lit(0))
    exact_values = [F.col(f"_o_{c}").isNull() | true(F.col(f"_b_{c}") < F.col(f"_o_{c}"))
                    | true(F.col(f"_a_{c}") <= F.col(f"_o_{c}")) for c in mins]
    exact_values += [F.col(f"_o_{c}").isNull() | true(F.col(f"_b_{c}") > F.col(f"_o_{c}"))
                     | true(F.col(f"_a_{c}") >= F.col(f"_o_{c}")) for c in maxes]
    # nothing removed: a plain combine; all the carrying records removed: the added rows alone; a removed
    # record the persisted rows do not know (cannot happen on a consistent state): recount
    exact = F.col("_o").isNull() | (F.col("_b").isNotNull() & ((rest == 0) | reduce(lambda x, y: x & y, exact_values, F.lit(True))))
    alone = F.col("_o").isNotNull() & (rest == 0)

    def pick(c, combine):
        return F.when(alone, F.col(f"_a_{c}")).otherwise(combine(f"_b_{c}", f"_a_{c}")).alias(c)

    j = materialise(j.withColumn("_exact", exact)
                    .withColumn("_count", (rest + F.coalesce(F.col("_a_record_count"), F.lit(0))).cast("long")))
    rows = (j.where(F.col("_exact") & (F.col("_count") > 0))
            .select(*key, *[F.coalesce(f"_b_{c}", f"_a_{c}").alias(c) for c in kept],
                    *[pick(c, F.least) for c in mins], *[pick(c, F.greatest) for c in maxes],
                    F.col("_count").alias("record_count")))
    return rows, j.where(~F.col("_exact")).select(*key)


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
