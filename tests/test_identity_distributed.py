"""distributed: large-star/small-star in real Spark equals networkx and graph.resolve.

Many seeded random graphs are laid side by side (disjoint, indices offset) into one graph, so one Spark run
checks them all; a long shuffled path forces many rounds.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from test_identity_graph import random_graph

from cdp.identity.distributed import resolver_for, spark_components
from cdp.identity.graph import GraphInputError, resolve

LIMITS = np.array([1, 2, 0, 3], dtype=np.int32)


def disjoint_union(seeds, with_limits: bool):
    types, srcs, dsts, ranks, offset = [], [], [], [], 0
    for seed in seeds:
        node_type, src, dst, rank, _ = random_graph(seed, with_limits)
        types.append(node_type)
        srcs.append(src + offset)
        dsts.append(dst + offset)
        ranks.append(rank)
        offset += node_type.size
    # a path of 64 nodes with shuffled ids: large diameter, many large-star/small-star rounds
    perm = np.random.default_rng(0).permutation(64) + offset
    types.append(np.full(64, 2, dtype=np.int16))
    srcs.append(perm[:-1])
    dsts.append(perm[1:])
    ranks.append(np.zeros(63, dtype=np.int64))
    return (np.concatenate(types), np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ranks))


def networkx_labels(n, src, dst):
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(src.tolist(), dst.tolist()))
    labels = np.empty(n, dtype=np.int64)
    for members in nx.connected_components(graph):
        labels[list(members)] = min(members)
    return labels


@pytest.mark.spark
def test_spark_components_and_resolve_equal_networkx_and_array(spark):
    import pandas as pd

    # 1. no limits: spark_components (DataFrame in, DataFrame out) == networkx connected_components
    node_type, src, dst, rank = disjoint_union(range(30), with_limits=False)
    n = node_type.size
    edges = spark.createDataFrame(pd.DataFrame({"src": src, "dst": dst}), "src long, dst long")
    nodes = spark.createDataFrame(pd.DataFrame({"node": np.arange(n)}), "node long")
    got = spark_components(spark, edges, nodes).toPandas().sort_values("node")
    assert got["node"].tolist() == list(range(n))
    np.testing.assert_array_equal(got["label"].to_numpy(), networkx_labels(n, src, dst))

    # 2. with limits: resolve through the spark engine == graph.resolve (array) == networkx oracle, whole arrays
    node_type, src, dst, rank = disjoint_union(range(40, 60), with_limits=True)
    array = resolve(node_type, src, dst, rank, LIMITS)
    oracle = resolve(node_type, src, dst, rank, LIMITS, method="networkx")
    via_spark = resolve(node_type, src, dst, rank, LIMITS, method="spark", spark=spark)
    assert (~array.edge_kept).sum() > 10          # the limits really dropped links here
    for expected in (array, oracle):
        np.testing.assert_array_equal(via_spark.labels, expected.labels)
        np.testing.assert_array_equal(via_spark.edge_kept, expected.edge_kept)
        np.testing.assert_array_equal(via_spark.edge_reason, expected.edge_reason)
        np.testing.assert_array_equal(via_spark.edge_conflict_type, expected.edge_conflict_type)


def test_engine_selection_is_validated():
    assert resolver_for("array") is resolve
    assert callable(resolver_for("spark", spark=object()))
    with pytest.raises(GraphInputError, match="needs the SparkSession"):
        resolver_for("spark")
    with pytest.raises(GraphInputError, match="unknown components engine"):
        resolver_for("graphframes")
