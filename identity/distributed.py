"""Connected components in Spark (large-star / small-star), for identifier graphs larger than one machine.

Algorithm: the "alternating" algorithm of Kiveris, Lattanzi, Mirrokni, Rastogi, Vassilvitskii, *Connected
Components in MapReduce and Beyond*, ACM SoCC 2014 (section 3). Nodes are integers; a node's label is the
smallest node of its component, so labels are deterministic and equal `graph.resolve`'s.

1. Start from the edge set without self loops (duplicates and direction do not matter).
2. **Large-star**: for every node u with neighbourhood N(u), let m(u) = min(N(u) + {u}); connect every
   neighbour v > u to m(u) (emit (v, m(u))).
3. **Small-star**: orient every edge from its larger to its smaller end; for every node u with smaller
   neighbours S(u), let m = min(S(u)); connect u and every v in S(u) to m (emit (v, m) for v != m, and (u, m)).
4. Repeat 2-3 until the graph is a forest of stars centred on each component's minimum: no node has both a
   smaller and a larger neighbour, and no node has two smaller neighbours (checked in the step-2 aggregation).
   The paper proves O(log^2 n) rounds; identity graphs (small components, short paths) take a handful.
5. label(u) = m(u) of the final star forest; nodes without edges are their own label.

Every round's edge set is checkpointed (`localCheckpoint` by default, `checkpoint` with a checkpoint dir on
clusters with executor loss), so the lineage stays one round long.

Guardrail limits (`resolve_spark`): components are computed in Spark without limits; per-component type counts
are aggregated in Spark; only the components that break a limit (typically 1-3 %, each small) are collected
to the driver and re-run through `graph.resolve`'s sequential constrained union-find, and their labels and edge
decisions are joined back. This is exact because a component within the limits never drops an edge (see
`cdp.identity.graph`), and it keeps the driver's share small; a graph whose *violating* part alone did not fit
the driver would need the pipeline's shared-identifier detection to cut hubs first (it does).

    >>> labels = spark_components(spark, spark.createDataFrame([(1, 2), (3, 2), (7, 8)], "src long, dst long"))
    ...                                                                     # doctest: +SKIP
    >>> sorted(map(tuple, labels.collect()))                                # doctest: +SKIP
    [(1, 1), (2, 1), (3, 1), (7, 7), (8, 7)]
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from cdp.errors import CdpError
from cdp.identity.graph import GraphInputError, Resolution, _validate
from cdp.identity.graph import resolve as resolve_array

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

ENGINES = ("array", "spark")
CHECKPOINTS = ("local", "reliable", "none")


class ComponentsDidNotConvergeError(CdpError):
    """Large-star/small-star did not reach a star forest within max_iterations."""


def _checkpoint(df: DataFrame, mode: str) -> DataFrame:
    if mode == "local":
        return df.localCheckpoint(eager=True)
    if mode == "reliable":
        return df.checkpoint(eager=True)
    return df.cache()


def spark_components(spark: SparkSession, edges: DataFrame, nodes: DataFrame | None = None, *,
                     src: str = "src", dst: str = "dst", node: str = "node", max_iterations: int = 60,
                     checkpoint: str = "local") -> DataFrame:
    """Connected components of an undirected graph given as integer edges -> DataFrame[node long, label long].

    label = the smallest node of the component. `nodes` (column `node`) adds nodes without edges (the result
    covers the union of `nodes` and the edges' ends).
    checkpoint: "local" (localCheckpoint, default), "reliable" (needs spark.sparkContext.setCheckpointDir) or
    "none" (cache only; lineage grows, for tiny graphs).
    """
    from pyspark.sql import functions as F

    if checkpoint not in CHECKPOINTS:
        raise GraphInputError(f"unknown checkpoint mode {checkpoint!r}: use one of {CHECKPOINTS}")
    u, v = F.col("u"), F.col("v")
    # 1. edge set without self loops, each edge once as (larger, smaller): both directions are then distinct
    current = _checkpoint(edges.select(F.greatest(src, dst).cast("long").alias("u"),
                                       F.least(src, dst).cast("long").alias("v"))
                          .where(u != v).distinct(), checkpoint)
    neighbourhood = None
    for iteration in range(1, max_iterations + 1):
        sym = current.unionByName(current.select(v.alias("u"), u.alias("v")))
        # 2a. per node: smallest neighbour and the star-forest test of step 4
        neighbourhood = _checkpoint(sym.groupBy("u").agg(
            F.least(F.min("v"), F.col("u")).alias("m"),
            F.sum(F.when(v < u, 1).otherwise(0)).alias("n_smaller"),
            F.sum(F.when(v > u, 1).otherwise(0)).alias("n_larger")), checkpoint)
        not_star = neighbourhood.where(((F.col("n_smaller") > 0) & (F.col("n_larger") > 0))
                                       | (F.col("n_smaller") > 1))
        if not_star.limit(1).count() == 0:
            log.info("large-star/small-star converged after %d round(s)", iteration)
            break
        # 2b. large-star: every larger neighbour v of u is connected to m(u)
        large = (sym.join(neighbourhood.select("u", "m"), "u").where(v > u)
                 .select(v.alias("a"), F.col("m").alias("b")))
        # 3. small-star: edges larger -> smaller (large-star emits them so: v > u >= m(u)), connect the node and
        #    its smaller neighbours to their minimum; the output is again (larger, smaller)
        oriented = large.select(F.col("a").alias("u"), F.col("b").alias("v")).distinct()
        star_min = oriented.groupBy("u").agg(F.min("v").alias("m"))
        joined = oriented.join(star_min, "u")
        small = (joined.where(v != F.col("m")).select(v.alias("u"), F.col("m").alias("v"))
                 .unionByName(star_min.select("u", F.col("m").alias("v"))))
        previous = current
        current = _checkpoint(small.distinct(), checkpoint)
        if checkpoint == "none":
            previous.unpersist()
    else:
        raise ComponentsDidNotConvergeError(
            f"no star forest after {max_iterations} rounds: raise max_iterations (graph diameter is very large)")

    # 5. labels; nodes without edges label themselves
    labels = neighbourhood.select(F.col("u").alias(node), F.col("m").alias("label"))
    if nodes is not None:
        all_nodes = nodes.select(F.col(node).cast("long").alias(node)).distinct()
        labels = (all_nodes.join(labels, node, "full")
                  .select(node, F.coalesce(F.col("label"), F.col(node)).alias("label")))
    return labels


def resolve_spark(spark: SparkSession, nodes: DataFrame, edges: DataFrame, type_limits: np.ndarray, *,
                  checkpoint: str = "local") -> tuple[DataFrame, DataFrame]:
    """`graph.resolve` semantics on DataFrames: nodes[node, node_type], edges[src, dst, rank, ...].

    Returns (labels: DataFrame[node, label], edges with added columns kept (bool), reason (tinyint),
    conflict_type (smallint, -1 when kept)). Only the components that break a limit are collected to the
    driver (see the module docstring).
    """
    from pyspark.sql import functions as F

    limits = np.asarray(type_limits, dtype=np.int64)
    labels = spark_components(spark, edges, nodes, checkpoint=checkpoint)
    limited = [(int(t), int(limits[t])) for t in np.flatnonzero(limits > 0)]
    plain_edges = (edges.withColumn("kept", F.lit(True)).withColumn("reason", F.lit(0).cast("tinyint"))
                   .withColumn("conflict_type", F.lit(-1).cast("smallint")))
    if not limited:
        return labels, plain_edges

    typed = nodes.select(F.col("node").cast("long").alias("node"), F.col("node_type").cast("int").alias("t"))
    limit_of = F.create_map(*[F.lit(x) for pair in limited for x in pair])
    violating = _checkpoint(
        typed.join(labels, "node").groupBy("label", "t").count()
        .where(F.col("count") > F.coalesce(limit_of[F.col("t")], F.lit(np.iinfo(np.int64).max)))
        .select("label").distinct(), checkpoint)
    n_violating = violating.count()
    if n_violating == 0:
        return labels, plain_edges

    # collect only the violating components (nodes and distinct edge keys) to the driver
    sub_nodes = (typed.join(labels, "node").join(violating, "label").select("node", "t")
                 .orderBy("node").toPandas())
    edge_key = edges.select(F.least(F.col("src"), F.col("dst")).cast("long").alias("lo"),
                            F.greatest(F.col("src"), F.col("dst")).cast("long").alias("hi"),
                            F.col("rank").cast("long").alias("rank")).distinct()
    sub_edges = (edge_key.join(labels.select(F.col("node").alias("lo"), "label"), "lo")
                 .join(violating, "label").select("lo", "hi", "rank").toPandas())
    log.info("guardrail limits: %d violating components (%d nodes, %d edges) resolved on the driver",
             n_violating, len(sub_nodes), len(sub_edges))
    node_ids = sub_nodes["node"].to_numpy(np.int64)              # ascending: local min == global min
    local_lo = np.searchsorted(node_ids, sub_edges["lo"].to_numpy(np.int64))
    local_hi = np.searchsorted(node_ids, sub_edges["hi"].to_numpy(np.int64))
    res = resolve_array(sub_nodes["t"].to_numpy(np.int64), local_lo, local_hi,
                        sub_edges["rank"].to_numpy(np.int64), limits)

    import pandas as pd

    fixed_labels = spark.createDataFrame(pd.DataFrame({"node": node_ids, "label": node_ids[res.labels]}),
                                         "node long, label long")
    labels = (labels.join(violating, "label", "left_anti").select("node", "label")
              .unionByName(fixed_labels))
    decisions = spark.createDataFrame(pd.DataFrame({
        "lo": sub_edges["lo"].to_numpy(np.int64), "hi": sub_edges["hi"].to_numpy(np.int64),
        "rank": sub_edges["rank"].to_numpy(np.int64), "d_kept": res.edge_kept,
        "d_reason": res.edge_reason.astype(np.int8), "d_conflict": res.edge_conflict_type.astype(np.int16)}),
        "lo long, hi long, rank long, d_kept boolean, d_reason tinyint, d_conflict smallint")
    keyed = (edges.withColumn("_lo", F.least(F.col("src"), F.col("dst")).cast("long"))
             .withColumn("_hi", F.greatest(F.col("src"), F.col("dst")).cast("long"))
             .withColumn("_rank", F.col("rank").cast("long")))
    out = keyed.join(decisions.withColumnsRenamed({"lo": "_lo", "hi": "_hi", "rank": "_rank"}),
                     ["_lo", "_hi", "_rank"], "left")
    out = (out.withColumn("kept", F.coalesce(F.col("d_kept"), F.lit(True)))
           .withColumn("reason", F.coalesce(F.col("d_reason"), F.lit(0)).cast("tinyint"))
           .withColumn("conflict_type", F.coalesce(F.col("d_conflict"), F.lit(-1)).cast("smallint"))
           .drop("_lo", "_hi", "_rank", "d_kept", "d_reason", "d_conflict"))
    return labels, out


def resolve(spark: SparkSession, node_type: np.ndarray, edge_src: np.ndarray, edge_dst: np.ndarray,
            edge_rank: np.ndarray, type_limits: np.ndarray, *, checkpoint: str = "local") -> Resolution:
    """`graph.resolve` computed in Spark: same arrays in, same `Resolution` out (for the config switch)."""
    node_type, src, dst, rank, limits = _validate(node_type, edge_src, edge_dst, edge_rank, type_limits)
    return resolve_spark_arrays(spark, node_type, src, dst, rank, limits, checkpoint=checkpoint)


def resolve_spark_arrays(spark: SparkSession, node_type, src, dst, rank, limits, *,
                         checkpoint: str = "local") -> Resolution:
    import pandas as pd

    n, e = node_type.size, src.size
    nodes = spark.createDataFrame(pd.DataFrame({"node": np.arange(n, dtype=np.int64),
                                                "node_type": node_type.astype(np.int32)}),
                                  "node long, node_type int")
    edges = spark.createDataFrame(pd.DataFrame({"eid": np.arange(e, dtype=np.int64), "src": src, "dst": dst,
                                                "rank": rank}), "eid long, src long, dst long, rank long")
    labels_df, edges_df = resolve_spark(spark, nodes, edges, limits, checkpoint=checkpoint)
    lab = labels_df.toPandas().sort_values("node")
    out = edges_df.select("eid", "kept", "reason", "conflict_type").toPandas().sort_values("eid")
    labels = np.arange(n, dtype=np.int64)
    labels[lab["node"].to_numpy(np.int64)] = lab["label"].to_numpy(np.int64)
    return Resolution(labels=labels, edge_kept=out["kept"].to_numpy(bool),
                      edge_reason=out["reason"].to_numpy(np.int8),
                      edge_conflict_type=out["conflict_type"].to_numpy(np.int16))


def resolver_for(engine: str, spark: SparkSession | None = None) -> Callable[..., Resolution]:
    """The components step selected by config: "array" (driver, default) or "spark" (large-star/small-star).

    The returned callable has `graph.resolve`'s signature (node_type, edge_src, edge_dst, edge_rank, type_limits).
    """
    if engine == "array":
        return resolve_array
    if engine == "spark":
        if spark is None:
            raise GraphInputError("components engine 'spark' needs the SparkSession")

        def _resolve(node_type, edge_src, edge_dst, edge_rank, type_limits, method: Any = None):
            return resolve(spark, node_type, edge_src, edge_dst, edge_rank, type_limits)
        return _resolve
    raise GraphInputError(f"unknown components engine {engine!r}: use one of {ENGINES}")
