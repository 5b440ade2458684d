"""Driver-side steps of the identity stage on small or integer data, and the pure transforms around persistence.

- `resolve_with_overrides`: calls `graph.resolve` on integer arrays and then enforces steward never-link pairs
  (cut the weakest edge on the path joining the pair, re-resolve, repeat; deterministic).
- `update_redirects`: keeps `identity_redirects` (old one_id -> current one_id) in step with merge/split events.
- `record_one_ids`: one One-ID per source record (the rule below).
- `compare_maps`: what a rebuild would change (profiles merged / split / ids changed).

Rule for records whose lines carry different identifiers (several POS lines of one order, a WeCom contact
followed by several guides): the record takes the One-ID of its most trusted identifier — the lowest
`id_priority` (the order of `identifier_types` in conf/identity.yaml), ties broken by the smallest node_key —
among identifiers that have a One-ID. Blocked and shared identifiers have none; a record with no identifier
with a One-ID (anonymous walk-in, only a junk phone) gets a null one_id and is counted in the summary.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

REASON_KEPT, REASON_LIMIT, REASON_NEVER_LINK = 0, 1, 2
EDGE_STATUS = {REASON_KEPT: "kept", REASON_LIMIT: "dropped_limit", REASON_NEVER_LINK: "dropped_never_link"}


@dataclass(frozen=True)
class Components:
    labels: np.ndarray       # (N,) int64 component label per node index
    edge_reason: np.ndarray  # (E,) int8: 0 kept, 1 dropped by a type limit, 2 cut for a never-link override
    edge_conflict: np.ndarray  # (E,) int16: for reason 1 the type index whose limit the union would break, else -1


def resolve_with_overrides(node_type: np.ndarray, edge_src: np.ndarray, edge_dst: np.ndarray,
                           edge_rank: np.ndarray, type_limits: np.ndarray, method: str = "array",
                           never_link: list[tuple[int, int]] | None = None, resolver=None) -> Components:
    """Components under the type limits, then never-link pairs separated.

    1. `graph.resolve` (or `resolver`, same signature) on all edges.
    2. For each never-link pair (node indices) still in one component, in order: shortest path between them
       over the kept edges of that component (networkx, small subgraph), cut its weakest edge (largest
       edge_rank, ties by larger index), re-resolve. Repeat until every pair is apart.
    """
    import networkx as nx

    if resolver is None:
        from cdp.identity.graph import resolve as resolver
    cut = np.zeros(len(edge_src), dtype=bool)
    while True:
        active = np.flatnonzero(~cut)
        res = resolver(node_type, edge_src[active], edge_dst[active], edge_rank[active], type_limits, method=method)
        reason = np.full(len(edge_src), REASON_NEVER_LINK, dtype=np.int8)
        reason[active] = np.asarray(res.edge_reason, dtype=np.int8)
        labels = np.asarray(res.labels, dtype=np.int64)
        conflict = np.full(len(edge_src), -1, dtype=np.int16)
        if hasattr(res, "edge_conflict_type"):
            conflict[active] = np.asarray(res.edge_conflict_type, dtype=np.int16)
        joined = [(a, b) for a, b in (never_link or []) if labels[a] == labels[b]]
        if not joined:
            return Components(labels=labels, edge_reason=reason, edge_conflict=conflict)
        a, b = joined[0]
        kept = np.flatnonzero(reason == REASON_KEPT)
        inside = kept[labels[edge_src[kept]] == labels[a]]
        graph = nx.Graph()
        for e in inside:
            graph.add_edge(int(edge_src[e]), int(edge_dst[e]), e=int(e))
        path = nx.shortest_path(graph, int(a), int(b))
        on_path = [graph.edges[u, v]["e"] for u, v in zip(path, path[1:])]
        weakest = max(on_path, key=lambda e: (int(edge_rank[e]), e))
        log.info("never-link override: cutting edge %d of a %d-edge path", weakest, len(on_path))
        cut[weakest] = True


def update_redirects(redirects: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Redirects after this run's events: columns old_one_id, current_one_id, redirected_at, reason.

    A merge adds old -> survivor and re-points every redirect that ended at the merged id (chains stay one
    hop long). A split that re-activates an id (split event whose one_id had a redirect) removes its redirect.
    """
    cols = ["old_one_id", "current_one_id", "redirected_at", "reason"]
    table = {r.old_one_id: [r.current_one_id, r.redirected_at, r.reason]
             for r in redirects[cols].itertuples(index=False)} if len(redirects) else {}
    if len(events):
        for ev in events.sort_values(["event_at", "event_type", "one_id"]).itertuples(index=False):
            if ev.event_type == "merge":
                for entry in table.values():
                    if entry[0] == ev.one_id:
                        entry[0] = ev.related_one_id
                table[ev.one_id] = [ev.related_one_id, ev.event_at, ev.reason]
            elif ev.event_type in ("split", "create"):
                table.pop(ev.one_id, None)
    rows = [(old, cur, at, why) for old, (cur, at, why) in sorted(table.items()) if old != cur]
    return pd.DataFrame(rows, columns=cols)


def resolve_one_id(one_id: str, redirects: pd.DataFrame) -> str:
    """The current One-ID of any One-ID ever issued (itself when it was never merged away)."""
    seen = set()
    lookup = dict(zip(redirects["old_one_id"], redirects["current_one_id"])) if len(redirects) else {}
    while one_id in lookup and one_id not in seen:
        seen.add(one_id)
        one_id = lookup[one_id]
    return one_id


def record_one_ids(records: DataFrame, best: DataFrame) -> DataFrame:
    """identity_record_map: one row per (source, source_record_id) with its one_id (null when none).

    `records`: one row per record with `ckeys`, the keys of its identifier combinations
    (`edges.record_keys`; other columns are kept); `best`: source, ck1, ck2, best (struct id_priority, node_key,
    one_id) per combination (`edges.combo_best_nodes`). A record with several combinations takes the best of
    their best identifiers, which is the best of all its identifiers.
    """
    from pyspark.sql import functions as F

    from cdp.identity.edges import COMBO_KEY

    kept = [c for c in records.columns if c != "ckeys"]
    first = F.col("ckeys")[0]
    single = (records.where(F.size("ckeys") == 1)
              .select(*kept, first["ck1"].alias("ck1"), first["ck2"].alias("ck2"))
              .join(best, list(COMBO_KEY), "left")
              .select(*kept, F.col("best.one_id").alias("one_id")))
    multi = (records.where(F.size("ckeys") > 1)
             .select(*kept, F.explode("ckeys").alias("_k"))
             .select(*kept, F.col("_k.ck1").alias("ck1"), F.col("_k.ck2").alias("ck2"))
             .join(best, list(COMBO_KEY), "left")
             .groupBy("source", "source_record_id")
             .agg(F.min("best").alias("best"),
                  *[F.first(c).alias(c) for c in kept if c not in ("source", "source_record_id")])
             .select(*kept, F.col("best.one_id").alias("one_id")))
    return single.unionByName(multi)


def compare_maps(current: pd.DataFrame, proposed: pd.DataFrame) -> dict:
    """What replacing `current` (node_key, one_id) by `proposed` would change, counted on shared nodes.

    merged: proposed profiles that gather nodes of several current profiles; split: current profiles whose
    nodes spread over several proposed profiles; ids_changed: nodes whose one_id differs.
    """
    both = current.merge(proposed, on="node_key", how="outer", suffixes=("_current", "_proposed"))
    both = both.dropna(subset=["one_id_current", "one_id_proposed"], how="all")
    common = both.dropna(subset=["one_id_current", "one_id_proposed"])
    merged = common.groupby("one_id_proposed")["one_id_current"].nunique()
    split = common.groupby("one_id_current")["one_id_proposed"].nunique()
    return {
        "nodes_current": int(both["one_id_current"].notna().sum()),
        "nodes_proposed": int(both["one_id_proposed"].notna().sum()),
        "profiles_current": int(both["one_id_current"].nunique()),
        "profiles_proposed": int(both["one_id_proposed"].nunique()),
        "profiles_merged": int((merged > 1).sum()),
        "profiles_absorbed": int((merged[merged > 1] - 1).sum()),
        "profiles_split": int((split > 1).sum()),
        "nodes_id_changed": int((common["one_id_current"] != common["one_id_proposed"]).sum()),
        "nodes_losing_one_id": int((both["one_id_current"].notna() & both["one_id_proposed"].isna()).sum()),
        "nodes_gaining_one_id": int((both["one_id_current"].isna() & both["one_id_proposed"].notna()).sum()),
    }
