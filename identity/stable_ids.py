"""Stable One-IDs: map this run's components to One-IDs, keeping ids across runs, with merge/split events.

Rules (also in docs/identity.md):

1. **Anchor.** A component's anchor is its node with the earliest `first_seen_at` (tie: smallest `node_key`).
   The anchor of a previous One-ID is, among the current nodes that carried it, the one with the earliest
   `(first_seen_at, node_key)`.
2. **Keep.** A component keeps previous One-ID `p` exactly when its anchor is `p`'s anchor.
   Otherwise it gets the id derived from its anchor, `"OID" + sha256(anchor node_key)[:16]`.
3. **Merge** (consequence): when a component holds the anchors of several previous ids, the one whose anchor
   is oldest is the component's anchor and survives; the others get a `merge` event (`related_one_id` =
   survivor, `node_count` = their nodes now in it).
4. **Split** (consequence): when a previous id's nodes land in several components, the component holding its
   anchor keeps the id; the nodes elsewhere get a `split` event for the id they now carry (`related_one_id`
   = the id they split from). Usually that is a new id; it can be an existing id that received them, or an id
   merged away earlier whose anchor is on its own again: it is re-activated (the reason says so when
   `redirects` are passed), and the pipeline removes its redirect.
5. **Create.** A component whose id is new and that took no nodes split off another id gets a `create` event.
   Unchanged components (and components that only gained new nodes) produce no events.
6. **Retire.** A previous id none of whose nodes is in this run's graph (all its identifiers became blocked or
   shared, or were erased) gets a `retire` event (`node_count` = its nodes in the previous map); its records
   have no One-ID from then on.

Why anchors instead of "keep the id with the most nodes": the id of a component depends only on the component
(its anchor), never on the order of past runs, so **a full rebuild gives the same ids as the incremental runs that
led to it** as long as (a) a node's `first_seen_at` never changes once it exists and (b) a new node is never
older than the nodes already in the graph. The pipeline guarantees both by carrying `first_seen_at` forward from
the persisted node table and stamping new nodes with the run's time. Two cases give up rebuild-equality to keep
ids stable, and are documented as such: when an anchor is erased the component keeps its id (a rebuild would
name it after the new anchor), and late data that predates an existing anchor makes a new id (rule 2).

The hashing of new anchors is the only per-row Python step (hashlib over the new components' anchors); all
grouping is pandas sort/merge/groupby.

    >>> import pandas as pd, datetime as dt
    >>> nodes = pd.DataFrame({"node_key": ["mobile:h1", "card:main:h2"], "label": [0, 0],
    ...                       "first_seen_at": pd.to_datetime(["2026-01-02", "2026-01-01"])})
    >>> node_map, events = assign_one_ids(nodes, pd.DataFrame(columns=["node_key", "one_id"]),
    ...                                   dt.datetime(2026, 1, 3))
    >>> node_map.one_id.nunique(), events.event_type.tolist(), events.node_count.tolist()
    (1, ['create'], [2])
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging

import numpy as np
import pandas as pd

from cdp.errors import CdpError

log = logging.getLogger(__name__)

ONE_ID_PREFIX = "OID"
EVENT_COLUMNS = ["one_id", "event_type", "related_one_id", "node_count", "reason", "event_at"]


class StableIdInputError(CdpError, ValueError):
    """The frames passed to `assign_one_ids` break their contract (missing columns, duplicate keys, nulls)."""


def one_id_for(anchor_key: str) -> str:
    """The One-ID a component with this anchor node gets when it is new."""
    return ONE_ID_PREFIX + hashlib.sha256(anchor_key.encode("utf-8")).hexdigest()[:16]


def assign_one_ids(nodes: pd.DataFrame, previous: pd.DataFrame, run_at: dt.datetime, *,
                   redirects: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assign One-IDs to this run's components (see the module docstring for the rules).

    nodes: node_key (str, unique), first_seen_at (datetime64), label (int64 component label).
    previous: node_key, one_id: the persisted map (may be empty).
    redirects: optional, columns old_one_id (and current_one_id): retired ids; only used to name re-activations.
    Returns (node_map: node_key, one_id in the order of `nodes`; events: EVENT_COLUMNS, sorted).
    """
    _validate(nodes, previous)
    frame = nodes[["node_key", "first_seen_at", "label"]].merge(
        previous[["node_key", "one_id"]].rename(columns={"one_id": "prev_id"}), on="node_key", how="left")
    # 1. anchors: in (first_seen_at, node_key) order the first row of a label / of a previous id is its anchor
    ordered = frame.iloc[_anchor_order(frame)]
    comp = (ordered.drop_duplicates("label")[["label", "node_key", "prev_id"]]
            .rename(columns={"node_key": "anchor_key", "prev_id": "anchor_prev_id"}))
    carried = ordered[ordered["prev_id"].notna()]
    prev_anchor = (carried.drop_duplicates("prev_id")[["prev_id", "node_key", "label"]]
                   .rename(columns={"node_key": "prev_anchor_key", "label": "home_label"}))

    # 2. keep a previous id when the component's anchor is that id's anchor; else the anchor-derived id
    comp = comp.merge(prev_anchor, left_on="anchor_prev_id", right_on="prev_id", how="left")
    keeps = comp["prev_anchor_key"].eq(comp["anchor_key"]).to_numpy()
    one_id = comp["anchor_prev_id"].where(keeps).astype(object).to_numpy()
    taken = set(previous["one_id"].dropna().tolist())
    one_id[~keeps] = _new_ids(comp["anchor_key"].to_numpy()[~keeps], taken)
    comp = pd.DataFrame({"label": comp["label"].to_numpy(), "one_id": one_id, "is_new": ~keeps})

    frame = frame.merge(comp, on="label", how="left")
    node_map = frame[["node_key", "one_id"]].reset_index(drop=True)
    events = _events(frame, comp, prev_anchor, run_at, redirects)
    retired = _retire_events(previous, frame, run_at)
    if len(retired):
        events = (pd.concat([events, retired], ignore_index=True) if len(events) else retired)
        events = events.sort_values(["event_type", "one_id", "related_one_id"], kind="mergesort",
                                    ignore_index=True, na_position="first")
    log.info("assigned %d one_ids to %d nodes: %s", len(comp), len(frame),
             events["event_type"].value_counts().to_dict() if len(events) else {})
    return node_map, events


def _anchor_order(frame: pd.DataFrame) -> np.ndarray:
    """Row order by (first_seen_at, node_key), sorted by Arrow in C++ (pandas sorts object strings in Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.table({"first_seen_at": pa.array(frame["first_seen_at"]),
                      "node_key": pa.array(frame["node_key"].astype(object), type=pa.string())})
    return pc.sort_indices(table, sort_keys=[("first_seen_at", "ascending"), ("node_key", "ascending")]).to_numpy()


def _new_ids(anchor_keys: np.ndarray, taken: set[str]) -> np.ndarray:
    """Anchor-derived ids; in the (abnormal) case of a clash with an id in use, re-derive with a counter."""
    ids = np.array([one_id_for(k) for k in anchor_keys.tolist()], dtype=object)
    attempt = 0
    while True:
        seen = pd.Series(ids)
        clash = seen.isin(taken).to_numpy() | seen.duplicated(keep="first").to_numpy()
        if not clash.any():
            return ids
        attempt += 1
        log.warning("%d new one_ids clash with ids in use: re-deriving (attempt %d)", int(clash.sum()), attempt)
        ids[clash] = [one_id_for(f"{k}#{attempt}") for k in anchor_keys[clash].tolist()]


def _events(frame: pd.DataFrame, comp: pd.DataFrame, prev_anchor: pd.DataFrame, run_at: dt.datetime,
            redirects: pd.DataFrame | None) -> pd.DataFrame:
    carried = frame[frame["prev_id"].notna()]
    moved = carried[carried["prev_id"] != carried["one_id"]]
    moved = moved.merge(prev_anchor[["prev_id", "home_label"]], on="prev_id", how="left")
    at_home = moved["label"] == moved["home_label"]
    parts = []

    # merges: a previous id whose anchor's component now carries another id
    merged = (moved[at_home].groupby(["prev_id", "one_id"], sort=True).size().reset_index(name="node_count"))
    if len(merged):
        parts.append(pd.DataFrame({
            "one_id": merged["prev_id"], "event_type": "merge", "related_one_id": merged["one_id"],
            "node_count": merged["node_count"],
            "reason": "merged into " + merged["one_id"] + ": joined by new links to a profile with an older anchor"}))

    # splits: nodes that left a previous id for a component that is not that id's home
    split = (moved[~at_home].groupby(["one_id", "prev_id"], sort=True).size().reset_index(name="node_count"))
    if len(split):
        retired = set() if redirects is None or not len(redirects) else set(
            redirects[_redirect_old_column(redirects)].dropna().tolist())
        new_ids = set(comp.loc[comp["is_new"], "one_id"].tolist())
        is_new = split["one_id"].isin(new_ids)
        reason = np.where(split["one_id"].isin(retired), "re-activated: its anchor split off from ",
                          np.where(is_new, "split off from ", "identifiers moved here from "))
        parts.append(pd.DataFrame({
            "one_id": split["one_id"], "event_type": "split", "related_one_id": split["prev_id"],
            "node_count": split["node_count"], "reason": reason + split["prev_id"]}))

    # creates: new ids that did not come from a split
    sizes = frame.groupby("label", sort=False).size().rename("node_count")
    created = comp[comp["is_new"]].join(sizes, on="label")
    if len(split):
        created = created[~created["one_id"].isin(set(split["one_id"].tolist()))]
    if len(created):
        has_merges = created["one_id"].isin(set(merged["one_id"].tolist())) if len(merged) else False
        parts.append(pd.DataFrame({
            "one_id": created["one_id"], "event_type": "create", "related_one_id": None,
            "node_count": created["node_count"],
            "reason": np.where(has_merges, "new profile: its anchor predates the profiles merged into it",
                               "new profile")}))

    if not parts:
        return _empty_events(run_at)
    events = pd.concat(parts, ignore_index=True)
    events["related_one_id"] = events["related_one_id"].astype(object).where(events["related_one_id"].notna(), None)
    events["node_count"] = events["node_count"].astype(np.int64)
    events["event_at"] = pd.Timestamp(run_at)
    return (events[EVENT_COLUMNS].sort_values(["event_type", "one_id", "related_one_id"], kind="mergesort",
                                              ignore_index=True, na_position="first"))


def _retire_events(previous: pd.DataFrame, frame: pd.DataFrame, run_at: dt.datetime) -> pd.DataFrame:
    """Rule 6: previous ids that no current node carries any more."""
    still = set(frame["prev_id"].dropna().tolist())
    gone = previous[previous["one_id"].notna() & ~previous["one_id"].isin(still)]
    if not len(gone):
        return _empty_events(run_at)
    counts = gone.groupby("one_id", sort=True).size()
    return pd.DataFrame({
        "one_id": counts.index.astype(object), "event_type": "retire", "related_one_id": None,
        "node_count": counts.to_numpy().astype(np.int64),
        "reason": "retired: none of its identifiers may link any more (blocked, shared or erased)",
        "event_at": pd.Timestamp(run_at)})[EVENT_COLUMNS]


def _redirect_old_column(redirects: pd.DataFrame) -> str:
    for name in ("old_one_id", "one_id"):
        if name in redirects.columns:
            return name
    raise StableIdInputError(f"redirects need a column old_one_id (got {list(redirects.columns)})")


def _empty_events(run_at: dt.datetime) -> pd.DataFrame:
    return pd.DataFrame({
        "one_id": pd.Series(dtype=object), "event_type": pd.Series(dtype=object),
        "related_one_id": pd.Series(dtype=object), "node_count": pd.Series(dtype=np.int64),
        "reason": pd.Series(dtype=object),
        "event_at": pd.Series(pd.DatetimeIndex([], dtype=pd.Series([pd.Timestamp(run_at)]).dtype))})


def _validate(nodes: pd.DataFrame, previous: pd.DataFrame) -> None:
    for name, frame, columns in (("nodes", nodes, ("node_key", "first_seen_at", "label")),
                                 ("previous", previous, ("node_key", "one_id"))):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise StableIdInputError(f"{name} lacks columns {missing}: expected {list(columns)}")
        if frame["node_key"].duplicated().any():
            raise StableIdInputError(f"{name}.node_key must be unique: {int(frame['node_key'].duplicated().sum())} "
                                     "duplicates (deduplicate nodes before assigning ids)")
    nulls = [c for c in ("node_key", "first_seen_at", "label") if nodes[c].isna().any()]
    if nulls:
        raise StableIdInputError(f"nodes has nulls in {nulls}: every node needs a key, a first_seen_at and a label")
