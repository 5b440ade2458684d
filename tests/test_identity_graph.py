"""graph.resolve: the array fast path against the networkx oracle, plus hand-made guardrail cases.

Pure numpy / networkx: no JVM.
"""
from __future__ import annotations

import numpy as np
import pytest

from cdp.identity.graph import GraphInputError, Resolution, resolve

# type indices used by the hand-made cases (the pipeline orders types by priority the same way)
UNIONID, CARD, OPENID, MOBILE = 0, 1, 2, 3
LIMITS = np.array([1, 1, 1, 3], dtype=np.int32)   # 1 unionid, 1 card (of this brand), 1 openid, 3 mobiles
NO_LIMITS = np.zeros(4, dtype=np.int32)


def random_graph(seed: int, with_limits: bool):
    """Clustered random graph: isolated nodes, self loops, duplicate edges, a few cross-cluster links."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    n_types = int(rng.integers(1, 5))
    node_type = rng.integers(0, n_types, n).astype(np.int16)
    cluster = rng.integers(0, max(1, n // 4), n)
    e = int(rng.integers(0, 2 * n + 1))
    src = rng.integers(0, n, e)
    # most edges stay inside a cluster (identity-like), some join clusters
    same = np.flatnonzero(rng.random(e) < 0.8)
    for k in same:
        members = np.flatnonzero(cluster == cluster[src[k]])
        src[k] = members[rng.integers(0, members.size)]
    dst = src.copy()
    for k in range(e):
        members = np.flatnonzero(cluster == cluster[src[k]]) if k in set(same.tolist()) else np.arange(n)
        dst[k] = members[rng.integers(0, members.size)]
    if e:
        loops = rng.random(e) < 0.05
        dst[loops] = src[loops]
        dup = rng.integers(0, e, e // 5)                      # duplicate some edges, sometimes with swapped ends
        swap = rng.random(dup.size) < 0.5
        src = np.concatenate([src, np.where(swap, dst[dup], src[dup])])
        dst = np.concatenate([dst, np.where(swap, src[dup], dst[dup])])
    rank = rng.integers(0, 4, src.size)
    limits = (rng.integers(0, 4, n_types) if with_limits else np.zeros(n_types)).astype(np.int32)
    return node_type, src.astype(np.int64), dst.astype(np.int64), rank.astype(np.int64), limits


def assert_same(a: Resolution, b: Resolution) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.edge_kept, b.edge_kept)
    np.testing.assert_array_equal(a.edge_reason, b.edge_reason)
    np.testing.assert_array_equal(a.edge_conflict_type, b.edge_conflict_type)


def assert_invariants(node_type, src, dst, limits, res: Resolution) -> None:
    n = node_type.size
    assert res.labels.dtype == np.int64 and res.labels.shape == (n,)
    assert res.edge_kept.dtype == bool and res.edge_reason.dtype == np.int8
    # labels are the smallest member of each component
    np.testing.assert_array_equal(res.labels[res.labels], res.labels)
    assert res.n_components == np.unique(res.labels).size
    assert (res.labels <= np.arange(n)).all()
    # kept edges lie inside a component, dropped ones between two (sets only grow)
    np.testing.assert_array_equal(res.edge_kept, res.labels[src] == res.labels[dst])
    np.testing.assert_array_equal(res.edge_reason, np.where(res.edge_kept, 0, 1))
    # no component exceeds a limit
    for t in np.flatnonzero(limits > 0):
        assert np.bincount(res.labels[node_type == t], minlength=n).max(initial=0) <= limits[t]


@pytest.mark.parametrize("with_limits", [False, True])
def test_array_equals_networkx_on_random_graphs(with_limits):
    n_violating_graphs = 0
    for seed in range(150):
        node_type, src, dst, rank, limits = random_graph(seed, with_limits)
        fast = resolve(node_type, src, dst, rank, limits)
        oracle = resolve(node_type, src, dst, rank, limits, method="networkx")
        assert_same(fast, oracle)
        assert_invariants(node_type, src, dst, limits, fast)
        n_violating_graphs += int((~fast.edge_kept).any())
    # the seeds exercise the constrained path (or, without limits, never drop anything)
    assert (n_violating_graphs > 50) if with_limits else (n_violating_graphs == 0)


def test_unlimited_labels_equal_networkx_connected_components():
    import networkx as nx

    node_type, src, dst, rank, _ = random_graph(7, with_limits=False)
    graph = nx.Graph()
    graph.add_nodes_from(range(node_type.size))
    graph.add_edges_from(zip(src.tolist(), dst.tolist()))
    expected = np.empty(node_type.size, dtype=np.int64)
    for members in nx.connected_components(graph):
        expected[list(members)] = min(members)
    res = resolve(node_type, src, dst, rank, np.zeros(int(node_type.max()) + 1, np.int32))
    np.testing.assert_array_equal(res.labels, expected)
    assert res.edge_kept.all()


def test_deterministic_and_independent_of_edge_input_order():
    node_type, src, dst, rank, limits = random_graph(11, with_limits=True)
    first = resolve(node_type, src, dst, rank, limits)
    perm = np.random.default_rng(0).permutation(src.size)
    # swapping the ends of an edge and shuffling the list must not change any decision
    shuffled = resolve(node_type, dst[perm], src[perm], rank[perm], limits)
    np.testing.assert_array_equal(shuffled.labels, first.labels)
    np.testing.assert_array_equal(shuffled.edge_kept, first.edge_kept[perm])
    np.testing.assert_array_equal(shuffled.edge_conflict_type, first.edge_conflict_type[perm])


def test_two_member_cards_joined_by_a_shared_mobile_drop_the_weaker_link():
    # nodes: 0 card A, 1 mobile, 2 card B (same brand), 3 unionid of A
    # edges: card A-mobile from CRM (rank 0), card A-unionid (rank 0), mobile-card B from a POS line (rank 2).
    # Applying by rank joins {A, mobile, unionid} first; adding card B would make two cards: that weaker link
    # is dropped, recorded with the card type as its conflict.
    node_type = np.array([CARD, MOBILE, CARD, UNIONID], dtype=np.int16)
    src, dst, rank = np.array([1, 2, 0]), np.array([0, 1, 3]), np.array([0, 2, 0])
    for method in ("array", "networkx"):
        res = resolve(node_type, src, dst, rank, LIMITS, method=method)
        assert res.labels.tolist() == [0, 0, 2, 0]
        assert res.edge_kept.tolist() == [True, False, True]
        assert res.edge_reason.tolist() == [0, 1, 0]
        assert res.edge_conflict_type.tolist() == [-1, CARD, -1]


def test_equal_rank_ties_break_on_smallest_node_indices():
    # mobile 1 links card 0 and card 2 with the same rank: (0, 1) sorts before (1, 2), so card 0 keeps the mobile
    node_type = np.array([CARD, MOBILE, CARD], dtype=np.int16)
    res = resolve(node_type, np.array([2, 1]), np.array([1, 0]), np.array([5, 5]), LIMITS)
    assert res.labels.tolist() == [0, 0, 2]
    assert res.edge_kept.tolist() == [False, True]


def test_store_phone_linked_to_fifty_cards_joins_only_the_first():
    # a store phone (node 0) typed for 50 walk-in customers' cards (nodes 1..50), all from POS with equal rank:
    # the first link by node order (0, 1) is applied, the other 49 would give a One-ID two cards and are dropped.
    # (The pipeline's shared-identifier detection normally removes such a node before; the limit is the backstop.)
    n_cards = 50
    node_type = np.array([MOBILE] + [CARD] * n_cards, dtype=np.int16)
    src = np.zeros(n_cards, dtype=np.int64)
    dst = np.arange(1, n_cards + 1)
    res = resolve(node_type, src, dst, np.ones(n_cards, np.int64), LIMITS)
    assert res.labels.tolist() == [0, 0] + list(range(2, n_cards + 1))
    assert res.edge_kept.tolist() == [True] + [False] * (n_cards - 1)
    assert (res.edge_conflict_type[1:] == CARD).all()
    assert_same(res, resolve(node_type, src, dst, np.ones(n_cards, np.int64), LIMITS, method="networkx"))


def test_a_fourth_mobile_is_refused_but_three_are_fine():
    # one card with four mobiles; the link to mobile 1 is the least trusted (rank 3), so mobiles 2, 3, 4 join
    # first and the link to mobile 1 would break "3 mobiles"
    node_type = np.array([CARD, MOBILE, MOBILE, MOBILE, MOBILE], dtype=np.int16)
    res = resolve(node_type, np.zeros(4, np.int64), np.arange(1, 5), np.array([3, 0, 1, 2]), LIMITS)
    assert res.labels.tolist() == [0, 1, 0, 0, 0]
    assert res.edge_kept.tolist() == [False, True, True, True]
    assert res.edge_conflict_type.tolist() == [MOBILE, -1, -1, -1]


def test_redundant_edge_inside_a_component_is_kept_and_within_limit_components_untouched():
    # component {0,1,2} is a triangle (the third edge is redundant, kept); component {3,4} has two unionids
    node_type = np.array([CARD, MOBILE, UNIONID, UNIONID, UNIONID], dtype=np.int16)
    src, dst = np.array([0, 1, 2, 3]), np.array([1, 2, 0, 4])
    res = resolve(node_type, src, dst, np.zeros(4, np.int64), LIMITS)
    assert res.labels.tolist() == [0, 0, 0, 3, 4]
    assert res.edge_kept.tolist() == [True, True, True, False]
    assert res.edge_conflict_type.tolist() == [-1, -1, -1, UNIONID]


def test_empty_and_isolated():
    res = resolve(np.array([0, 1, 1], np.int16), np.array([], np.int64), np.array([], np.int64),
                  np.array([], np.int64), LIMITS)
    assert res.labels.tolist() == [0, 1, 2]
    assert res.edge_kept.shape == (0,) and res.edge_reason.shape == (0,)
    res = resolve(np.array([], np.int16), np.array([], np.int64), np.array([], np.int64),
                  np.array([], np.int64), LIMITS)
    assert res.labels.shape == (0,)


@pytest.mark.parametrize("args, message", [
    ((np.array([0, 0]), np.array([0]), np.array([2]), np.array([0]), LIMITS), "node indices"),
    ((np.array([0, 9]), np.array([0]), np.array([1]), np.array([0]), LIMITS), "node_type must index"),
    ((np.array([0, 0]), np.array([0, 1]), np.array([1]), np.array([0]), LIMITS), "differ in length"),
    ((np.array([0, 0]), np.array([0.5]), np.array([1]), np.array([0]), LIMITS), "integers"),
])
def test_bad_input_is_refused_with_a_precise_message(args, message):
    with pytest.raises(GraphInputError, match=message):
        resolve(*args)


def test_unknown_method_is_refused():
    with pytest.raises(GraphInputError, match="unknown method"):
        resolve(np.array([0]), np.array([0]), np.array([0]), np.array([0]), LIMITS, method="igraph")


@pytest.mark.parametrize("seed", range(20))
def test_unique_int_pairs_equals_a_group_by_min(seed):
    """The driver-side pair reduction the stage feeds `resolve` with equals pandas' groupby-min over the rows
    whose ends are both active (-1 = not an active node), sorted by (src, dst)."""
    import pandas as pd

    from cdp.identity.graph import unique_int_pairs

    rng = np.random.default_rng(seed)
    e = int(rng.integers(0, 300))
    src, dst = rng.integers(-1, 30, e), rng.integers(-1, 30, e)
    rank = rng.integers(-5, 5, e) * 10**9 + rng.integers(0, 10**6, e)
    rows = pd.DataFrame({"src": src, "dst": dst, "rank": rank})
    expected = (rows[(rows.src >= 0) & (rows.dst >= 0)].groupby(["src", "dst"], as_index=False)["rank"].min()
                .sort_values(["src", "dst"]))
    s, d, r = unique_int_pairs(src, dst, rank)
    pd.testing.assert_frame_equal(pd.DataFrame({"src": s, "dst": d, "rank": r}),
                                  expected.reset_index(drop=True), check_dtype=False)


def test_shipped_card_blocklist_blocks_fillers_but_not_short_real_cards():
    """The member-card patterns of conf/identity.yaml (applied with Spark's rlike, which finds like re.search).
    A small chain's early cards (8, 88, 1111) are real; a card of one digit six or more times is a filler."""
    import re

    from cdp.identity.config import load_identity_rules

    card = next(t for t in load_identity_rules().identifier_types if t.name == "member_card")

    def blocked(value: str) -> bool:
        return value in card.blocklist.values or any(re.search(p, value) for p in card.blocklist.patterns)

    assert {v: blocked(v) for v in ["0000", "000000000", "666666", "11111111111", "TEST-1", "dummy9",
                                    "8", "88", "1111", "20230001", "M001", "6222021234567890"]} == {
        "0000": True, "000000000": True, "666666": True, "11111111111": True, "TEST-1": True, "dummy9": True,
        "8": False, "88": False, "1111": False, "20230001": False, "M001": False, "6222021234567890": False}
