"""Identity stage: silver identifiers -> graph -> guardrails -> components -> stable One-IDs -> record map.

    spark-submit jobs/resolve_identity.py --date 2026-11-27          # or: cdp identity resolve --date ...

Steps (docs/identity.md explains each):
 1. Read the silver record tables (rows with dt <= run_date) and the rules of conf/identity.yaml.
 2. Observations (identifier x source record), nodes, link-rule edges with evidence (cdp.identity.edges).
 3. Guardrails: blocklist (raw values from the protected pii_values table), steward overrides, shared
    identifiers (cdp.identity.guardrails). Blocked/shared nodes take part in no merge and get no One-ID.
 4. Integer node ids in Spark (ordered by node_key), integer edge arrays to the driver through Arrow,
    `graph.resolve` with per-type limits (priority-ordered union), never-link overrides enforced.
 5. Stable One-IDs against the persisted map (`stable_ids.assign_one_ids`), history events appended,
    redirects maintained.
 6. Writes identity_nodes, identity_edges, identity_rejections, identity_record_map, the `one_id` column of
    the silver record tables; then contract checks (keys, accepted values, no One-ID above a limit).

Every run reads all silver up to `run_date`, so re-running a date equals running it once, and the persisted
node map makes ids stable; `rebuild()` recomputes from nothing and reports what would change.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import logging
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator

import numpy as np
import pandas as pd

from cdp.errors import CdpError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdp.config import Settings
    from cdp.identity.config import IdentityRules

log = logging.getLogger(__name__)

NODE_STATUSES = ("active", "blocked", "shared")
EDGE_STATUSES = ("kept", "dropped_limit", "dropped_never_link", "blocked_node", "shared_node")
HISTORY_EVENT_KEY = ("run_date", "one_id", "event_type", "related_one_id")  # one identity_history event


StepHook = Callable[[str], ContextManager[Any]]


@contextlib.contextmanager
def log_step(name: str) -> Iterator[None]:
    """The default step hook: log the wall time of one step (the benchmark passes one that samples CPU/memory)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        log.info("identity step %s: %.2f s", name, time.perf_counter() - start)


class IdentityContractError(CdpError):
    """An identity table broke its contract after a write (duplicate key, a One-ID above a limit, ...)."""


@dataclass
class Resolved:
    """Everything one resolution computed (Spark frames are persisted; pandas frames are driver-sized)."""
    observations: DataFrame
    nodes: DataFrame           # identity_nodes rows (with status, one_id)
    edges: DataFrame           # identity_edges rows (with status)
    rejections: DataFrame      # identity_rejections rows
    records: DataFrame         # every (source, source_record_id)
    node_map: pd.DataFrame     # node_key, one_id (active nodes)
    events: pd.DataFrame       # assign_one_ids events
    counts: dict[str, Any]


# --- reading ------------------------------------------------------------------------------------------------
def read_silver(spark: SparkSession, settings: Settings, rules: IdentityRules, run_date: dt.date) -> dict[str, DataFrame]:
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    silver = {}
    for source_name, source in rules.sources.items():
        if table_exists(spark, settings, source.table):
            df = read_table(spark, settings, source.table)
            if "dt" in df.columns:
                df = df.where(F.col("dt") <= F.lit(run_date))
            silver[source_name] = df
        else:
            log.warning("silver table %s does not exist yet: source %s skipped", source.table, source_name)
    if not silver:
        raise CdpError("no silver record table exists yet: run the ingest stage first (`cdp ingest` / `cdp run`)")
    return silver


def _optional(spark: SparkSession, settings: Settings, name: str) -> DataFrame | None:
    from cdp.lake import read_table, table_exists

    return read_table(spark, settings, name) if table_exists(spark, settings, name) else None


def read_previous(spark: SparkSession, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The persisted node -> one_id map (active nodes, with their anchor_at) and the redirects, as pandas."""
    from pyspark.sql import functions as F

    nodes = _optional(spark, settings, "identity_nodes")
    if nodes is not None:
        previous = nodes.where(F.col("one_id").isNotNull()).select("node_key", "one_id", "anchor_at").toPandas()
    else:
        previous = pd.DataFrame({"node_key": pd.Series(dtype=str), "one_id": pd.Series(dtype=str),
                                 "anchor_at": pd.Series(dtype="datetime64[ns]")})
    red = _optional(spark, settings, "identity_redirects")
    redirects = (red.toPandas() if red is not None else
                 pd.DataFrame(columns=["old_one_id", "current_one_id", "redirected_at", "reason"]))
    return previous, redirects


# --- the computation ----------------------------------------------------------------------------------------
def _assign(nodes_pd: pd.DataFrame, previous: pd.DataFrame, run_at: dt.datetime, redirects: pd.DataFrame):
    from cdp.identity.stable_ids import assign_one_ids

    kwargs = {}
    if "redirects" in inspect.signature(assign_one_ids).parameters:
        kwargs["redirects"] = redirects
    return assign_one_ids(nodes_pd, previous, run_at, **kwargs)


def _resolver(method: str, spark: SparkSession):
    """graph.resolve; for method 'spark' it runs the distributed components step with this session."""
    import functools

    from cdp.identity.graph import resolve

    return functools.partial(resolve, spark=spark) if method == "spark" else resolve


def compute(spark: SparkSession, settings: Settings, run_date: dt.date, rules: IdentityRules,
            previous: pd.DataFrame, redirects: pd.DataFrame, step: StepHook = log_step) -> Resolved:
    """Steps 1-5 without writing anything.

    Intermediate frames are local checkpoints: materialised once and cut from their lineage, so the many
    small actions that follow do not re-plan (or re-run) the whole silver-to-graph plan each time.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from cdp.identity.edges import RANK_SHIFT, build_nodes, extract_edges, extract_observations, unique_pairs
    from cdp.identity.guardrails import always_link_edges, blocked_nodes, never_link_pairs, shared_nodes
    from cdp.identity.persist import EDGE_STATUS, resolve_with_overrides

    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    with step("observations, nodes"):
        silver = read_silver(spark, settings, rules, run_date)
        observations = extract_observations(silver, rules).localCheckpoint()
        nodes = build_nodes(observations).localCheckpoint()
    with step("edges"):
        edges = extract_edges(silver, rules).localCheckpoint()
    with step("records"):
        records = _records(silver).localCheckpoint()
    with step("guardrails"):
        overrides = _optional(spark, settings, "identity_overrides")
        pii = _optional(spark, settings, "pii_values")

        # 3. guardrails
        blocked = blocked_nodes(nodes, pii, rules, overrides).localCheckpoint()
        shared = shared_nodes(edges, nodes, rules, blocked)
        excluded = blocked.unionByName(shared).localCheckpoint()

    # 4. integer ids and arrays
    with step("integer ids to driver"):
        active = nodes.join(excluded.select("node_key"), "node_key", "left_anti")
        limited = {t.name: t.max_per_one_id for t in rules.identifier_types}
        groups = sorted((r.id_type, r.scope or "") for r in active.select("id_type", "scope").distinct().collect())
        type_index = spark.createDataFrame([(t, s, i) for i, (t, s) in enumerate(groups)],
                                           "id_type string, _scope string, type_idx int")
        type_limits = np.array([limited[t] for t, _ in groups], dtype=np.int32)
        indexed = (active.withColumn("_scope", F.coalesce("scope", F.lit("")))
                   .join(F.broadcast(type_index), ["id_type", "_scope"])
                   .withColumn("node_idx", F.row_number().over(Window.orderBy("node_key")) - 1)
                   .select("node_key", "node_idx", "type_idx", "anchor_at").localCheckpoint())
        node_pd = indexed.select("node_idx", "type_idx", "node_key", "anchor_at").toPandas().sort_values("node_idx")
        node_type = node_pd["type_idx"].to_numpy(dtype=np.int16)

        pairs = unique_pairs(edges)
        forced = always_link_edges(overrides, nodes)
        if forced is not None:
            pairs = (pairs.unionByName(forced.withColumn("edge_rank", F.lit(-RANK_SHIFT).cast("long")))
                     .groupBy("src_key", "dst_key").agg(F.min("edge_rank").alias("edge_rank")))
        src_ix = indexed.select(F.col("node_key").alias("src_key"), F.col("node_idx").alias("src_idx"))
        dst_ix = indexed.select(F.col("node_key").alias("dst_key"), F.col("node_idx").alias("dst_idx"))
        int_pairs = (pairs.join(src_ix, "src_key").join(dst_ix, "dst_key")
                     .select("src_idx", "dst_idx", "edge_rank").toPandas().sort_values(["src_idx", "dst_idx"]))
        src = int_pairs["src_idx"].to_numpy(dtype=np.int64)
        dst = int_pairs["dst_idx"].to_numpy(dtype=np.int64)
        rank = int_pairs["edge_rank"].to_numpy(dtype=np.int64)
    with step("components"):
        key_to_idx = dict(zip(node_pd["node_key"], node_pd["node_idx"]))
        never = [(key_to_idx[a], key_to_idx[b]) for a, b in never_link_pairs(overrides) if a in key_to_idx and b in key_to_idx]
        comps = resolve_with_overrides(node_type, src, dst, rank, type_limits, method=rules.method,
                                       never_link=never, resolver=_resolver(rules.method, spark))

    # 5. stable ids
    # anchor time carried forward: a persisted node keeps the earliest anchor_at it ever had
    with step("stable ids"):
        nodes_pd = pd.DataFrame({"node_key": node_pd["node_key"].to_numpy(),
                                 "first_seen_at": pd.to_datetime(node_pd["anchor_at"]).to_numpy(),
                                 "label": comps.labels[node_pd["node_idx"].to_numpy()]})
        if len(previous) and "anchor_at" in previous:
            kept = nodes_pd["node_key"].map(dict(zip(previous["node_key"], pd.to_datetime(previous["anchor_at"]))))
            nodes_pd["first_seen_at"] = nodes_pd["first_seen_at"].where(
                kept.isna() | (nodes_pd["first_seen_at"] <= kept), kept)
        run_at = dt.datetime.combine(run_date, dt.time())
        node_map, events = _assign(nodes_pd, previous[["node_key", "one_id"]], run_at, redirects)
        node_map = node_map[["node_key", "one_id"]].assign(anchor_at=nodes_pd["first_seen_at"].to_numpy())

    # identity_nodes rows
    with step("output frames"):
        map_df = spark.createDataFrame(node_map, "node_key string, one_id string, anchor_at timestamp")
        status = excluded.groupBy("node_key").agg(F.min("reason").alias("_reason"))
        out_nodes = (nodes.drop("anchor_at").join(status, "node_key", "left").join(map_df, "node_key", "left")
                     .select("node_key", "id_type", "scope", "display", "first_seen_at", "last_seen_at", "anchor_at",
                             "record_count",
                             F.when(F.col("_reason").isNull(), "active")
                              .when(F.col("_reason") == "shared", "shared").otherwise("blocked").alias("status"),
                             "one_id")
                     .withColumn("run_date", F.lit(run_date)))

        # identity_edges rows
        pair_status = spark.createDataFrame(
            pd.DataFrame({"src_idx": src, "dst_idx": dst, "_reason": comps.edge_reason.astype(np.int32),
                          "_conflict": comps.edge_conflict.astype(np.int32)}),
            "src_idx long, dst_idx long, _reason int, _conflict int")
        conflict_text = F.create_map(*[x for i, (t, sc) in enumerate(groups) for x in (
            F.lit(i), F.lit(f"{t}{f' ({sc})' if sc else ''} (max_per_one_id {limited[t]})"))])
        code = F.create_map(*[x for k, v in EDGE_STATUS.items() for x in (F.lit(k), F.lit(v))])
        keyed_status = (pair_status.join(src_ix, "src_idx").join(dst_ix, "dst_idx")
                        .select("src_key", "dst_key", code[F.col("_reason")].alias("status"),
                                conflict_text[F.col("_conflict")].alias("conflict")))
        ex = excluded.groupBy("node_key").agg(F.min("reason").alias("r"))
        exs = ex.select(F.col("node_key").alias("src_key"), F.col("r").alias("_rs"))
        exd = ex.select(F.col("node_key").alias("dst_key"), F.col("r").alias("_rd"))
        node_reason = F.coalesce("_rs", "_rd")
        conflicts = keyed_status.select("src_key", "dst_key", "conflict")
        keyed_status = keyed_status.drop("conflict")
        out_edges = (edges.join(keyed_status, ["src_key", "dst_key"], "left").join(exs, "src_key", "left")
                     .join(exd, "dst_key", "left")
                     .withColumn("status", F.coalesce(F.col("status"),
                                                      F.when(node_reason == "shared", "shared_node")
                                                      .when(node_reason.isNotNull(), "blocked_node")))
                     .select("src_key", "dst_key", "rule", "source", "rank", "sample_record_id", "first_seen_at",
                             "last_seen_at", "record_count", "status")
                     .withColumn("run_date", F.lit(run_date)))
        if forced is not None:
            forced_rows = (forced.join(keyed_status, ["src_key", "dst_key"], "left")
                           .select("src_key", "dst_key", F.lit("override_always_link").alias("rule"),
                                   F.lit("steward").alias("source"), F.lit(-1).alias("rank"),
                                   F.lit(None).cast("string").alias("sample_record_id"),
                                   F.lit(None).cast("timestamp").alias("first_seen_at"),
                                   F.lit(None).cast("timestamp").alias("last_seen_at"),
                                   F.lit(0).cast("long").alias("record_count"), "status")
                           .withColumn("run_date", F.lit(run_date)))
            out_edges = out_edges.unionByName(forced_rows)
        out_edges = out_edges.localCheckpoint()

        # identity_rejections rows
        node_rej = excluded.select(F.lit("node").alias("kind"), "node_key", F.lit(None).cast("string").alias("other_node_key"),
                                   "reason", "detail")
        edge_rej = (out_edges.where(F.col("status").isin("dropped_limit", "dropped_never_link"))
                    .groupBy("src_key", "dst_key", "status")
                    .agg(F.min(F.struct("rank", "rule")).alias("_r"))
                    .join(conflicts, ["src_key", "dst_key"], "left")
                    .select(F.lit("edge").alias("kind"), F.col("src_key").alias("node_key"),
                            F.col("dst_key").alias("other_node_key"),
                            F.when(F.col("status") == "dropped_limit", "limit").otherwise("never_link").alias("reason"),
                            F.when(F.col("status") == "dropped_limit",
                                   F.concat(F.lit("link "), F.col("_r.rule"), F.lit(" (rank "), F.col("_r.rank").cast("string"),
                                            F.lit(") dropped: merging would exceed the limit of "),
                                            F.coalesce(F.col("conflict"), F.lit("an identifier type")),
                                            F.lit("; the more trusted and older links were applied first")))
                            .otherwise(F.concat(F.lit("link "), F.col("_r.rule"),
                                                F.lit(" cut: weakest link on the path between a steward never-link pair")))
                            .alias("detail")))
        rejections = node_rej.unionByName(edge_rej).withColumn("run_date", F.lit(run_date))

        n_excluded, n_blocked = excluded.count(), blocked.count()
        counts = {
            "nodes": len(node_pd) + n_excluded,
            "nodes_active": len(node_pd),
            "nodes_blocked": n_blocked,
            "nodes_shared": n_excluded - n_blocked,
            "link_pairs": len(src),
            "links_dropped_limit": int((comps.edge_reason == 1).sum()),
            "links_dropped_never_link": int((comps.edge_reason == 2).sum()),
            "one_ids": int(node_map["one_id"].nunique()),
            "largest_profile_nodes": int(node_map["one_id"].value_counts().max()) if len(node_map) else 0,
        }
    return Resolved(observations, out_nodes, out_edges, rejections, records, node_map, events, counts)


def _records(silver: dict[str, DataFrame]) -> DataFrame:
    from functools import reduce

    from pyspark.sql import functions as F

    parts = [df.select(F.lit(name).alias("source"), F.col("source_record_id").cast("string")) for name, df in silver.items()]
    return reduce(lambda a, b: a.unionByName(b), parts).distinct()


# --- writing ------------------------------------------------------------------------------------------------
def _history_frame(spark: SparkSession, events: pd.DataFrame, run_date: dt.date) -> DataFrame:
    cols = ["one_id", "event_type", "related_one_id", "node_count", "reason", "event_at"]
    ev = events[cols].copy() if len(events) else pd.DataFrame(columns=cols)
    ev["node_count"] = ev["node_count"].astype("int64")
    ev["event_at"] = pd.to_datetime(ev["event_at"])
    ev["run_date"] = pd.Series([run_date] * len(ev), dtype=object)
    schema = ("one_id string, event_type string, related_one_id string, node_count long, reason string, "
              "event_at timestamp, run_date date")
    if not len(ev):
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(ev[cols + ["run_date"]].astype({"related_one_id": object}), schema)


def fill_silver_one_id(spark: SparkSession, settings: Settings, table: str, source: str, record_map: DataFrame) -> None:
    """MERGE the record map into one silver record table: every row of a record gets the record's one_id."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    updates = record_map.where(F.col("source") == source).select("source_record_id", "one_id")
    (DeltaTable.forPath(spark, settings.table_path(table)).alias("t")
     .merge(updates.alias("s"), "t.source_record_id = s.source_record_id")
     .whenMatchedUpdate(condition="NOT (t.one_id <=> s.one_id)", set={"one_id": "s.one_id"})
     .execute())


def write_resolution(spark: SparkSession, settings: Settings, run_date: dt.date, rules: IdentityRules,
                     res: Resolved, redirects: pd.DataFrame, step: StepHook = log_step) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from cdp.identity.persist import record_one_ids, update_redirects
    from cdp.lake import merge_table, overwrite_table

    # Crash safety (docs/reliability.md): identity_nodes is the persisted map the next run starts from
    # (read_previous), so it is written last; a run killed before it leaves the previous map in place and the
    # re-run computes the same ids and events, and history is an insert-only MERGE on the event, so the
    # events a killed run already wrote are not added twice.
    with step("write edges, rejections"):
        overwrite_table(res.edges, settings, "identity_edges")
        overwrite_table(res.rejections, settings, "identity_rejections")
    with step("write history, redirects"):
        if len(res.events) or not _exists(spark, settings, "identity_history"):
            merge_table(spark, _history_frame(spark, res.events, run_date), settings, "identity_history",
                        keys=HISTORY_EVENT_KEY, update=False)
        new_redirects = update_redirects(redirects, res.events)
        red_schema = "old_one_id string, current_one_id string, redirected_at timestamp, reason string"
        red_df = (spark.createDataFrame(new_redirects.assign(redirected_at=pd.to_datetime(new_redirects["redirected_at"])),
                                        red_schema) if len(new_redirects) else spark.createDataFrame([], red_schema))
        overwrite_table(red_df, settings, "identity_redirects")

    with step("record map"):
        node_map = res.nodes.select("node_key", "one_id")  # identity_nodes is written last
        record_map = record_one_ids(res.observations, node_map, res.records).withColumn("run_date", F.lit(run_date))
        overwrite_table(record_map, settings, "identity_record_map")
        record_map = read_table_cols(spark, settings, "identity_record_map", "source", "source_record_id", "one_id")
    with step("silver one_id"):
        if rules.fill_silver_one_id:
            from cdp.lake import table_exists

            for source_name, source in rules.sources.items():
                if table_exists(spark, settings, source.table):
                    fill_silver_one_id(spark, settings, source.table, source_name, record_map)
    with step("write nodes"):
        overwrite_table(res.nodes, settings, "identity_nodes")
    with step("summary"):
        rec = record_map.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("one_id").isNull().cast("int")).alias("none")).first()
    events = res.events["event_type"].value_counts().to_dict() if len(res.events) else {}
    return {"records": int(rec["n"]), "records_without_one_id": int(rec["none"] or 0),
            "events": {k: int(v) for k, v in sorted(events.items())}, "redirects": len(new_redirects)}


def _exists(spark: SparkSession, settings: Settings, name: str) -> bool:
    from cdp.lake import table_exists

    return table_exists(spark, settings, name)


def read_table_cols(spark: SparkSession, settings: Settings, name: str, *cols: str) -> DataFrame:
    from cdp.lake import read_table

    return read_table(spark, settings, name).select(*cols)


def check_contracts(spark: SparkSession, settings: Settings, rules: IdentityRules) -> dict[str, int]:
    """Contract checks on the written identity tables; raises IdentityContractError on any breach."""
    from pyspark.sql import functions as F

    from cdp.lake import read_table

    def flag(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    nodes = read_table(spark, settings, "identity_nodes")
    active = F.col("status") == "active"
    row = nodes.agg(
        (F.count(F.lit(1)) - F.countDistinct("node_key")).alias("nodes_duplicate_key"),
        flag(F.col("node_key").isNull()).alias("nodes_null_key"),
        flag(~F.col("status").isin(*NODE_STATUSES) | F.col("status").isNull()).alias("nodes_bad_status"),
        flag(active & F.col("one_id").isNull()).alias("active_without_one_id"),
        flag(~active & F.col("one_id").isNotNull()).alias("inactive_with_one_id")).first()
    problems: dict[str, int] = {k: int(v or 0) for k, v in row.asDict().items()}
    limits = F.create_map(*[x for t in rules.identifier_types if t.max_per_one_id > 0
                            for x in (F.lit(t.name), F.lit(t.max_per_one_id))])
    problems["one_ids_above_limit"] = (nodes.where(F.col("one_id").isNotNull())
                                       .groupBy("one_id", "id_type", "scope").count()
                                       .where(F.col("count") > limits[F.col("id_type")]).count())
    edges = read_table(spark, settings, "identity_edges")
    row = edges.agg(
        flag(~F.col("status").isin(*EDGE_STATUSES) | F.col("status").isNull()).alias("edges_bad_status"),
        (F.count(F.lit(1)) - F.countDistinct("src_key", "dst_key", "rule")).alias("edges_duplicate_key")).first()
    problems.update({k: int(v or 0) for k, v in row.asDict().items()})
    rm = read_table(spark, settings, "identity_record_map")
    problems["record_map_duplicate_key"] = int(rm.agg(
        F.count(F.lit(1)) - F.countDistinct("source", "source_record_id")).first()[0])
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        raise IdentityContractError(f"identity tables broke their contract: {bad}")
    return problems


# --- entry points -------------------------------------------------------------------------------------------
def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, step: StepHook = log_step) -> dict[str, Any]:
    """The daily identity stage (idempotent for a run date).

    step: a context-manager factory wrapped around each step by name (default: log its wall time).
    """
    from cdp.identity.config import load_identity_rules

    rules = load_identity_rules(settings)
    with step("read previous map"):
        previous, redirects = read_previous(spark, settings)
    res = compute(spark, settings, run_date, rules, previous, redirects, step=step)
    summary = {"run_date": str(run_date), **res.counts}
    summary.update(write_resolution(spark, settings, run_date, rules, res, redirects, step=step))
    with step("contracts"):
        check_contracts(spark, settings, rules)
    _release(res)
    log.info("identity stage: %s", summary)
    return summary


def rebuild(spark: SparkSession, settings: Settings, run_date: dt.date, dry_run: bool = True) -> dict[str, Any]:
    """Full rebuild under the current rules: recompute every One-ID from nothing and report what changes.

    dry_run: only the report (profiles merged / split / ids changed against the persisted map).
    Otherwise the resolution is applied like a daily run (the persisted ids survive where the rules allow;
    merges and splits go to identity_history).
    """
    from cdp.identity.config import load_identity_rules
    from cdp.identity.persist import compare_maps

    rules = load_identity_rules(settings)
    previous, redirects = read_previous(spark, settings)
    empty = previous.iloc[0:0]
    scratch = compute(spark, settings, run_date, rules, empty, empty_redirects())
    report = {"run_date": str(run_date), "dry_run": dry_run, **compare_maps(previous, scratch.node_map)}
    _release(scratch)
    if not dry_run:
        report["applied"] = run(spark, settings, run_date)
    return report


def empty_redirects() -> pd.DataFrame:
    return pd.DataFrame(columns=["old_one_id", "current_one_id", "redirected_at", "reason"])


def _release(res: Resolved) -> None:
    for df in (res.observations, res.edges, res.records):
        df.unpersist()


def main(argv: list[str] | None = None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
