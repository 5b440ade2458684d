"""Connected components of the identifier graph with priority-ordered guardrail limits.

Nodes are integer indices `0..N-1` with an identifier type; edges are integer pairs with a rank (lower = more
trusted, applied earlier). The semantics, which the networkx oracle implements literally:

1. Sort the edges by `(edge_rank, min(src, dst), max(src, dst))` (deterministic tie break).
2. Walk them with a union-find. An edge whose two ends are already joined is kept. Otherwise, if the union
   would make the number of nodes of any type exceed `type_limits[type]` (0 or < 0 = unlimited) the edge is
   dropped (reason 1, the first such type recorded as its conflict type); else the two sets are joined.
3. A node's label is the smallest node index of its final set.

Because sets only grow, a dropped edge always ends up between two different final components and a kept edge
always inside one (`edge_kept == (labels[src] == labels[dst])`).

Fast path (`method="array"`): scipy's `csgraph.connected_components` on all edges. A component whose type counts
are within the limits is final: every set built while walking its edges is a subset of it, so no union can
break a limit and no edge is dropped. Only the violating components (typically 1-3 %) are re-run through the
sequential constrained union-find (path halving, union by size), in one tight loop over plain Python ints where
a set's type counts are packed into one integer so the limit check is two additions and a mask.

    >>> import numpy as np
    >>> # nodes: 0 card A, 1 mobile, 2 card B (same brand); at most one card per One-ID
    >>> r = resolve(np.array([0, 1, 0], np.int16), np.array([0, 1]), np.array([1, 2]),
    ...             np.array([0, 1]), np.array([1, 3], np.int32))
    >>> r.labels.tolist(), r.edge_kept.tolist(), r.edge_reason.tolist()
    ([0, 0, 2], [True, False], [0, 1])
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from cdp.errors import CdpError

log = logging.getLogger(__name__)

REASON_KEPT = 0
REASON_TYPE_LIMIT = 1
METHODS = ("array", "networkx", "spark")


class GraphInputError(CdpError, ValueError):
    """The arrays passed to `resolve` are inconsistent (shapes, index ranges, unknown method)."""


@dataclass(frozen=True)
class Resolution:
    """Result of `resolve`.

    labels: (N,) int64 component label of each node = smallest node index in its component.
    edge_kept: (E,) bool, the edge joins nodes of one final component (it merged them or was redundant).
    edge_reason: (E,) int8, 0 kept, 1 dropped because merging would break a type limit.
    edge_conflict_type: (E,) int16, for dropped edges the smallest type index whose limit the union would have
        broken, -1 for kept edges (for the explanation).
    """

    labels: np.ndarray
    edge_kept: np.ndarray
    edge_reason: np.ndarray
    edge_conflict_type: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        """Number of components: every component has exactly one node labelled with itself (its smallest)."""
        return int(np.count_nonzero(self.labels == np.arange(self.labels.size)))



def unique_int_pairs(src: np.ndarray, dst: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One row per (src, dst) node-index pair, the smallest rank of its evidence rows, sorted by (src, dst).

    Rows with an end of -1 (an identifier that is not an active node: blocked, shared, gone) are left out.

    >>> s, d, r = unique_int_pairs(np.array([2, 0, 0, -1]), np.array([3, 1, 1, 4]), np.array([5, 9, 7, 1]))
    >>> s.tolist(), d.tolist(), r.tolist()
    ([0, 2], [1, 3], [7, 5])
    """
    keep = (src >= 0) & (dst >= 0)
    src, dst, rank = src[keep], dst[keep], rank[keep]
    order = np.lexsort((rank, dst, src))
    src, dst, rank = src[order], dst[order], rank[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    return src[first], dst[first], rank[first]

def resolve(node_type: np.ndarray, edge_src: np.ndarray, edge_dst: np.ndarray, edge_rank: np.ndarray,
            type_limits: np.ndarray, method: str = "array", *, spark: Any = None) -> Resolution:
    """Components of the identifier graph with guardrail limits (see the module docstring for the semantics).

    method: "array" (scipy/numpy on the driver, the default), "networkx" (the oracle, small graphs only) or
    "spark" (large-star/small-star in Spark, `spark` session required; see `cdp.identity.distributed`).
    """
    node_type, src, dst, rank, limits = _validate(node_type, edge_src, edge_dst, edge_rank, type_limits)
    if method == "array":
        return _resolve_array(node_type, src, dst, rank, limits)
    if method == "networkx":
        return _resolve_networkx(node_type, src, dst, rank, limits)
    if method == "spark":
        from cdp.identity.distributed import resolve_spark_arrays

        if spark is None:
            raise GraphInputError("resolve(method='spark') needs the SparkSession: pass spark=...")
        return resolve_spark_arrays(spark, node_type, src, dst, rank, limits)
    raise GraphInputError(f"unknown method {method!r}: use one of {METHODS}")


# --------------------------------------------------------------------------------------------------- checks
def _validate(node_type, edge_src, edge_dst, edge_rank, type_limits):
    node_type = np.asarray(node_type)
    src = np.asarray(edge_src)
    dst = np.asarray(edge_dst)
    rank = np.asarray(edge_rank)
    limits = np.asarray(type_limits)
    for name, arr in (("node_type", node_type), ("edge_src", src), ("edge_dst", dst), ("edge_rank", rank),
                      ("type_limits", limits)):
        if arr.ndim != 1:
            raise GraphInputError(f"{name} must be one-dimensional, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise GraphInputError(f"{name} must hold integers, got dtype {arr.dtype}")
    if not (src.size == dst.size == rank.size):
        raise GraphInputError(f"edge_src, edge_dst, edge_rank differ in length: {src.size}, {dst.size}, {rank.size}")
    n = node_type.size
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise GraphInputError(f"edge endpoints must be node indices in [0, {n})")
    if n and (node_type.min() < 0 or node_type.max() >= limits.size):
        raise GraphInputError(f"node_type must index type_limits: values in [0, {limits.size})")
    return (node_type.astype(np.int64, copy=False), src.astype(np.int64, copy=False),
            dst.astype(np.int64, copy=False), rank.astype(np.int64, copy=False), limits.astype(np.int64))


def edge_order(src: np.ndarray, dst: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Indices that sort the edges by (rank, min end, max end): the order in which links are applied."""
    return np.lexsort((np.maximum(src, dst), np.minimum(src, dst), rank))


# --------------------------------------------------------------------------------------------------- array
def scipy_components(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[int, np.ndarray]:
    """scipy connected components of the undirected graph (the floor the benchmark compares against)."""
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import connected_components

    graph = csr_array((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    return int(n_comp), comp


def _min_node_per_component(comp: np.ndarray, n_comp: int) -> np.ndarray:
    """Smallest node index of every component label."""
    n = comp.size
    # scipy numbers undirected components in the order their smallest node is met; use that when it holds
    is_first = np.empty(n, dtype=bool)
    if n:
        is_first[0] = True
        running_max = np.maximum.accumulate(comp)
        is_first[1:] = comp[1:] > running_max[:-1]
    first = np.flatnonzero(is_first)
    if first.size == n_comp and np.array_equal(comp[first], np.arange(n_comp)):
        return first
    mins = np.full(n_comp, n, dtype=np.int64)
    np.minimum.at(mins, comp, np.arange(n, dtype=np.int64))
    return mins


def _resolve_array(node_type, src, dst, rank, limits) -> Resolution:
    n, e = node_type.size, src.size
    edge_kept = np.ones(e, dtype=bool)
    edge_reason = np.zeros(e, dtype=np.int8)
    conflict = np.full(e, -1, dtype=np.int16)
    if e == 0:
        return Resolution(np.arange(n, dtype=np.int64), edge_kept, edge_reason, conflict)

    n_comp, comp = scipy_components(n, src, dst)
    labels = _min_node_per_component(comp, n_comp)[comp]

    limited = np.flatnonzero(limits > 0)
    if limited.size == 0:
        return Resolution(labels, edge_kept, edge_reason, conflict)
    violating = np.zeros(n_comp, dtype=bool)
    for t in limited:
        counts = np.bincount(comp[node_type == t], minlength=n_comp)
        violating |= counts > limits[t]
    if not violating.any():
        return Resolution(labels, edge_kept, edge_reason, conflict)

    # 3. only the violating components go through the sequential constrained union-find
    sub_nodes = np.flatnonzero(violating[comp])            # ascending: local order == global order
    sub_edges = np.flatnonzero(violating[comp[src]])
    local = np.full(n, -1, dtype=np.int64)
    local[sub_nodes] = np.arange(sub_nodes.size)
    s_src, s_dst, s_rank = local[src[sub_edges]], local[dst[sub_edges]], rank[sub_edges]
    order = edge_order(s_src, s_dst, s_rank)
    log.debug("constrained union-find on %d of %d components (%d nodes, %d edges)",
              int(violating.sum()), n_comp, sub_nodes.size, sub_edges.size)
    roots, kept_sorted, conflict_sorted = constrained_union_find(
        node_type[sub_nodes], s_src[order], s_dst[order], limits)

    sub_kept = np.empty(sub_edges.size, dtype=bool)
    sub_kept[order] = kept_sorted
    sub_conflict = np.empty(sub_edges.size, dtype=np.int16)
    sub_conflict[order] = conflict_sorted
    edge_kept[sub_edges] = sub_kept
    edge_reason[sub_edges] = np.where(sub_kept, REASON_KEPT, REASON_TYPE_LIMIT)
    conflict[sub_edges] = sub_conflict
    mins = np.full(sub_nodes.size, sub_nodes.size, dtype=np.int64)
    np.minimum.at(mins, roots, np.arange(sub_nodes.size, dtype=np.int64))
    labels[sub_nodes] = sub_nodes[mins[roots]]
    return Resolution(labels, edge_kept, edge_reason, conflict)


def constrained_union_find(node_type: np.ndarray, src: np.ndarray, dst: np.ndarray,
                           limits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply edges (already in application order) with a union-find that refuses unions breaking a limit.

    Returns (root of each node, kept flag per edge, conflict type per edge or -1). Meant for the small set of
    violating components: a tight loop over Python ints. A set's counts of the L limited types are packed in one
    int, W bits per type; adding `offset` (2**(W-1) - 1 - limit per field) sets a field's top bit exactly when
    its count exceeds the limit, so the check for all types is `(a + b + offset) & top`.
    """
    n, e = node_type.size, src.size
    limited = np.flatnonzero(limits > 0)
    width = int(limits[limited].max()).bit_length() + 2 if limited.size else 2
    offset = top = 0
    for j, t in enumerate(limited):
        offset |= ((1 << (width - 1)) - 1 - int(limits[t])) << (j * width)
        top |= (1 << (width - 1)) << (j * width)
    field_of_type = np.full(limits.size, -1, dtype=np.int64)
    field_of_type[limited] = np.arange(limited.size)
    fields = field_of_type[node_type]
    packed = np.zeros(n, dtype=object)
    has_field = fields >= 0
    packed[has_field] = [1 << (int(f) * width) for f in fields[has_field]]

    parent = list(range(n))
    size = [1] * n
    count = packed.tolist()
    kept = bytearray(e)
    dropped: list[tuple[int, int]] = []
    for k, (a, b) in enumerate(zip(src.tolist(), dst.tolist())):
        while parent[a] != a:                      # find with path halving
            parent[a] = parent[parent[a]]
            a = parent[a]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a == b:
            kept[k] = 1
            continue
        joined = count[a] + count[b]
        if (joined + offset) & top:
            dropped.append((k, joined))
            continue
        if size[a] < size[b]:                      # union by size
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        count[a] = joined
        kept[k] = 1

    conflict = np.full(e, -1, dtype=np.int16)
    for k, joined in dropped:                      # first limited type (smallest index) that overflowed
        over = (joined + offset) & top
        j = ((over & -over).bit_length() - 1) // width
        conflict[k] = limited[j]
    parent_arr = np.asarray(parent, dtype=np.int64)
    while True:                                    # final find for every node, vectorised pointer jumping
        grand = parent_arr[parent_arr]
        if np.array_equal(grand, parent_arr):
            break
        parent_arr = grand
    return parent_arr, np.frombuffer(bytes(kept), dtype=np.uint8).astype(bool), conflict


# --------------------------------------------------------------------------------------------------- oracle
def _resolve_networkx(node_type, src, dst, rank, limits) -> Resolution:
    """The oracle: the semantics written out literally with networkx (no union-find, no fast path)."""
    import networkx as nx

    n, e = node_type.size, src.size
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    edge_kept = np.ones(e, dtype=bool)
    conflict = np.full(e, -1, dtype=np.int16)
    limited = [int(t) for t in np.flatnonzero(limits > 0)]
    if not limited:
        graph.add_edges_from(zip(src.tolist(), dst.tolist()))
    else:
        for k in edge_order(src, dst, rank).tolist():
            u, v = int(src[k]), int(dst[k])
            if u == v or nx.has_path(graph, u, v):
                continue
            merged = nx.node_connected_component(graph, u) | nx.node_connected_component(graph, v)
            counts = np.bincount(node_type[list(merged)], minlength=limits.size)
            broken = [t for t in limited if counts[t] > limits[t]]
            if broken:
                edge_kept[k] = False
                conflict[k] = broken[0]
            else:
                graph.add_edge(u, v)
    labels = np.empty(n, dtype=np.int64)
    for members in nx.connected_components(graph):
        idx = np.fromiter(members, dtype=np.int64)
        labels[idx] = idx.min()
    edge_reason = np.where(edge_kept, REASON_KEPT, REASON_TYPE_LIMIT).astype(np.int8)
    return Resolution(labels, edge_kept, edge_reason, conflict)
