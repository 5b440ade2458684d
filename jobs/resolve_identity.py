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
    the silver record tables; then contract checks (keys, accepted values, no One-ID above a limit), and the
    run's counts to identity_run_summary.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator

import numpy as np
import pandas as pd

from cdp.errors import CdpError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from cdp.config import Settings
    from cdp.identity.config import IdentityRules

log = logging.getLogger(__name__)

NODE_STATUSES = ("active", "blocked", "shared")
# share of a source's records whose one_id changes above which the silver table is rewritten in one pass
# instead of MERGEd (a MERGE reads the table twice)
REWRITE_SILVER_SHARE = 0.5
# a silver rewrite meets the One-IDs of up to this many identifier combinations (or records) of one source as a
# broadcast map (~100 MB at 1M combinations)
BROADCAST_MAX_ROWS = 5_000_000
# a silver one_id MERGE sends its records (source_record_id, one_id) to every task as a broadcast when at most
# this many: the stage's frame of records comes out of joins and Spark did not broadcast it by itself (1M
# customers, one daily run: the silver one_id step took 90 s without the hint, 41 s with it); the incremental
# record map's identifier rows go to the One-ID join as a broadcast under the same bound
MERGE_BROADCAST_MAX_ROWS = 1_000_000
EDGE_STATUSES = ("kept", "dropped_limit", "dropped_never_link", "blocked_node", "shared_node")
HISTORY_EVENT_KEY = ("run_date", "one_id", "event_type", "related_one_id")  # one identity_history event
# the columns Delta keeps file statistics for in the two tables rewritten whole every run: the keys they are
# looked up by (explain, console). Statistics on every column took 1.8 s of a 6.6 s identity_nodes write and
# 1.7 s of 5.0 s for identity_edges at 1M customers.
STATS_COLUMNS = {"identity_nodes": "node_key,one_id", "identity_edges": "src_key,dst_key"}


StepHook = Callable[[str], ContextManager[Any]]

# identity_run_summary: one row per stage run, the counts a data team watches from day to day (no personal data)
RUN_SUMMARY_TABLE = "identity_run_summary"
RUN_SUMMARY_SCHEMA = (
    "run_date date, finished_at timestamp, duration_s double, mode string, full_pass_reason string, records long, "
    "records_touched long, records_without_one_id long, nodes long, nodes_active long, nodes_blocked long, "
    "nodes_shared long, link_pairs long, links_dropped_limit long, links_dropped_never_link long, one_ids long, "
    "largest_profile_nodes long, creates long, merges long, splits long, retires long, redirects long, "
    "silver_records_updated map<string, long>, records_spanning_brands long")


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

    def __init__(self, problems: dict[str, int]):
        super().__init__(f"identity tables broke their contract: {problems}")
        self.problems = problems


@dataclass
class Resolved:
    """Everything one resolution computed (Spark frames are persisted; pandas frames are driver-sized).

    The fields marked (settled) are filled by `settle()`: the stable-id step runs in a thread while the caller
    writes the edges and rejections, and `settle()` waits for it.
    """
    combos: dict[str, DataFrame]  # per source: its distinct identifier combinations (edges.identifier_combos)
    edges: DataFrame           # identity_edges rows (with status)
    rejections: DataFrame      # identity_rejections rows
    records: DataFrame         # every (source, source_record_id): combination keys, one_id state of its rows
    busy_days: DataFrame       # identity_busy_days rows
    finish: Callable[[Resolved], None] | None = None   # fills the settled fields (compute's closure)
    nodes: DataFrame | None = None          # (settled) identity_nodes rows (with status, one_id)
    node_one_ids: DataFrame | None = None   # (settled) node_key, one_id, anchor_at of the active nodes
    node_map: pd.DataFrame | None = None    # (settled) node_key, one_id, anchor_at (active nodes)
    events: pd.DataFrame | None = None      # (settled) assign_one_ids events
    counts: dict[str, Any] | None = None    # (settled)
    changed_nodes: pd.Series | None = None  # (settled) node keys whose one_id differs from the previous map
    combo_ids: DataFrame | None = None      # identifiers of every combination (incremental runs)
    increment: Any = None                   # identity_state.Increment of an incremental run, None: full pass
    touched_now: DataFrame | None = None    # current record-state rows of the touched records (incremental)
    touched_before: DataFrame | None = None  # persisted record-state rows of the touched records (incremental)
    new_combos: DataFrame | None = None     # combinations not in the persisted state yet, as state rows
    new_combo_nodes: DataFrame | None = None  # their identifiers (source, ck1, ck2, node_key)

    def settle(self) -> Resolved:
        """Wait for the stable ids and build the identity_nodes rows (once)."""
        if self.finish is not None:
            finish, self.finish = self.finish, None
            finish(self)
        return self


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

    # through Arrow: row by row, 2.75 M nodes at 1M customers took 48 s of a daily run
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    nodes = _optional(spark, settings, "identity_nodes")
    if nodes is not None:
        # the strings stay Arrow-backed (no Python object per key; the stable-id step hashes them as Arrow)
        table = nodes.where(F.col("one_id").isNotNull()).select("node_key", "one_id", "anchor_at").toArrow()
        previous = table.to_pandas(types_mapper=_arrow_backed_strings)
        previous["anchor_at"] = _naive(previous["anchor_at"], spark)
    else:
        previous = pd.DataFrame({"node_key": pd.Series(dtype=str), "one_id": pd.Series(dtype=str),
                                 "anchor_at": pd.Series(dtype="datetime64[ns]")})
    red = _optional(spark, settings, "identity_redirects")
    redirects = red.toPandas() if red is not None else empty_redirects()
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


def _checkpoint(df: DataFrame) -> DataFrame:
    return df.localCheckpoint()


def compute(spark: SparkSession, settings: Settings, run_date: dt.date, rules: IdentityRules,
            previous_map: Callable[[], tuple[pd.DataFrame, pd.DataFrame]], step: StepHook = log_step,
            increment: Any = None, silver: dict[str, DataFrame] | None = None) -> Resolved:
    """Steps 1-5 without writing anything.

    previous_map: gives the persisted map and the redirects (`read_previous`); called when the stable-id step
    needs them, so the stage can read them in a thread while the graph is built.

    increment: an `identity_state.Increment` for an incremental run (the graph is updated for the touched
    records only; `silver` is then the frames the plan was made on), None for the full pass.

    Intermediate frames are local checkpoints: materialised once and cut from their lineage, so the actions
    that follow do not re-plan (or re-run) the silver-to-graph plan. Only integer arrays, the active nodes'
    keys and anchors, and the few dropped links cross between Spark and the driver.
    """
    from pyspark.sql import functions as F

    from cdp.identity.edges import (RANK_SHIFT, daily_record_counts, edge_rank_col, graph_from_combos,
                                    identifier_combos, record_keys)
    from cdp.identity.graph import unique_int_pairs
    from cdp.identity.guardrails import always_link_edges, busy_limits, never_link_pairs
    from cdp.identity.incremental import over_limit_days
    from cdp.lake import read_table
    from cdp.identity.persist import EDGE_STATUS, REASON_KEPT, resolve_with_overrides

    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    if silver is None:
        silver = read_silver(spark, settings, rules, run_date)
    extra: dict[str, Any] = {}
    if increment is None:
        with step("records, combinations"):
            records = record_keys(silver, rules).localCheckpoint()
            combos = {name: df.localCheckpoint() for name, df in identifier_combos(silver, rules).items()}
        with step("observations, nodes, edges"):
            nodes, edges = graph_from_combos(records, combos, rules, materialise=_checkpoint)
            nodes, edges = nodes.localCheckpoint(), edges.localCheckpoint()
        with step("busy days"):
            busy_days = over_limit_days(daily_record_counts(silver, rules, list(busy_limits(rules))), rules).localCheckpoint()
    else:
        records, combos, nodes, edges, busy_days, extra = _update_graph(spark, settings, rules, silver, increment, step)
    # records whose rows carry two brands: one record id delivered by two brands (the full pass counts them all,
    # an increment the records it read)
    read = records if increment is None else extra["touched_now"]
    spanning = read.where(F.col("spans_brands")).count()
    if spanning:
        log.warning("identity stage: %d source record id(s) were delivered by more than one brand and are resolved "
                    "as one record each (docs/landing-contract.md, 'Keys and versions')", spanning)
    with step("guardrails"):
        overrides = _optional(spark, settings, "identity_overrides")
        pii = _optional(spark, settings, "pii_values")
        if increment is None:
            excluded = exclusions(nodes, edges, busy_days, pii, rules, overrides)
        else:
            # only the affected identifiers can change their verdict (docs/identity.md §5): the others keep
            # the one the last run recorded in identity_rejections
            affected = F.broadcast(extra.pop("affected"))
            before = (read_table(spark, settings, "identity_rejections").where(F.col("kind") == "node")
                      .select("node_key", "reason", "detail").join(affected, "node_key", "left_anti"))
            still_blocked = before.where(F.col("reason") != "shared").select("node_key")
            src = edges.join(affected.withColumnRenamed("node_key", "src_key"), "src_key", "left_semi")
            dst = edges.join(affected.withColumnRenamed("node_key", "dst_key"), "dst_key", "left_semi")
            fresh = exclusions(nodes, src.unionByName(dst), busy_days, pii, rules, overrides, only=affected,
                               also_blocked=still_blocked)
            excluded = before.unionByName(fresh).localCheckpoint()
        excluded_pd = excluded.select("node_key", "reason").toPandas()

    # 4. integer ids: node_idx = position in node_key order (the same graph gives the same ids), computed on
    # the driver from a Spark-side unique id (no single-partition window over all nodes)
    with step("integer ids to driver"):
        active = nodes.join(excluded.select("node_key"), "node_key", "left_anti")
        limited = {t.name: t.max_per_one_id for t in rules.identifier_types}
        groups = sorted((r.id_type, r.scope or "") for r in active.select("id_type", "scope").distinct().collect())
        type_index = spark.createDataFrame([(t, s, i) for i, (t, s) in enumerate(groups)],
                                           "id_type string, _scope string, type_idx int")
        type_limits = np.array([limited[t] for t, _ in groups], dtype=np.int32)
        indexed = (active.withColumn("_scope", F.coalesce("scope", F.lit("")))
                   .join(F.broadcast(type_index), ["id_type", "_scope"])
                   .select("node_key", F.monotonically_increasing_id().alias("node_uid"), "type_idx", "anchor_at")
                   .localCheckpoint())
        node_table = indexed.toArrow()
        node_table = node_table.take(_key_order(node_table["node_key"]))   # row i = node_idx i
        node_pd = node_table.to_pandas()
        # Arrow carries the session time zone; the driver works on naive UTC times (as toPandas gives them)
        node_pd["anchor_at"] = _naive(node_pd["anchor_at"], spark)
        node_type = node_pd["type_idx"].to_numpy(dtype=np.int16)

        # every rule's evidence with its int64 rank; the ends become node indices on the driver (Arrow hashes
        # the keys), and each pair keeps its most trusted rank there too: no shuffle of 2 M string pairs
        ranked = edges.select("src_key", "dst_key", edge_rank_col(F.col("rank"), F.col("first_seen_at")).alias("edge_rank"))
        forced = always_link_edges(overrides, nodes)
        if forced is not None:
            forced = forced.localCheckpoint()
            ranked = ranked.unionByName(forced.select("src_key", "dst_key", F.lit(-RANK_SHIFT).cast("long").alias("edge_rank")))
        evidence = ranked.toArrow()
        src, dst, rank = unique_int_pairs(_arrow_positions(evidence["src_key"], node_table["node_key"]),
                                          _arrow_positions(evidence["dst_key"], node_table["node_key"]),
                                          evidence["edge_rank"].to_numpy().astype(np.int64))
        del evidence
    with step("components"):
        never_keys = never_link_pairs(overrides)
        never = []
        if never_keys:
            position = pd.Index(node_pd["node_key"])
            never = [(int(position.get_loc(a)), int(position.get_loc(b))) for a, b in never_keys
                     if a in position and b in position]
        comps = resolve_with_overrides(node_type, src, dst, rank, type_limits, method=rules.method,
                                       never_link=never, resolver=_resolver(rules.method, spark))

    # 5. stable ids: driver work on arrays only, run in a thread while the caller writes identity_edges and
    # identity_rejections (which need the components, not the ids); `Resolved.settle` waits for it
    with step("read previous map"):
        previous, redirects = previous_map()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="identity-stable-ids")
    pending = pool.submit(_stable_ids, node_pd, node_table["node_key"], comps.labels, previous, redirects, run_date)
    pool.shutdown(wait=False)

    with step("output frames"):
        # identity_edges rows: only the links the components step did not keep travel back from the driver
        not_kept = np.flatnonzero(comps.edge_reason != REASON_KEPT)
        conflict_of = {i: f"{t}{f' ({sc})' if sc else ''} (max_per_one_id {limited[t]})" for i, (t, sc) in enumerate(groups)}
        dropped = pd.DataFrame({
            "src_key": node_pd["node_key"].to_numpy()[src[not_kept]],
            "dst_key": node_pd["node_key"].to_numpy()[dst[not_kept]],
            "status": [EDGE_STATUS[int(r)] for r in comps.edge_reason[not_kept]],
            "conflict": [conflict_of.get(int(c)) for c in comps.edge_conflict[not_kept]]})
        # the arrays are ordered by node index, the keys by node_key: the pair's ends keep src_key < dst_key
        swap = dropped["src_key"] > dropped["dst_key"]
        dropped.loc[swap, ["src_key", "dst_key"]] = dropped.loc[swap, ["dst_key", "src_key"]].to_numpy()
        dropped_schema = "src_key string, dst_key string, status string, conflict string"
        dropped_df = F.broadcast((spark.createDataFrame(dropped, dropped_schema) if len(dropped)
                                  else spark.createDataFrame([], dropped_schema)).localCheckpoint())
        ex = excluded.select("node_key", "reason")
        exs = ex.select(F.col("node_key").alias("src_key"), F.col("reason").alias("_rs"))
        exd = ex.select(F.col("node_key").alias("dst_key"), F.col("reason").alias("_rd"))
        node_reason = F.coalesce("_rs", "_rd")
        edge_status = F.coalesce(F.when(node_reason == "shared", "shared_node").when(node_reason.isNotNull(), "blocked_node"),
                                 F.col("_dropped"), F.lit("kept"))
        keyed_status = dropped_df.select("src_key", "dst_key", F.col("status").alias("_dropped"))
        out_edges = (edges.join(keyed_status, ["src_key", "dst_key"], "left").join(exs, "src_key", "left")
                     .join(exd, "dst_key", "left")
                     .withColumn("status", edge_status)
                     .select("src_key", "dst_key", "rule", "source", "rank", "sample_record_id", "first_seen_at",
                             "last_seen_at", "record_count", "status")
                     .withColumn("run_date", F.lit(run_date)))
        if forced is not None:
            forced_rows = (forced.join(keyed_status, ["src_key", "dst_key"], "left").join(exs, "src_key", "left")
                           .join(exd, "dst_key", "left")
                           .select("src_key", "dst_key", F.lit("override_always_link").alias("rule"),
                                   F.lit("steward").alias("source"), F.lit(-1).alias("rank"),
                                   F.lit(None).cast("string").alias("sample_record_id"),
                                   F.lit(None).cast("timestamp").alias("first_seen_at"),
                                   F.lit(None).cast("timestamp").alias("last_seen_at"),
                                   F.lit(0).cast("long").alias("record_count"), edge_status.alias("status"))
                           .withColumn("run_date", F.lit(run_date)))
            out_edges = out_edges.unionByName(forced_rows)

        # identity_rejections rows
        node_rej = excluded.select(F.lit("node").alias("kind"), "node_key",
                                   F.lit(None).cast("string").alias("other_node_key"), "reason", "detail")
        ruled = edges.select("src_key", "dst_key", "rank", "rule")
        if forced is not None:
            ruled = ruled.unionByName(forced.select("src_key", "dst_key", F.lit(-1).alias("rank"),
                                                    F.lit("override_always_link").alias("rule")))
        edge_rej = (ruled.join(dropped_df, ["src_key", "dst_key"])
                    .groupBy("src_key", "dst_key", "status", "conflict")
                    .agg(F.min(F.struct("rank", "rule")).alias("_r"))
                    .select(F.lit("edge").alias("kind"), F.col("src_key").alias("node_key"),
                            F.col("dst_key").alias("other_node_key"),
                            F.when(F.col("status") == "dropped_limit", "limit").otherwise("never_link").alias("reason"),
                            F.when(F.col("status") == "dropped_limit",
                                   F.concat(F.lit("link "), F.col("_r.rule"), F.lit(" (rank "),
                                            F.col("_r.rank").cast("string"),
                                            F.lit(") dropped: merging would exceed the limit of "),
                                            F.coalesce(F.col("conflict"), F.lit("an identifier type")),
                                            F.lit("; the more trusted and older links were applied first")))
                            .otherwise(F.concat(F.lit("link "), F.col("_r.rule"),
                                                F.lit(" cut: weakest link on the path between a steward never-link pair")))
                            .alias("detail")))
        rejections = node_rej.unionByName(edge_rej).withColumn("run_date", F.lit(run_date))

    n_excluded = len(excluded_pd)
    n_blocked = int((excluded_pd["reason"] != "shared").sum())

    def finish(res: Resolved) -> None:
        with step("stable ids"):
            node_map, events, changed_nodes = pending.result()
        with step("node frames"):
            # identity_nodes rows; the map goes back to Spark keyed by the integer node_uid
            map_df = spark.createDataFrame(
                pd.DataFrame({"node_uid": node_pd["node_uid"].to_numpy(dtype=np.int64),
                              "one_id": node_map["one_id"].to_numpy(), "anchor_at": node_map["anchor_at"].to_numpy()}),
                "node_uid long, one_id string, anchor_at timestamp")
            keyed_map = indexed.select("node_key", "node_uid").join(map_df, "node_uid").drop("node_uid").localCheckpoint()
            # anchor_at: the carried-forward anchor of active nodes; the graph's own for blocked / shared ones
            # (an incremental run reads it back as the node's anchor)
            out_nodes = (nodes.withColumnRenamed("anchor_at", "_graph_anchor_at")
                         .join(excluded.select("node_key", F.col("reason").alias("_reason")), "node_key", "left")
                         .join(keyed_map, "node_key", "left")
                         .select("node_key", "id_type", "scope", "display", "first_seen_at", "last_seen_at",
                                 F.coalesce("anchor_at", "_graph_anchor_at").alias("anchor_at"), "record_count",
                                 F.when(F.col("_reason").isNull(), "active")
                                  .when(F.col("_reason") == "shared", "shared").otherwise("blocked").alias("status"),
                                 "one_id")
                         .withColumn("run_date", F.lit(run_date)))

        res.nodes, res.node_one_ids, res.node_map, res.events = out_nodes, keyed_map, node_map, events
        res.changed_nodes = changed_nodes
        res.counts = {
            "nodes": len(node_pd) + n_excluded,
            "nodes_active": len(node_pd),
            "nodes_blocked": n_blocked,
            "nodes_shared": n_excluded - n_blocked,
            "link_pairs": len(src),
            "links_dropped_limit": int((comps.edge_reason == 1).sum()),
            "links_dropped_never_link": int((comps.edge_reason == 2).sum()),
            "one_ids": int(node_map["one_id"].nunique()),
            "largest_profile_nodes": int(node_map["one_id"].value_counts().max()) if len(node_map) else 0,
            "mode": "full" if increment is None else "incremental",
            "records_spanning_brands": spanning,
        }

    return Resolved(combos=combos, edges=out_edges, rejections=rejections, records=records, busy_days=busy_days,
                    increment=increment, finish=finish, **extra)


def _stable_ids(node_pd: pd.DataFrame, node_keys, labels: np.ndarray, previous: pd.DataFrame,
                redirects: pd.DataFrame, run_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """node_map (node_key, one_id, anchor_at), the events, and the previous map's nodes whose One-ID moved.
    node_pd: the active nodes by node index (node_key, anchor_at), node_keys: the same keys as Arrow, labels:
    the component of each."""
    # anchor time carried forward: a persisted node keeps the earliest anchor_at it ever had
    nodes_pd = pd.DataFrame({"node_key": node_pd["node_key"].to_numpy(),
                             "first_seen_at": pd.to_datetime(node_pd["anchor_at"]).to_numpy(),
                             "label": labels})
    # rows of `previous` by node (and back): hashed once by Arrow, not by pandas merges on strings
    in_previous = _arrow_positions(node_keys, _arrow_column(previous["node_key"]))
    if len(previous) and "anchor_at" in previous:
        kept = pd.to_datetime(previous["anchor_at"]).to_numpy()[np.maximum(in_previous, 0)]
        kept[in_previous < 0] = np.datetime64("NaT")
        nodes_pd["first_seen_at"] = nodes_pd["first_seen_at"].where(
            pd.isna(kept) | (nodes_pd["first_seen_at"].to_numpy() <= kept), kept)
    run_at = dt.datetime.combine(run_date, dt.time())
    node_map, events = _assign(nodes_pd, previous[["node_key", "one_id"]], run_at, redirects)
    node_map = node_map[["node_key", "one_id"]].assign(anchor_at=nodes_pd["first_seen_at"].to_numpy())
    # persisted nodes whose One-ID moved (merged, split, blocked, gone): their records need a new look; a
    # node that is new this run comes with a touched record
    now_row = np.full(len(previous), -1, dtype=np.int64)    # node_map (= nodes_pd) row of each previous node
    now_row[in_previous[in_previous >= 0]] = np.flatnonzero(in_previous >= 0)
    now_id = np.where(now_row >= 0, node_map["one_id"].to_numpy(dtype=object)[np.maximum(now_row, 0)], "") \
        if len(node_map) else np.full(len(previous), "", dtype=object)
    before = previous["one_id"].to_numpy(dtype=object, na_value=None)
    differs = pd.notna(before) & (before != now_id)
    changed_nodes = previous["node_key"][differs].reset_index(drop=True)

    return node_map, events, changed_nodes


def exclusions(nodes: DataFrame, edges: DataFrame, busy_days: DataFrame, pii: DataFrame | None,
               rules: IdentityRules, overrides: DataFrame | None, only: DataFrame | None = None,
               also_blocked: DataFrame | None = None) -> DataFrame:
    """node_key, reason, detail of every blocked or shared node (one row each: the first reason by name).

    only: restrict the verdicts to these node keys (`edges` must then hold every edge touching them);
    also_blocked: node keys blocked already, whose links do not count either.
    """
    from pyspark.sql import functions as F

    from cdp.identity.guardrails import blocked_nodes, busy_nodes, shared_nodes

    subject = nodes if only is None else nodes.join(only, "node_key", "left_semi")
    blocked = blocked_nodes(subject, pii, rules, overrides).localCheckpoint()
    gone = blocked.select("node_key") if also_blocked is None else blocked.select("node_key").unionByName(also_blocked)
    shared = shared_nodes(edges, nodes, rules, gone).unionByName(busy_nodes(busy_days, rules, gone))
    if only is not None:
        shared = shared.join(only, "node_key", "left_semi")
    return (blocked.unionByName(shared).groupBy("node_key")
            .agg(F.min(F.struct("reason", "detail")).alias("_r"))
            .select("node_key", "_r.reason", "_r.detail").localCheckpoint())


def _update_graph(spark: SparkSession, settings: Settings, rules: IdentityRules, silver: dict[str, DataFrame],
                  increment: Any, step: StepHook):
    """The incremental run's graph (cdp.identity.incremental): the touched records' current silver rows replace
    their state; nodes and edges are recomputed around the affected identifiers; busy days recounted on the
    touched days. Returns records, combos, nodes, edges, busy_days and the extra Resolved fields."""
    from functools import reduce

    from pyspark.sql import functions as F

    from cdp.identity.edges import (COMBO_KEY, combo_identifiers, combo_schema, daily_record_counts,
                                    identifier_combos, record_keys)
    from cdp.identity.guardrails import busy_limits
    from cdp.identity.incremental import (RECORD_STATE_COLUMNS, combos_from_state, combos_to_state, combos_with_keys,
                                          edges_from_table, nodes_from_table, replace_records, update_busy_days,
                                          update_graph)
    from cdp.identity_state import BUSY_DAYS, COMBO_NODES, COMBO_STATE, RECORD_STATE
    from cdp.lake import read_table

    with step("records, combinations"):
        touched = increment.touched.localCheckpoint()
        state_records = read_table(spark, settings, RECORD_STATE)
        touched_before = state_records.join(F.broadcast(touched), ["source", "source_record_id"], "left_semi").localCheckpoint()
        # a source whose touched records are all new and changed only after the last run date: their rows all
        # landed after it, so only those rows are read (Delta skips the older files by their dt statistics)
        whole = {r.source for r in increment.old_rows.select("source")
                 .unionByName(touched_before.select("source")).distinct().collect()}
        current = {}
        for name, df in silver.items():
            if name not in whole and "dt" in df.columns:
                df = df.where(F.col("dt") > F.lit(increment.previous_run_date))
            ids = F.broadcast(touched.where(F.col("source") == name).select(F.col("source_record_id").alias("_rid")))
            current[name] = df.join(ids, df["source_record_id"].cast("string") == ids["_rid"], "left_semi")
        touched_now = record_keys(current, rules).select(*RECORD_STATE_COLUMNS, "spans_brands").localCheckpoint()
        records = replace_records(state_records, touched, touched_now)
        combo_state = read_table(spark, settings, COMBO_STATE)
        schemas = {name: combo_schema(df, name, rules) for name, df in silver.items()}
        persisted = combos_from_state(combo_state, schemas)
        fresh = {}
        for name, df in identifier_combos(current, rules).items():
            # the day's few combinations meet the persisted ones as a broadcast (the persisted side, millions of
            # rows, is streamed once instead of shuffled for an anti-join)
            df = df.localCheckpoint()
            known = persisted[name].select(*COMBO_KEY).join(F.broadcast(df.select(*COMBO_KEY)), list(COMBO_KEY))
            fresh[name] = df.join(F.broadcast(known), list(COMBO_KEY), "left_anti").localCheckpoint()
        combos = {name: persisted[name].unionByName(fresh[name]) if name in fresh else persisted[name]
                  for name in persisted}
        fresh_ids = reduce(lambda a, b: a.unionByName(b),
                           [combo_identifiers(c, name, rules).select(*COMBO_KEY, "node_key")
                            for name, c in fresh.items()]).localCheckpoint()
        combo_ids = read_table(spark, settings, COMBO_NODES).unionByName(fresh_ids)
    with step("observations, nodes, edges"):
        # the touched records' persisted form goes out of the graph, their current form comes in
        def combos_of(keys):
            return combos_with_keys(combo_state, fresh, schemas, keys, materialise=_checkpoint)

        nodes, edges, affected = update_graph(records, combos_of, combo_ids, touched_before, touched_now,
                                       nodes_from_table(read_table(spark, settings, "identity_nodes"), rules),
                                       edges_from_table(read_table(spark, settings, "identity_edges",
                                                                   version=increment.read_versions["identity_edges"])),
                                       rules,
                                       materialise=_checkpoint)
        nodes, edges = nodes.localCheckpoint(), edges.localCheckpoint()
    with step("busy days"):
        days = {}
        for r in increment.touched_days.collect():
            days.setdefault(r.source, set()).add(r.day)
        on_days = {}
        for name, df in silver.items():
            if name in days:
                seen_at = F.col(rules.sources[name].seen_at).cast("timestamp")
                dated = sorted(d for d in days[name] if d is not None)
                cond = (F.to_date(seen_at).isin(dated) & _within_days(seen_at, dated)) if dated else F.lit(False)
                if None in days[name]:
                    cond = cond | seen_at.isNull()
                on_days[name] = df.where(cond)
        recounted = (daily_record_counts(on_days, rules, list(busy_limits(rules))) if on_days
                     else spark.createDataFrame([], "node_key string, id_type string, source string, day date, records long"))
        busy_days = update_busy_days(read_table(spark, settings, BUSY_DAYS), recounted, increment.touched_days,
                                     rules).localCheckpoint()
    new_combos = reduce(lambda a, b: a.unionByName(b), [combos_to_state({n: c}) for n, c in fresh.items()]) if fresh else None
    return records, combos, nodes, edges, busy_days, {
        "combo_ids": combo_ids, "touched_now": touched_now, "touched_before": touched_before,
        "new_combos": new_combos, "affected": affected,
        "new_combo_nodes": fresh_ids}


MAX_DAY_RANGES = 16   # `_within_days` bridges the shortest gaps above this many ranges


def day_ranges(days: list[dt.date], max_ranges: int = MAX_DAY_RANGES) -> list[tuple[dt.date, dt.date]]:
    """The days as (first, last) ranges of consecutive days, at most `max_ranges`: above that the shortest gaps
    are bridged (the ranges then hold a few days more than asked).

    >>> day_ranges([dt.date(2026, 1, d) for d in (1, 2, 3, 7, 9, 10)], max_ranges=2)
    [(datetime.date(2026, 1, 1), datetime.date(2026, 1, 3)), (datetime.date(2026, 1, 7), datetime.date(2026, 1, 10))]
    """
    ranges: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    if len(ranges) > max_ranges:
        gaps = sorted(range(1, len(ranges)), key=lambda i: ((ranges[i][0] - ranges[i - 1][1]).days, i))
        cuts = sorted(gaps[len(gaps) - (max_ranges - 1):]) if max_ranges > 1 else []
        ranges = [[ranges[a][0], ranges[b - 1][1]] for a, b in zip([0, *cuts], [*cuts, len(ranges)])]
    return [(low, high) for low, high in ranges]


def _within_days(seen_at: Column, days: list[dt.date]) -> Column:
    """`seen_at` (a timestamp) falls in the ranges of `day_ranges(days)` (UTC, the session time zone), compared
    with literal times: Delta skips the files whose `seen_at` statistics miss them all (silver laid out by day,
    `lake.cluster_by_date`), which `to_date(seen_at) IN (...)` does not allow. The ranges are capped: a long OR
    made Delta's file filtering slow (11 s for hundreds of CRM registration days at 1M customers), and the
    caller keeps the exact day test."""
    from pyspark.sql import functions as F

    def at(day: dt.date) -> Column:
        return F.to_timestamp(F.lit(f"{day.isoformat()} 00:00:00"))

    return reduce(lambda a, b: a | b, [(seen_at >= at(low)) & (seen_at < at(high + dt.timedelta(days=1)))
                                       for low, high in day_ranges(days)])


def _arrow_backed_strings(arrow_type):
    """`types_mapper` of Arrow's to_pandas: string columns stay Arrow-backed (pd.ArrowDtype)."""
    import pyarrow as pa

    return pd.ArrowDtype(arrow_type) if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) else None


def _arrow_column(values: pd.Series):
    """A pandas column of strings as an Arrow array (no copy when it is Arrow-backed)."""
    import pyarrow as pa

    if isinstance(values.dtype, pd.ArrowDtype):
        return pa.array(values.array)
    return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def _arrow_positions(keys, within) -> np.ndarray:
    """For each of `keys` its row in `within` (unique keys), -1 when absent (Arrow hashes in C++)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.index_in(keys.cast(pa.large_string()), value_set=within.cast(pa.large_string()))
    return pc.fill_null(found, -1).to_numpy().astype(np.int64)


def _naive(times: pd.Series, spark: SparkSession) -> pd.Series:
    """Arrow timestamps (time zone aware) as the naive datetime64[ns] of the session time zone."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert(spark.conf.get("spark.sql.session.timeZone")).dt.tz_localize(None)
    return times.astype("datetime64[ns]")


def _key_order(keys) -> np.ndarray:
    """Row order by node_key (Arrow sorts strings in C++; byte order equals Spark's string order)."""
    import pyarrow.compute as pc

    return pc.sort_indices(keys).to_numpy()


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


def fill_silver_one_id(spark: SparkSession, settings: Settings, table: str, source: str, record_map: DataFrame,
                       target_only: str | None = None, broadcast: bool = False) -> None:
    """MERGE records' one_id into one silver record table: every row of a record gets the record's one_id.

    `record_map` (source, source_record_id, one_id) may hold only the records whose silver rows need the value
    (the stage passes those); rows already carrying the value are not rewritten either way. target_only: a
    condition on the table's rows (alias `t`) that every row of those records meets, such as `t.dt > DATE'...'`
    for records that all landed after a date: Delta then reads and rewrites only the files that can match.
    broadcast: hint Spark to send the records to every task (see MERGE_BROADCAST_MAX_ROWS).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    updates = record_map.where(F.col("source") == source).select("source_record_id", "one_id")
    if broadcast:
        updates = F.broadcast(updates)
    on = "t.source_record_id = s.source_record_id" + (f" AND ({target_only})" if target_only else "")
    (DeltaTable.forPath(spark, settings.table_path(table)).alias("t")
     .merge(updates.alias("s"), on)
     .whenMatchedUpdate(condition="NOT (t.one_id <=> s.one_id)", set={"one_id": "s.one_id"})
     .execute())


def rewrite_silver_one_id(spark: SparkSession, settings: Settings, table: str, source: str, rules: IdentityRules,
                          best: DataFrame, record_map: DataFrame, run_date: dt.date) -> None:
    """Rewrite one silver record table with the records' one_id in one pass (one Delta commit).

    The same result as `fill_silver_one_id`, for when most records change (the first resolution of a lake, a
    rebuild that renames most profiles): a MERGE would join the table with the records twice. The rows are not
    shuffled either: each row's identifier combination is hashed again (`edges.combo_keys`, the keys the stage
    resolved) and meets its combination's One-ID (`best`: source, ck1, ck2, best) in a broadcast map; the rare
    records with several combinations take theirs from `record_map` (source, source_record_id, one_id: those
    records only), a second broadcast map. Rows landed after `run_date` (not read by this run) keep their value.
    A map above BROADCAST_MAX_ROWS rows is joined without the broadcast hint (a cluster-sized lake).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.identity.edges import combo_keys
    from cdp.lake import overwrite_table, read_table

    partition_by = DeltaTable.forPath(spark, settings.table_path(table)).detail().first()["partitionColumns"]
    silver = read_table(spark, settings, table)
    by_combo = best.where(F.col("source") == source).select(
        F.col("ck1").alias("_ck1"), F.col("ck2").alias("_ck2"), F.col("best.one_id").alias("_combo_one_id"))
    by_record = record_map.where(F.col("source") == source).select(
        F.col("source_record_id").alias("_rid"), F.col("one_id").alias("_record_one_id"), F.lit(True).alias("_multi"))
    if by_combo.count() <= BROADCAST_MAX_ROWS:
        by_combo = F.broadcast(by_combo)
    if by_record.count() <= BROADCAST_MAX_ROWS:
        by_record = F.broadcast(by_record)
    ck1, ck2 = combo_keys(source, rules)
    one_id = F.when(F.col("_multi"), F.col("_record_one_id")).otherwise(F.col("_combo_one_id"))
    if "dt" in silver.columns:
        one_id = F.when(F.col("dt") <= F.lit(run_date), one_id).otherwise(F.col("one_id"))
    rewritten = (silver.withColumn("_ck1", ck1).withColumn("_ck2", ck2)
                 .withColumn("_rid", F.col("source_record_id").cast("string"))
                 .join(by_combo, ["_ck1", "_ck2"], "left").join(by_record, "_rid", "left")
                 .withColumn("one_id", one_id)
                 .select(*silver.columns))
    overwrite_table(rewritten, settings, table, partition_by=tuple(partition_by or ()))


def _same_redirects(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    def rows(df: pd.DataFrame) -> list[tuple]:
        if not len(df):
            return []
        return sorted((r.old_one_id, r.current_one_id, pd.Timestamp(r.redirected_at), r.reason)
                      for r in df.itertuples(index=False))
    return rows(a) == rows(b)


def _write_record_map_full(spark: SparkSession, settings: Settings, run_date: dt.date, rules: IdentityRules,
                           res: Resolved, step: StepHook):
    """Full pass: the whole record map, and silver one_id rewritten or MERGEd for the records that change."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import combo_best_nodes
    from cdp.identity.persist import record_one_ids
    from cdp.identity_state import DELETION_VECTORS, enable_change_feed, enable_properties
    from cdp.lake import overwrite_table, table_exists

    with step("record map"):
        one_id = F.col("one_id")
        in_sync = (F.when(one_id.isNull(), F.col("rows_without_one_id") == F.col("rows"))
                   .otherwise((F.col("rows_without_one_id") == 0) & (F.col("min_one_id") == one_id)
                              & (F.col("max_one_id") == one_id)))
        best = reduce(lambda a, b: a.unionByName(b),
                      [combo_best_nodes(c, name, rules, res.node_one_ids) for name, c in res.combos.items()]
                      ).localCheckpoint()
        record_map = (record_one_ids(res.records.withColumn("combinations", F.size("ckeys")), best)
                      .select("source", "source_record_id", "one_id", (~in_sync).alias("is_changed"), "combinations")
                      .localCheckpoint())
        overwrite_table(record_map.select("source", "source_record_id", "one_id").withColumn("run_date", F.lit(run_date)),
                        settings, "identity_record_map")
        enable_properties(spark, settings, "identity_record_map", DELETION_VECTORS)   # incremental runs MERGE it
        per_source = {r.source: r for r in record_map.groupBy("source").agg(
            F.count(F.lit(1)).alias("n"), F.sum(one_id.isNull().cast("int")).alias("none"),
            F.sum(F.col("is_changed").cast("int")).alias("changed")).collect()}
    with step("silver one_id"):
        silver_changed = {}
        changed = record_map.where(F.col("is_changed"))
        for source_name, source in rules.sources.items():
            if not table_exists(spark, settings, source.table):
                continue
            enable_change_feed(spark, settings, source.table)   # the next, incremental run reads it
            n = int(per_source[source_name].changed) if source_name in per_source else 0
            if n and rules.fill_silver_one_id:
                # most records change (first resolution): one rewrite pass; else MERGE only the changed ones
                if n >= REWRITE_SILVER_SHARE * per_source[source_name].n:
                    several = record_map.where(F.col("combinations") > 1)
                    rewrite_silver_one_id(spark, settings, source.table, source_name, rules, best, several, run_date)
                else:
                    fill_silver_one_id(spark, settings, source.table, source_name, changed,
                                       broadcast=n <= MERGE_BROADCAST_MAX_ROWS)
                silver_changed[source_name] = n
    return per_source, silver_changed


def _write_record_map_incremental(spark: SparkSession, settings: Settings, run_date: dt.date, rules: IdentityRules,
                                  res: Resolved, step: StepHook):
    """Incremental run: the record map and silver one_id of the records that may have changed only: the touched
    records and those carrying a node whose One-ID changed. Records whose rows are all gone leave the map."""
    from pyspark.sql import functions as F

    from cdp.identity.edges import COMBO_KEY, best_of_identifiers, priority_of_key
    from cdp.identity.incremental import RECORD_KEY, record_combo_keys, records_carrying
    from cdp.identity.persist import record_one_ids
    from cdp.lake import read_table, replace_rows, table_exists

    key = list(RECORD_KEY)
    with step("record map"):
        touched = res.increment.touched
        subject = res.touched_now.select(*key, "ckeys")
        if len(res.changed_nodes):
            # the other records carrying an identifier whose One-ID moved, with their keys, in one pass
            changed_nodes = spark.createDataFrame(pd.DataFrame({"node_key": res.changed_nodes.astype(str)}),
                                                  "node_key string")
            others = records_carrying(res.records.select(*key, "ckeys"), res.combo_ids, changed_nodes, keep=["ckeys"])
            subject = subject.unionByName(others.join(F.broadcast(touched.select(*key)), key, "left_anti"))
        subject = subject.localCheckpoint()
        candidates = F.broadcast(subject.select(*key))
        wanted = F.broadcast(record_combo_keys(subject).select(*COMBO_KEY).distinct().localCheckpoint())
        # their combinations' identifiers from the (combination, identifier) rows: one scan for every source, no
        # combination JSON parsed; the few rows meet the One-IDs of all nodes as a broadcast
        ids = res.combo_ids.join(wanted, list(COMBO_KEY), "left_semi").localCheckpoint()
        if ids.count() <= MERGE_BROADCAST_MAX_ROWS:
            ids = F.broadcast(ids)
        best = best_of_identifiers(res.node_one_ids.select("node_key", "one_id").join(ids, "node_key")
                                   .withColumn("id_priority", priority_of_key(F.col("node_key"), rules))
                                   ).localCheckpoint()
        now = record_one_ids(subject.select(*key, "ckeys"), best)
        before = read_table(spark, settings, "identity_record_map").join(candidates, key, "left_semi").select(
            *key, F.col("one_id").alias("_before"), F.lit(True).alias("_present"))
        is_touched = touched.select(*key, F.lit(True).alias("_touched"))
        rows = (now.join(before, key, "left").join(F.broadcast(is_touched), key, "left")
                .select(*key, "one_id", F.coalesce("_touched", F.lit(False)).alias("_touched"),
                        (F.col("_present").isNull() | ~F.col("one_id").eqNullSafe(F.col("_before"))).alias("_changed"),
                        F.col("_present").isNotNull().alias("_present"))
                .localCheckpoint())
        gone = touched.join(res.touched_now, key, "left_anti")
        # rows to take out: records mapped already whose One-ID changed, and records whose rows are all gone
        taken_out = rows.where("_changed AND _present").select(*key).unionByName(gone.select(*key))
        changed = rows.where("_changed").select(*key, "one_id").withColumn("run_date", F.lit(run_date))
        replace_rows(spark, settings, "identity_record_map", key, taken_out, changed)
        per_source = {r.source: r for r in read_table(spark, settings, "identity_record_map").groupBy("source").agg(
            F.count(F.lit(1)).alias("n"), F.sum(F.col("one_id").isNull().cast("int")).alias("none")).collect()}
    with step("silver one_id"):
        silver_changed = {}
        if rules.fill_silver_one_id:
            # a touched record's new rows carry no one_id yet, so touched records are written even when their
            # One-ID did not change (the MERGE rewrites only rows whose value differs)
            fill = rows.where(F.col("_changed") | F.col("_touched"))
            # when every record to fill is new this run with all its rows landed after the last run date (the
            # usual day for most sources), only the files landed since are read and rewritten; otherwise one
            # MERGE over the whole table (older records whose One-ID moved are spread over most of its files)
            older = (res.touched_before.select(*key).unionByName(res.increment.old_rows.select(*key))
                     .withColumn("_older", F.lit(True)).distinct())
            fill = (fill.join(F.broadcast(older), key, "left")
                    .withColumn("_recent", F.col("_touched") & F.col("_older").isNull()).localCheckpoint())
            since = f"t.dt > DATE'{res.increment.previous_run_date.isoformat()}'"
            for row in fill.groupBy("source").agg(F.count(F.lit(1)).alias("n"),
                                                  F.sum((~F.col("_recent")).cast("int")).alias("older")).collect():
                table = rules.sources[row.source].table
                if not table_exists(spark, settings, table):
                    continue
                recent_only = not row.older and "dt" in read_table(spark, settings, table).columns
                fill_silver_one_id(spark, settings, table, row.source, fill, target_only=since if recent_only else None,
                                   broadcast=row.n <= MERGE_BROADCAST_MAX_ROWS)
                silver_changed[row.source] = int(row.n)
    return per_source, silver_changed


def _write_graph_state(spark: SparkSession, settings: Settings, rules: IdentityRules, res: Resolved) -> None:
    """identity_record_state, identity_combo_state, identity_busy_days (cdp.identity_state)."""
    from cdp.identity.edges import COMBO_KEY, combo_identifiers
    from cdp.identity.incremental import RECORD_KEY, RECORD_STATE_COLUMNS, combos_to_state
    from cdp.identity_state import BUSY_DAYS, COMBO_NODES, COMBO_STATE, DELETION_VECTORS, RECORD_STATE, enable_properties
    from cdp.lake import append_table, overwrite_table, replace_rows

    if res.increment is None:
        overwrite_table(res.records.select(*RECORD_STATE_COLUMNS), settings, RECORD_STATE)
        enable_properties(spark, settings, RECORD_STATE, DELETION_VECTORS)
        overwrite_table(combos_to_state(res.combos), settings, COMBO_STATE)
        overwrite_table(reduce(lambda a, b: a.unionByName(b),
                               [combo_identifiers(c, name, rules).select(*COMBO_KEY, "node_key")
                                for name, c in res.combos.items()]), settings, COMBO_NODES)
    else:
        key = list(RECORD_KEY)
        # the touched records that were in the state: taken out; every touched record still there: in
        replace_rows(spark, settings, RECORD_STATE, key, res.touched_before,
                     res.touched_now.select(*RECORD_STATE_COLUMNS))
        if res.new_combos is not None:
            append_table(res.new_combos, settings, COMBO_STATE)
            append_table(res.new_combo_nodes, settings, COMBO_NODES)
    overwrite_table(res.busy_days, settings, BUSY_DAYS)


def _overwrite_keyed(spark: SparkSession, settings: Settings, df: DataFrame, name: str) -> None:
    """Overwrite one of the STATS_COLUMNS tables; its statistics are limited to its keys from the first write on
    (the table property survives the overwrites; the first write, before the property exists, keeps them all)."""
    from cdp.identity_state import enable_properties
    from cdp.lake import overwrite_table

    overwrite_table(df, settings, name)
    enable_properties(spark, settings, name, {"delta.dataSkippingStatsColumns": STATS_COLUMNS[name]})


def write_resolution(spark: SparkSession, settings: Settings, run_date: dt.date, rules: IdentityRules,
                     res: Resolved, redirects: pd.DataFrame, step: StepHook = log_step) -> dict[str, Any]:
    """Write the identity tables, the record map, the silver `one_id` values (only records that change) and the
    state the next run starts from."""
    from cdp.identity.persist import update_redirects
    from cdp.lake import merge_table, overwrite_table, table_exists

    # Crash safety (docs/reliability.md): identity_nodes is the persisted map the next run starts from
    # (read_previous), so it is written last; a run killed before it leaves the previous map in place and the
    # re-run computes the same ids and events, and history is an insert-only MERGE on the event, so the
    # events a killed run already wrote are not added twice.
    with step("write edges, rejections"):
        _overwrite_keyed(spark, settings, res.edges, "identity_edges")
        overwrite_table(res.rejections, settings, "identity_rejections")
    res.settle()
    with step("write history, redirects"):
        if len(res.events) or not table_exists(spark, settings, "identity_history"):
            merge_table(spark, _history_frame(spark, res.events, run_date), settings, "identity_history",
                        keys=HISTORY_EVENT_KEY, update=False)
        new_redirects = update_redirects(redirects, res.events)
        if not _same_redirects(new_redirects, redirects) or not table_exists(spark, settings, "identity_redirects"):
            red_schema = "old_one_id string, current_one_id string, redirected_at timestamp, reason string"
            red_df = (spark.createDataFrame(new_redirects.assign(redirected_at=pd.to_datetime(new_redirects["redirected_at"])),
                                            red_schema) if len(new_redirects) else spark.createDataFrame([], red_schema))
            overwrite_table(red_df, settings, "identity_redirects")

    if res.increment is None:
        per_source, silver_changed = _write_record_map_full(spark, settings, run_date, rules, res, step)
    else:
        per_source, silver_changed = _write_record_map_incremental(spark, settings, run_date, rules, res, step)
    with step("write state"):
        _write_graph_state(spark, settings, rules, res)
    with step("write nodes"):
        _overwrite_keyed(spark, settings, res.nodes, "identity_nodes")
    with step("write run state"):
        from cdp.identity_state import write_state

        write_state(spark, settings, rules, run_date, sorted(res.combos))
    events = res.events["event_type"].value_counts().to_dict() if len(res.events) else {}
    return {"records": sum(int(r.n) for r in per_source.values()),
            "records_without_one_id": sum(int(r.none or 0) for r in per_source.values()),
            "silver_records_updated": silver_changed,
            "events": {k: int(v) for k, v in sorted(events.items())}, "redirects": len(new_redirects)}


def check_contracts(spark: SparkSession, settings: Settings, rules: IdentityRules) -> dict[str, int]:
    """Contract checks on the written identity tables; raises IdentityContractError on any breach.

    The record map must hold one row per record of the record state (`identity_record_state`, one row per
    distinct source record the run read): with unique records there, a duplicate or a lost record map row
    changes the count. Both counts come from the Delta log (file statistics and deletion vectors), not a scan.
    """
    from pyspark.sql import functions as F

    from cdp.identity_state import RECORD_STATE
    from cdp.lake import read_table, table_exists

    def flag(cond):
        return F.sum(F.when(cond, 1).otherwise(0))

    def duplicates(df, cols, hashed):
        # rows minus distinct keys; distinct 64-bit hashes (a cheap aggregation over longs) equal to the row count
        # prove the keys distinct, anything less is counted again exactly
        if hashed["_rows"] == hashed["_hashes"]:
            return 0
        return int(df.agg(F.count(F.lit(1)) - F.countDistinct(*cols)).first()[0])

    def hashed_count(cols):
        return [F.count(F.lit(1)).alias("_rows"), F.countDistinct(F.xxhash64(*cols)).alias("_hashes")]

    nodes = read_table(spark, settings, "identity_nodes")
    active = F.col("status") == "active"
    row = nodes.agg(
        *hashed_count(["node_key"]),
        flag(F.col("node_key").isNull()).alias("nodes_null_key"),
        flag(~F.col("status").isin(*NODE_STATUSES) | F.col("status").isNull()).alias("nodes_bad_status"),
        flag(active & F.col("one_id").isNull()).alias("active_without_one_id"),
        flag(~active & F.col("one_id").isNotNull()).alias("inactive_with_one_id")).first()
    problems: dict[str, int] = {k: int(v or 0) for k, v in row.asDict().items() if not k.startswith("_")}
    problems["nodes_duplicate_key"] = duplicates(nodes, ["node_key"], row)
    limits = F.create_map(*[x for t in rules.identifier_types if t.max_per_one_id > 0
                            for x in (F.lit(t.name), F.lit(t.max_per_one_id))])
    problems["one_ids_above_limit"] = (nodes.where(F.col("one_id").isNotNull())
                                       .groupBy("one_id", "id_type", "scope").count()
                                       .where(F.col("count") > limits[F.col("id_type")]).count())
    edges = read_table(spark, settings, "identity_edges")
    row = edges.agg(
        flag(~F.col("status").isin(*EDGE_STATUSES) | F.col("status").isNull()).alias("edges_bad_status"),
        *hashed_count(["src_key", "dst_key", "rule"])).first()
    problems.update({k: int(v or 0) for k, v in row.asDict().items() if not k.startswith("_")})
    problems["edges_duplicate_key"] = duplicates(edges, ["src_key", "dst_key", "rule"], row)
    rm = read_table(spark, settings, "identity_record_map")
    if table_exists(spark, settings, RECORD_STATE):
        problems["record_map_rows_not_one_per_record"] = abs(rm.count() - read_table(spark, settings, RECORD_STATE).count())
    else:
        problems["record_map_duplicate_key"] = int(rm.agg(
            F.count(F.lit(1)) - F.countDistinct("source", "source_record_id")).first()[0])
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        raise IdentityContractError(bad)
    return problems


# --- entry points -------------------------------------------------------------------------------------------
def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, step: StepHook = log_step,
        full: bool = False) -> dict[str, Any]:
    """The daily identity stage (idempotent for a run date).

    Incremental when the last run's state allows it (cdp.identity_state.plan_increment), else the full pass;
    both give the same tables (tested). full: take the full pass anyway.
    step: a context-manager factory wrapped around each step by name (default: log its wall time).
    """
    from cdp.identity.config import load_identity_rules
    from cdp.identity_state import plan_increment
    from cdp.lake import append_table

    started = time.monotonic()
    rules = load_identity_rules(settings)
    # the persisted map (2.75 M nodes at 1M customers) goes to the driver in a thread while the graph is built:
    # only the stable-id step needs it, and the graph update's many small Spark jobs leave the cores idle
    # between them. This run writes identity_nodes last, so the thread reads the previous run's map.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="identity-previous-map") as pool:
        previous_map = pool.submit(read_previous, spark, settings)
        with step("plan"):
            silver = read_silver(spark, settings, rules, run_date)
            increment, why = (None, "full pass asked for") if full else plan_increment(spark, settings, rules, run_date, silver)
        log.info("identity stage: %s", "incremental run" if increment is not None else f"full pass: {why}")
        res = compute(spark, settings, run_date, rules, previous_map.result, step=step, increment=increment,
                      silver=silver)
        redirects = previous_map.result()[1]
    written = write_resolution(spark, settings, run_date, rules, res, redirects, step=step)
    summary = {"run_date": str(run_date), **res.counts}
    if increment is None:
        summary["full_pass_reason"] = why
    else:
        summary["records_touched"] = increment.touched.count()
    summary.update(written)
    with step("contracts"):
        check_contracts(spark, settings, rules)
    _release(res)
    log.info("identity stage: %s", summary)
    finished_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    append_table(spark.createDataFrame([run_summary_row(summary, finished_at, time.monotonic() - started)],
                                       RUN_SUMMARY_SCHEMA), settings, RUN_SUMMARY_TABLE, add_new_columns=True)
    return summary


def run_summary_row(summary: dict[str, Any], finished_at: dt.datetime, duration_s: float) -> tuple:
    """The identity_run_summary row (RUN_SUMMARY_SCHEMA) of a stage summary (`run`'s return value):
    records_touched is null for a full pass, redirects is the number of retired One-IDs after the run.

    >>> row = run_summary_row({"run_date": "2026-03-01", "mode": "incremental", "records": 9, "one_ids": 4,
    ...                        "events": {"merge": 2}, "silver_records_updated": {"pos": 3}},
    ...                       dt.datetime(2026, 3, 1, 2), 12.5)
    >>> row[:7], row[15], row[17:22], row[-2:]
    ((datetime.date(2026, 3, 1), datetime.datetime(2026, 3, 1, 2, 0), 12.5, 'incremental', None, 9, None), 4, (0, 2, 0, 0, 0), ({'pos': 3}, 0))
    """
    events = summary.get("events", {})

    def count(key: str) -> int:
        return int(summary.get(key) or 0)

    return (dt.date.fromisoformat(summary["run_date"]), finished_at, round(float(duration_s), 3), summary["mode"],
            summary.get("full_pass_reason"), count("records"),
            None if summary.get("records_touched") is None else int(summary["records_touched"]),
            count("records_without_one_id"), count("nodes"), count("nodes_active"), count("nodes_blocked"),
            count("nodes_shared"), count("link_pairs"), count("links_dropped_limit"),
            count("links_dropped_never_link"), count("one_ids"), count("largest_profile_nodes"),
            *(int(events.get(e, 0)) for e in ("create", "merge", "split", "retire")), count("redirects"),
            {k: int(v) for k, v in summary.get("silver_records_updated", {}).items()}, count("records_spanning_brands"))


def rebuild(spark: SparkSession, settings: Settings, run_date: dt.date, dry_run: bool = True) -> dict[str, Any]:
    """Full rebuild under the current rules: recompute every component from all of silver and report what changes.

    dry_run: only the report (profiles merged / split / ids changed against the persisted map), computed the
    way applying it would: the full pass with the persisted map, so ids and anchor times carried forward count
    (a record re-delivered later carries a later landing date in silver; from nothing, its profile could anchor
    on another node and seem to change id although applying keeps it). Otherwise the resolution is applied like
    a daily run (the persisted ids survive where the rules allow; merges and splits go to identity_history).
    """
    from cdp.identity.config import load_identity_rules
    from cdp.identity.persist import compare_maps

    rules = load_identity_rules(settings)
    previous, redirects = read_previous(spark, settings)
    proposed = compute(spark, settings, run_date, rules, lambda: (previous, redirects)).settle()
    report = {"run_date": str(run_date), "dry_run": dry_run, **compare_maps(previous, proposed.node_map)}
    _release(proposed)
    if not dry_run:
        report["applied"] = run(spark, settings, run_date, full=True)
    return report


def empty_redirects() -> pd.DataFrame:
    return pd.DataFrame(columns=["old_one_id", "current_one_id", "redirected_at", "reason"])


def _release(res: Resolved) -> None:
    for df in (res.edges, res.records, res.node_one_ids, *res.combos.values()):
        if df is not None:
            df.unpersist()
    if res.combo_ids is not None:
        res.combo_ids.unpersist()


def main(argv: list[str] | None = None) -> int:
    from cdp.entry import job_main

    return job_main(run, argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
