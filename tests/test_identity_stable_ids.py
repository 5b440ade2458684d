"""stable_ids.assign_one_ids: creates, merges, splits, re-activation, and rebuild == incremental.

Pure pandas: no JVM.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest

from cdp.identity.graph import resolve
from cdp.identity.stable_ids import EVENT_COLUMNS, StableIdInputError, assign_one_ids

DAY = [dt.datetime(2026, 3, d) for d in range(1, 29)]
EMPTY = pd.DataFrame({"node_key": pd.Series(dtype=object), "one_id": pd.Series(dtype=object)})


def oid(key: str) -> str:
    return "OID" + hashlib.sha256(key.encode()).hexdigest()[:16]


def nodes(*rows: tuple[str, int, int]) -> pd.DataFrame:
    """rows of (node_key, day first seen, label)."""
    return pd.DataFrame({"node_key": [r[0] for r in rows],
                         "first_seen_at": pd.to_datetime([DAY[r[1]] for r in rows]),
                         "label": np.array([r[2] for r in rows], dtype=np.int64)})


def as_map(node_map: pd.DataFrame) -> dict[str, str]:
    return dict(zip(node_map["node_key"], node_map["one_id"]))


def as_events(events: pd.DataFrame) -> list[tuple]:
    return [(r.event_type, r.one_id, r.related_one_id, r.node_count) for r in events.itertuples(index=False)]


def test_first_run_creates_ids_from_anchors_and_second_run_changes_nothing():
    # component 0: card (day 0) + mobile (day 1): the card is the anchor; component 5: a lone openid
    first = nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("openid:b", 2, 5))
    node_map, events = assign_one_ids(first, EMPTY, DAY[3])
    assert as_map(node_map) == {"card:a": oid("card:a"), "mobile:a": oid("card:a"), "openid:b": oid("openid:b")}
    assert list(node_map.columns) == ["node_key", "one_id"]
    assert list(events.columns) == EVENT_COLUMNS
    assert sorted(as_events(events)) == sorted([("create", oid("card:a"), None, 2), ("create", oid("openid:b"), None, 1)])
    assert (events["event_at"] == pd.Timestamp(DAY[3])).all()

    again, events2 = assign_one_ids(first, node_map, DAY[4])
    pd.testing.assert_frame_equal(again, node_map)
    assert events2.empty and list(events2.columns) == EVENT_COLUMNS


def test_tie_on_first_seen_breaks_on_smallest_node_key():
    node_map, _ = assign_one_ids(nodes(("mobile:z", 0, 0), ("card:a", 0, 0)), EMPTY, DAY[1])
    assert set(node_map["one_id"]) == {oid("card:a")}


def test_merge_keeps_the_oldest_id_and_records_the_other():
    day1 = nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("union:b", 2, 7), ("openid:b", 3, 7))
    prev, _ = assign_one_ids(day1, EMPTY, DAY[3])
    # a new link joins both profiles and brings a new node: card:a (day 0) is the oldest anchor, so it survives
    day2 = nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("union:b", 2, 0), ("openid:b", 3, 0), ("new:x", 4, 0))
    node_map, events = assign_one_ids(day2, prev, DAY[4])
    assert set(node_map["one_id"]) == {oid("card:a")}
    assert as_events(events) == [("merge", oid("union:b"), oid("card:a"), 2)]
    assert events["reason"].iloc[0].startswith("merged into " + oid("card:a"))


def test_split_keeps_the_id_on_the_anchor_side_and_reactivation_gets_the_old_id_back():
    # day 1: two profiles A (anchor card:a) and B (anchor union:b)
    day1 = nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("union:b", 2, 7), ("openid:b", 3, 7))
    prev1, _ = assign_one_ids(day1, EMPTY, DAY[5])
    # day 2: they merge (B -> A)
    day2 = nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("union:b", 2, 0), ("openid:b", 3, 0))
    prev2, ev2 = assign_one_ids(day2, prev1, DAY[6])
    assert as_events(ev2) == [("merge", oid("union:b"), oid("card:a"), 2)]
    # day 3: the joining link is removed (e.g. a never-link override): {card:a, mobile:a} holds A's anchor and
    # keeps its id; {union:b, openid:b} has union:b as anchor again, so B's id is re-activated as a split of A
    redirects = pd.DataFrame({"old_one_id": [oid("union:b")], "current_one_id": [oid("card:a")]})
    node_map, ev3 = assign_one_ids(day1, prev2, DAY[7], redirects=redirects)
    pd.testing.assert_frame_equal(node_map, prev1)
    assert as_events(ev3) == [("split", oid("union:b"), oid("card:a"), 2)]
    assert ev3["reason"].iloc[0] == "re-activated: its anchor split off from " + oid("card:a")


def test_split_off_part_without_an_anchor_gets_a_new_id():
    day1 = nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("mobile:c", 2, 0))
    prev, _ = assign_one_ids(day1, EMPTY, DAY[3])
    node_map, events = assign_one_ids(nodes(("card:a", 0, 0), ("mobile:a", 1, 1), ("mobile:c", 2, 1)), prev, DAY[4])
    # mobile:a is now the anchor of the split-off part: it gets oid(mobile:a), recorded as a split of A
    assert as_map(node_map) == {"card:a": oid("card:a"), "mobile:a": oid("mobile:a"), "mobile:c": oid("mobile:a")}
    assert as_events(events) == [("split", oid("mobile:a"), oid("card:a"), 2)]


def test_erased_anchor_keeps_the_id_of_the_rest():
    prev, _ = assign_one_ids(nodes(("card:a", 0, 0), ("mobile:a", 1, 0), ("openid:a", 2, 0)), EMPTY, DAY[3])
    # card:a is erased: the rest keeps the id (stability wins over rebuild-equality here, as documented)
    node_map, events = assign_one_ids(nodes(("mobile:a", 1, 3), ("openid:a", 2, 3)), prev, DAY[4])
    assert set(node_map["one_id"]) == {oid("card:a")}
    assert events.empty


def test_an_id_whose_every_identifier_left_the_graph_is_retired():
    # day 1: a store phone alone, and a person (card + phone); day 2: the store phone is found to be shared and
    # leaves the graph, the person stays unchanged
    first, _ = assign_one_ids(nodes(("mobile:store", 0, 0), ("card:a", 0, 1), ("mobile:a", 0, 1)), EMPTY, DAY[0])
    second, events = assign_one_ids(nodes(("card:a", 0, 1), ("mobile:a", 0, 1)), first, DAY[1])
    assert as_map(second) == {"card:a": oid("card:a"), "mobile:a": oid("card:a")}
    assert as_events(events) == [("retire", oid("mobile:store"), None, 1)]
    assert events.loc[0, "reason"].startswith("retired:") and list(events.columns) == EVENT_COLUMNS


def test_bad_input_is_refused():
    with pytest.raises(StableIdInputError, match="unique"):
        assign_one_ids(nodes(("a", 0, 0), ("a", 1, 0)), EMPTY, DAY[1])
    with pytest.raises(StableIdInputError, match="lacks columns"):
        assign_one_ids(nodes(("a", 0, 0)).drop(columns="label"), EMPTY, DAY[1])


# ------------------------------------------------------------------------------------- rebuild == incremental
TYPE_LIMITS = np.array([1, 1, 3, 0], dtype=np.int32)     # unionid, card, mobile, openid (unlimited)


def simulate(seed: int, days: int = 6):
    """Grow an identifier graph day by day, resolve it with guardrails and assign ids incrementally.

    New nodes are first seen on the day they appear (later than every existing node): the documented
    precondition of rebuild-equality. Edges arrive with random ranks, so a trusted link on a later day can
    reshuffle which weaker links the limits drop: profiles merge and split over the days.
    """
    rng = np.random.default_rng(seed)
    keys: list[str] = []
    types: list[int] = []
    seen: list[dt.datetime] = []
    src: list[int] = []
    dst: list[int] = []
    rank: list[int] = []
    previous, stats = EMPTY, {"merge": 0, "split": 0, "create": 0}
    for day in range(days):
        start = len(keys)
        for _ in range(int(rng.integers(3, 15))):
            t = int(rng.integers(0, 4))
            keys.append(f"t{t}:{rng.integers(0, 1 << 40):010x}")
            types.append(t)
            seen.append(DAY[day])
        n = len(keys)
        for _ in range(int(rng.integers(2, 12))):
            a = int(rng.integers(start, n)) if rng.random() < 0.7 else int(rng.integers(0, n))
            src.append(a)
            dst.append(int(rng.integers(0, n)))
            rank.append(int(rng.integers(0, 5)))
        res = resolve(np.array(types), np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64),
                      np.array(rank, dtype=np.int64), TYPE_LIMITS)
        frame = pd.DataFrame({"node_key": keys, "first_seen_at": pd.to_datetime(seen), "label": res.labels})
        node_map, events = assign_one_ids(frame, previous, DAY[day])
        # one id per component and one component per id
        joined = frame.merge(node_map, on="node_key")
        assert joined.groupby("label")["one_id"].nunique().eq(1).all()
        assert joined.groupby("one_id")["label"].nunique().eq(1).all()
        for kind, count in events["event_type"].value_counts().items():
            stats[kind] += int(count)
        # re-running the same day changes nothing
        again, no_events = assign_one_ids(frame, node_map, DAY[day])
        pd.testing.assert_frame_equal(again, node_map)
        assert no_events.empty
        previous = node_map
    return frame, previous, stats


def test_full_rebuild_gives_the_ids_of_the_incremental_runs():
    totals = {"merge": 0, "split": 0, "create": 0}
    for seed in range(40):
        final_nodes, incremental, stats = simulate(seed)
        rebuilt, events = assign_one_ids(final_nodes, EMPTY, DAY[20])
        pd.testing.assert_frame_equal(rebuilt, incremental)
        assert set(events["event_type"]) <= {"create"}
        for kind in totals:
            totals[kind] += stats[kind]
    # the simulation really exercised merges and splits, not only creates
    assert totals["merge"] > 20 and totals["split"] > 5, totals


def test_busy_day_recount_reads_day_ranges_capped():
    """The busy-day recount asks Delta for the touched days as a few time ranges (so silver files laid out by day
    are skipped): consecutive days join, and above the cap the shortest gaps are bridged; every day stays inside."""
    from cdp.resolve_identity import day_ranges

    d = dt.date(2026, 11, 1)
    days = [d, d + dt.timedelta(1), d + dt.timedelta(2), d + dt.timedelta(10), d + dt.timedelta(12), d + dt.timedelta(40)]
    assert day_ranges(days) == [(d, d + dt.timedelta(2)), (d + dt.timedelta(10), d + dt.timedelta(10)),
                                (d + dt.timedelta(12), d + dt.timedelta(12)), (d + dt.timedelta(40), d + dt.timedelta(40))]
    assert day_ranges(days, max_ranges=2) == [(d, d + dt.timedelta(12)), (d + dt.timedelta(40), d + dt.timedelta(40))]
    many = [d - dt.timedelta(days=3 * i) for i in range(500)]
    capped = day_ranges(many, max_ranges=16)
    assert len(capped) == 16 and all(any(lo <= x <= hi for lo, hi in capped) for x in many)
    assert day_ranges([]) == []
