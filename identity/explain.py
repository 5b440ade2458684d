"""Why is this one profile? Explanations of a One-ID from the identity tables, with masked identifiers only.

Pure functions over small pandas frames (the CLI reads the few rows of one profile from Delta):
`node_key_for` turns what a steward types (a phone, a card) into a node key; `explain_profile` prints the
profile's identifiers, every edge with its evidence, the path joining two identifiers (networkx shortest path
on the profile's small subgraph), and what the guardrails rejected and why. No raw phone is ever printed:
identifiers show as their `display` label (`mobile:#3f2a9c1b`, `member_card:main:****1234`).

    >>> print(explain_profile("OID1", nodes, edges, rejections))         # doctest: +SKIP
"""
from __future__ import annotations

import re

import pandas as pd

from cdp.privacy import hash_value

_MOBILE_PREFIX = re.compile(r"^(\+?86|0086)(?=1\d{10}$)")


def normalise_mobile(text: str) -> str | None:
    """The silver normalisation: strip spaces, dashes, dots, brackets and a +86/86/0086 prefix."""
    digits = re.sub(r"[\s\-\.\(\)]", "", text or "")
    digits = _MOBILE_PREFIX.sub("", digits)
    return digits if re.fullmatch(r"1[3-9]\d{9}", digits) else None


def node_key_for(kind: str, value: str, key: bytes) -> str:
    """Node key of an identifier as a steward writes it.

    kinds: mobile (raw phone), card (BRAND:CARD), unionid (raw), openid (APPID:RAW), external_userid,
    buyer (PLATFORM:BUYER_ID), node_key (as stored).
    """
    if kind == "mobile":
        mobile = normalise_mobile(value)
        if mobile is None:
            raise ValueError("not a valid mainland mobile number after normalisation")
        return f"mobile:{hash_value(mobile, 'mobile', key)}"
    if kind == "unionid":
        return f"unionid:{hash_value(value.strip(), 'unionid', key)}"
    if kind in ("card", "openid", "buyer"):
        if ":" not in value:
            raise ValueError(f"--{kind} takes SCOPE:VALUE (brand, appid or platform first)")
        scope, raw = value.split(":", 1)
        if kind == "card":
            return f"member_card:{scope}:{raw.strip()}"
        if kind == "openid":
            return f"openid:{scope}:{hash_value(raw.strip(), 'openid', key)}"
        return f"buyer_id:{scope}:{raw.strip()}"
    if kind == "external_userid":
        return f"external_userid:{value.strip()}"
    if kind == "node_key":
        return value
    raise ValueError(f"unknown identifier kind {kind!r}")


def _label(displays: dict[str, str], key: str) -> str:
    return displays.get(key) or f"{key.split(':', 1)[0]}:?"


def _fmt_time(value) -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


def profile_path(edges: pd.DataFrame, a: str, b: str, kept_only: bool = True) -> list[tuple[str, str, dict]] | None:
    """Shortest chain of edges joining node keys a and b (fewest hops, then most trusted), or None."""
    import networkx as nx

    graph = nx.Graph()
    rows = edges[edges["status"] == "kept"] if kept_only else edges
    for row in rows.sort_values(["rank", "rule"]).itertuples(index=False):
        if not graph.has_edge(row.src_key, row.dst_key):
            graph.add_edge(row.src_key, row.dst_key, rule=row.rule, source=row.source, status=row.status,
                           records=int(row.record_count), sample=row.sample_record_id)
    if a not in graph or b not in graph:
        return None
    try:
        path = nx.shortest_path(graph, a, b)
    except nx.NetworkXNoPath:
        return None
    return [(u, v, graph.edges[u, v]) for u, v in zip(path, path[1:])]


def explain_profile(one_id: str | None, nodes: pd.DataFrame, edges: pd.DataFrame, rejections: pd.DataFrame,
                    path_between: tuple[str, str] | None = None, asked_as: str | None = None,
                    focus: tuple[str, ...] = ()) -> str:
    """Text explanation of one profile (or of why two identifiers are NOT one profile)."""
    displays = dict(zip(nodes["node_key"], nodes["display"]))
    lines: list[str] = []
    if asked_as and asked_as != one_id:
        lines.append(f"{asked_as} was merged into {one_id}")
    members = nodes[nodes["one_id"] == one_id].sort_values(["id_type", "node_key"]) if one_id else nodes.iloc[0:0]
    keys = set(members["node_key"])
    if one_id is None:
        keys = set(focus)  # identifiers without a One-ID (blocked, shared): show their links and decisions
        lines.append(f"No One-ID: {', '.join(_label(displays, k) for k in sorted(keys))}")
    else:
        lines.append(f"One-ID {one_id}: {len(members)} identifiers")
    for row in members.itertuples(index=False):
        lines.append(f"  {row.display:<40} seen {_fmt_time(row.first_seen_at)} .. {_fmt_time(row.last_seen_at)}"
                     f" in {int(row.record_count)} records")
    touching = edges[edges["src_key"].isin(keys) | edges["dst_key"].isin(keys)].sort_values(["rank", "rule", "src_key", "dst_key"])
    lines.append(f"Edges ({len(touching)}):")
    for row in touching.itertuples(index=False):
        lines.append(f"  {_label(displays, row.src_key)} -- {_label(displays, row.dst_key)}  [{row.status}] "
                     f"rule {row.rule} (rank {row.rank}, source {row.source}), {int(row.record_count)} records, "
                     f"e.g. record {row.sample_record_id}, {_fmt_time(row.first_seen_at)} .. {_fmt_time(row.last_seen_at)}")
    if path_between:
        a, b = path_between
        same = a in keys and b in keys
        path = profile_path(edges, a, b, kept_only=same)
        head = f"Path {_label(displays, a)} => {_label(displays, b)}"
        if path is None:
            lines.append(f"{head}: no chain of links joins them")
        else:
            verdict = "joined by" if same else "NOT one profile; the chain of links between them"
            lines.append(f"{head}: {verdict} {len(path)} link(s):")
            for u, v, data in path:
                lines.append(f"  {_label(displays, u)} -- {_label(displays, v)}  rule {data['rule']} "
                             f"[{data['status']}], {data['records']} records, e.g. record {data['sample']}")
    rej = rejections[rejections["node_key"].isin(keys) | rejections["other_node_key"].isin(keys)
                     | rejections["node_key"].isin(set(touching["src_key"]) | set(touching["dst_key"]))]
    lines.append(f"Guardrail decisions ({len(rej)}):")
    for row in rej.sort_values(["kind", "reason", "node_key"]).itertuples(index=False):
        other = f" -- {_label(displays, row.other_node_key)}" if isinstance(row.other_node_key, str) else ""
        lines.append(f"  {row.kind} {_label(displays, row.node_key)}{other}: {row.reason}: {row.detail}")
    return "\n".join(lines)
