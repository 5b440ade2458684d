"""The identity explanation of one One-ID as a small graph for the console.

Graph shape (what the UI draws as inline SVG):
    {"nodes": [{"id", "kind": "record"|<identifier type>, "label"}],
     "edges": [{"source", "target", "rule", "kept"}], "truncated": bool}

When the identity stage has run, the graph comes from its tables (`identity_nodes`, `identity_edges`, the
same ones `cdp identity explain` reads): the One-ID's identifiers (node `kind` = identifier type, `label` = the
stage's masked `display`) and every link touching them with its rule, source, record count and status
(`kept`, or why it was dropped: `dropped_limit`, `dropped_never_link`, `blocked_node`, `shared_node`).

Without identity tables it falls back to the silver provenance: records (source + record id) joined to the
identifiers they carry; two records belong to one One-ID because a chain of shared identifiers connects them.
Identifier values are shown masked or as a short hash prefix, never raw; node ids sent to the page are
positional (`n0`, `n1`, ...), never node keys. At most `MAX_RECORDS` records / `MAX_NODES` nodes are drawn.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdp.console.views import LakeViews

log = logging.getLogger(__name__)

MAX_RECORDS = 40
MAX_NODES = 60

# silver table -> identifier columns that link records (column, identifier type, how to show)
LINK_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "silver_crm_members": (("member_card_no", "member_card", "card"), ("mobile_hash", "mobile", "mobile")),
    "silver_pos_lines": (("member_card_no", "member_card", "card"), ("mobile_hash", "mobile", "mobile")),
    "silver_miniprogram_events": (("openid_hash", "openid", "hash"), ("unionid_hash", "unionid", "hash"),
                                  ("mobile_hash", "mobile", "mobile"), ("member_card_no", "member_card", "card")),
    "silver_ecommerce_lines": (("buyer_id", "buyer_id", "mask"), ("mobile_hash", "mobile", "mobile")),
    "silver_wecom_contacts": (("external_userid", "external_userid", "mask"), ("unionid_hash", "unionid", "hash")),
}


def explain_one_id(views: LakeViews, one_id: str, mask_ids: bool) -> dict[str, Any]:
    """The identity graph of `one_id` (see module docstring)."""
    if views.has("identity_nodes") and views.has("identity_edges"):
        return _from_identity_tables(views, one_id)
    return _from_silver(views, one_id, mask_ids)


def _from_identity_tables(views: LakeViews, one_id: str) -> dict[str, Any]:
    from pyspark.sql import functions as F

    nodes_t = views.table("identity_nodes")
    edges_t = views.table("identity_edges")
    assert nodes_t is not None and edges_t is not None
    members = nodes_t.where(F.col("one_id") == F.lit(one_id)).select("node_key", "id_type", "display", "status")
    rows = members.orderBy("id_type", "node_key").limit(MAX_NODES + 1).collect()
    truncated = len(rows) > MAX_NODES
    keys = [r["node_key"] for r in rows[:MAX_NODES]]
    if not keys:
        return {"nodes": [], "edges": [], "truncated": False, "source": "identity"}
    edge_cols = [c for c in ("src_key", "dst_key", "rule", "source", "status", "record_count") if c in edges_t.columns]
    if "run_date" in edges_t.columns:  # the latest run's view of each link
        last = edges_t.agg(F.max("run_date")).collect()[0][0]
        edges_t = edges_t.where(F.col("run_date") == F.lit(last))
    edge_rows = (edges_t.where(F.col("src_key").isin(keys) | F.col("dst_key").isin(keys)).select(*edge_cols)
                 .orderBy("src_key", "dst_key", "rule").limit(4 * MAX_NODES).collect())
    nodes = {r["node_key"]: {"kind": r["id_type"], "label": r["display"], "member": True} for r in rows[:MAX_NODES]}
    outside = sorted({k for e in edge_rows for k in (e["src_key"], e["dst_key"]) if k not in nodes})
    if outside:  # identifiers of other profiles reached by a dropped link: shown so the reason is visible
        for r in nodes_t.where(F.col("node_key").isin(outside[:MAX_NODES])).select("node_key", "id_type", "display").collect():
            nodes[r["node_key"]] = {"kind": r["id_type"], "label": r["display"], "member": False}
    rename = {key: f"n{i}" for i, key in enumerate(sorted(nodes))}
    edges = []
    for e in edge_rows:
        if e["src_key"] not in rename or e["dst_key"] not in rename:
            continue
        status = e["status"] if "status" in e and e["status"] else "kept"
        detail = ", ".join(str(x) for x in (e["source"] if "source" in e else None,
                                              f"{e['record_count']} records" if "record_count" in e else None) if x)
        edges.append({"source": rename[e["src_key"]], "target": rename[e["dst_key"]],
                      "rule": f"{e['rule']} ({detail}) [{status}]" if detail else f"{e['rule']} [{status}]",
                      "kept": status == "kept"})
    return {"nodes": [{"id": rename[k], **v} for k, v in sorted(nodes.items())], "edges": edges,
            "truncated": truncated, "source": "identity"}


def _from_silver(views: LakeViews, one_id: str, mask_ids: bool) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from cdp.console.views import mask_identifier, short_hash

    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    records = 0
    truncated = False
    for name, links in LINK_COLUMNS.items():
        t = views.table(name)
        if t is None or "source_record_id" not in t.columns:
            continue
        present = [link for link in links if link[0] in t.columns]
        extra = ["mobile_masked"] if "mobile_masked" in t.columns else []
        source = F.col("source") if "source" in t.columns else F.lit(name.removeprefix("silver_"))
        df = (t.where(F.col("one_id") == F.lit(one_id))
              .select(source.alias("_source"), "source_record_id", *[c for c, _, _ in present], *extra)
              .distinct().orderBy("_source", "source_record_id"))
        for r in df.limit(MAX_RECORDS + 1).collect():
            if records >= MAX_RECORDS:
                truncated = True
                break
            record_id = f"record:{r['_source']}:{r['source_record_id']}"
            if record_id not in nodes:
                records += 1
                nodes[record_id] = {"id": record_id, "kind": "record",
                                    "label": f"{r['_source']} {mask_identifier(str(r['source_record_id']))}"}
            for column, kind, how in present:
                value = r[column]
                if value is None:
                    continue
                node_id = f"{kind}:{value}"
                if how == "mobile":
                    label = r["mobile_masked"] if extra and r["mobile_masked"] else short_hash(value)
                elif how == "hash":
                    label = short_hash(value)
                elif how == "card" and not mask_ids:
                    label = str(value)
                else:
                    label = mask_identifier(str(value))
                # the graph never carries a raw identifier as node id either: ids are positional
                nodes.setdefault(node_id, {"id": node_id, "kind": kind, "label": f"{kind} {label}"})
                edges.append({"source": record_id, "target": node_id, "rule": f"carries {kind}", "kept": True})
    # replace identifier-bearing node ids by opaque positional ids before they leave the server
    rename = {old: f"n{i}" for i, old in enumerate(sorted(nodes))}
    return {
        "nodes": [{**n, "id": rename[n["id"]]} for _, n in sorted(nodes.items())],
        "edges": sorted(({**e, "source": rename[e["source"]], "target": rename[e["target"]]} for e in edges),
                        key=lambda e: (e["source"], e["target"])),
        "truncated": truncated, "source": "silver",
    }
