"""The identity explanation of one One-ID as a small graph for the console.

Graph shape (what the UI draws as inline SVG):
    {"nodes": [{"id", "kind": "record"|<identifier type>, "label"}],
     "edges": [{"source", "target", "rule", "kept"}], "truncated": bool}

Records (source + source record id, from the silver tables' provenance) are joined to the identifiers they
carry; two records belong to one One-ID because a chain of shared identifiers connects them. Identifier
values are shown masked or as a short hash prefix, never raw. At most `MAX_RECORDS` records are drawn.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cdp.console.views import LakeViews

log = logging.getLogger(__name__)

MAX_RECORDS = 40

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
    """Records of `one_id` and the identifiers that tie them together (see module docstring)."""
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
        "truncated": truncated,
    }
