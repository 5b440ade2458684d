"""Guardrails against over-merging, as pure DataFrame transforms: blocklist, shared identifiers, overrides.

Three guards act before the components step (the fourth, the per-type limits, acts inside `graph.resolve`):

1. **Blocklist.** Junk values (`13800000000`, one digit repeated, test ids) declared per identifier type in
   conf/identity.yaml. Hashed types are checked against their raw value in the protected `pii_values` table
   (the identity stage is a trusted job); unhashed ids (cards, buyer ids) against the silver value itself.
2. **Overrides** declared by data stewards (table `identity_overrides`): extra blocked identifiers,
   never-link pairs, always-link pairs.
3. **Shared identifiers.** An identifier linked to more than `shared_threshold` distinct identifiers of one
   higher-priority type and scope (a store phone typed for walk-in customers links to hundreds of member
   cards; a family phone to two cards of one brand) is not used to merge. So is an identifier seen on more than
   `max_records_per_day` distinct records of one source on one day (the store phone typed for walk-ins that
   carry no other identifier, so no link betrays it).

A blocked or shared identifier keeps a row in `identity_nodes` (status `blocked` / `shared`) but gets no
One-ID and takes part in no merge; every decision is a row of `identity_rejections` with a reason that
carries no personal data.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from cdp.identity.config import IdentityRules

REJECTION_COLUMNS = ("kind", "node_key", "other_node_key", "reason", "detail")
OVERRIDE_COLUMNS = ("override_id", "action", "node_key", "other_node_key", "reason", "created_at", "created_by")
OVERRIDE_ACTIONS = ("block", "never_link", "always_link")


def blocked_nodes(nodes: DataFrame, pii_values: DataFrame | None, rules: IdentityRules,
                  overrides: DataFrame | None = None) -> DataFrame:
    """One row per blocked node: node_key, reason (`blocklist` | `override_block`), detail (no raw value)."""
    from functools import reduce

    from pyspark.sql import functions as F

    value = F.substring_index(F.col("node_key"), ":", -1)
    flagged_parts = []
    for t in rules.identifier_types:
        if not t.blocklist.patterns and not t.blocklist.values:
            continue
        of_type = nodes.where(F.col("id_type") == t.name).select("node_key", value.alias("value"))
        if t.pii_kind:
            if pii_values is None:
                continue
            # the patterns run over the raw values of this kind; only the junk hashes meet the nodes
            junk = (pii_values.where(F.col("kind") == t.pii_kind)
                    .select(F.col("value_hash").alias("value"), _blocklist_verdict(t, F.col("value")).alias("detail"))
                    .where(F.col("detail").isNotNull()))
            flagged_parts.append(of_type.join(F.broadcast(junk), "value").select("node_key", "detail"))
        else:
            flagged_parts.append(of_type.select("node_key", _blocklist_verdict(t, F.col("value")).alias("detail"))
                                 .where(F.col("detail").isNotNull()))
    if flagged_parts:
        flagged = (reduce(lambda a, b: a.unionByName(b), flagged_parts)
                   .groupBy("node_key").agg(F.min("detail").alias("detail"))
                   .withColumn("reason", F.lit("blocklist")))
    else:
        flagged = nodes.sparkSession.createDataFrame([], "node_key string, detail string, reason string")
    result = flagged.select("node_key", "reason", "detail")
    if overrides is not None:
        by_steward = (overrides.where(F.col("action") == "block")
                      .join(nodes.select("node_key"), "node_key")
                      .groupBy("node_key").agg(F.min("reason").alias("_why"))
                      .select("node_key", F.lit("override_block").alias("reason"),
                              F.concat(F.lit("blocked by steward override: "), F.coalesce("_why", F.lit("-"))).alias("detail")))
        result = result.unionByName(by_steward.join(result.select("node_key"), "node_key", "left_anti"))
    return result


def _blocklist_verdict(t, subject: Column) -> Column:
    """The first blocklist check of type `t` the value matches (patterns in order, then the value list) as a
    text naming the check, never the value; null when none matches."""
    from pyspark.sql import functions as F

    detail = None
    if t.blocklist.values:
        detail = F.when(subject.isin(list(t.blocklist.values)), F.lit(f"{t.name} blocklist value list of conf/identity.yaml"))
    for i, pattern in reversed(list(enumerate(t.blocklist.patterns))):
        text = F.lit(f"{t.name} blocklist pattern #{i + 1} of conf/identity.yaml")
        detail = F.when(subject.rlike(pattern), text) if detail is None else F.when(subject.rlike(pattern), text).otherwise(detail)
    return detail


def shared_nodes(edges: DataFrame, nodes: DataFrame, rules: IdentityRules, excluded: DataFrame) -> DataFrame:
    """One row per shared node: node_key, reason `shared`, detail ("linked to 57 distinct member_card (main) ...").

    `edges`: the link-rule edges (src_key, dst_key, ...); `excluded`: node_keys already blocked (their links do
    not count). Counted per higher-priority type and scope, so one card per brand never makes a phone shared.
    """
    from pyspark.sql import functions as F

    from cdp.identity.edges import priority_of_type

    thresholds = {t.name: t.shared_threshold for t in rules.identifier_types if t.shared_threshold > 0}
    empty = nodes.sparkSession.createDataFrame([], "node_key string, reason string, detail string")
    if not thresholds:
        return empty
    pairs = edges.select("src_key", "dst_key").distinct()
    both = (pairs.select(F.col("src_key").alias("node_key"), F.col("dst_key").alias("other"))
            .unionByName(pairs.select(F.col("dst_key").alias("node_key"), F.col("src_key").alias("other"))))
    gone = F.broadcast(excluded.select("node_key"))
    both = (both.join(gone, "node_key", "left_anti")
            .join(gone.withColumnRenamed("node_key", "other"), "other", "left_anti"))
    # a node's own type is the prefix of its key; the other end's type, priority and scope come from the nodes
    my_type = F.substring_index(F.col("node_key"), ":", 1)
    them = nodes.select(F.col("node_key").alias("other"), F.col("id_type").alias("other_type"),
                        F.col("id_priority").alias("other_priority"), F.col("scope").alias("other_scope"))
    threshold = F.create_map(*[x for k, v in thresholds.items() for x in (F.lit(k), F.lit(v))])
    counted = (both.withColumn("id_type", my_type)
               .withColumn("threshold", threshold[F.col("id_type")])
               .where(F.col("threshold").isNotNull())
               .join(them, "other")
               .where(F.col("other_priority") < priority_of_type(F.col("id_type"), rules))
               .groupBy("node_key", "id_type", "threshold", "other_type", "other_scope")
               .agg(F.count(F.lit(1)).alias("n"))   # the pairs are distinct, so every `other` once
               .where(F.col("n") > F.col("threshold")))
    scope_text = F.when(F.col("other_scope").isNotNull(), F.concat(F.lit(" ("), F.col("other_scope"), F.lit(")"))).otherwise(F.lit(""))
    described = counted.select(
        "node_key", "n",
        F.concat(F.lit("linked to "), F.col("n").cast("string"), F.lit(" distinct "), F.col("other_type"), scope_text,
                 F.lit(" identifiers (shared_threshold "), F.col("threshold").cast("string"), F.lit(")")).alias("detail"))
    # one row per node: the largest count decides the detail (ties by text, deterministic)
    return (described.groupBy("node_key")
            .agg(F.max(F.struct(F.col("n"), F.col("detail"))).alias("_best"))
            .select("node_key", F.lit("shared").alias("reason"), F.col("_best.detail").alias("detail")))


def busy_nodes(daily: DataFrame, rules: IdentityRules, excluded: DataFrame) -> DataFrame:
    """One row per node seen on more than its type's `max_records_per_day` distinct records of one source on one
    (UTC) day: node_key, reason `shared`, detail ("seen on 24 pos records in one day (max_records_per_day 5)").

    `daily`: node_key, id_type, source, day, records (`edges.daily_record_counts`); `excluded`: node_keys already
    blocked.
    """
    from pyspark.sql import functions as F

    limits = busy_limits(rules)
    if not limits:
        return daily.sparkSession.createDataFrame([], "node_key string, reason string, detail string")
    limit = F.create_map(*[x for k, v in limits.items() for x in (F.lit(k), F.lit(v))])
    per_day = (daily.where(F.col("id_type").isin(list(limits)))
               .withColumn("limit", limit[F.col("id_type")])
               .where(F.col("records") > F.col("limit"))
               .join(excluded.select("node_key"), "node_key", "left_anti"))
    described = per_day.select(
        "node_key", F.col("records").alias("n"),
        F.concat(F.lit("seen on "), F.col("records").cast("string"), F.lit(" "), F.col("source"),
                 F.lit(" records in one day (max_records_per_day "), F.col("limit").cast("string"), F.lit(")"))
        .alias("detail"))
    return (described.groupBy("node_key")
            .agg(F.max(F.struct(F.col("n"), F.col("detail"))).alias("_best"))
            .select("node_key", F.lit("shared").alias("reason"), F.col("_best.detail").alias("detail")))


def busy_limits(rules: IdentityRules) -> dict[str, int]:
    """Identifier type -> max_records_per_day, for the types that declare one."""
    return {t.name: t.max_records_per_day for t in rules.identifier_types if t.max_records_per_day > 0}


def always_link_edges(overrides: DataFrame | None, nodes: DataFrame) -> DataFrame | None:
    """Steward always-link pairs as edges (src_key < dst_key) for nodes that exist, applied before every rule."""
    from pyspark.sql import functions as F

    if overrides is None:
        return None
    keys = nodes.select("node_key")
    pairs = (overrides.where(F.col("action") == "always_link")
             .select(F.least("node_key", "other_node_key").alias("src_key"),
                     F.greatest("node_key", "other_node_key").alias("dst_key"))
             .join(keys.withColumnRenamed("node_key", "src_key"), "src_key")
             .join(keys.withColumnRenamed("node_key", "dst_key"), "dst_key")
             .distinct())
    return pairs


def never_link_pairs(overrides: DataFrame | None) -> list[tuple[str, str]]:
    """Steward never-link pairs (a small list, collected to the driver)."""
    from pyspark.sql import functions as F

    if overrides is None:
        return []
    rows = (overrides.where(F.col("action") == "never_link")
            .select(F.least("node_key", "other_node_key").alias("a"), F.greatest("node_key", "other_node_key").alias("b"))
            .distinct().orderBy("a", "b").collect())
    return [(r.a, r.b) for r in rows]
