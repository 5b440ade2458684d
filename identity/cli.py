"""`cdp identity ...` and `cdp export record-map` sub-commands.

    cdp identity resolve  --lake DIR --date D          the daily identity stage
    cdp identity rebuild  --lake DIR [--dry-run]       recompute from nothing; report merges/splits (apply without --dry-run)
    cdp identity explain  --lake DIR --mobile 138... | --card BRAND:CARD | --one-id OID...   (several: path between)
    cdp identity current-id --lake DIR OID...          current One-ID of any One-ID ever issued
    cdp identity overrides add --action never_link|always_link|block --mobile M --card B:C ... --reason TEXT
    cdp identity overrides list|remove
    cdp identity quality  --lake DIR --truth DIR/_truth/records.csv
    cdp export record-map --lake DIR --out FILE.csv    header source,source_record_id,one_id
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import re
import sys

from cdp.errors import CdpError

_ID_OPTIONS = (("mobile", "a mobile number (normalised, then hashed; never printed)"),
               ("card", "member card as BRAND:CARD"),
               ("unionid", "a WeChat unionid"),
               ("openid", "an openid as APPID:OPENID"),
               ("external_userid", "a WeCom external_userid"),
               ("buyer", "an e-commerce buyer as PLATFORM:BUYER_ID"),
               ("node_key", "a node key as stored in identity_nodes"))


def _add_identifier_options(p: argparse.ArgumentParser) -> None:
    for name, text in _ID_OPTIONS:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, action="append", default=[], help=text)


def _identifier_keys(args: argparse.Namespace, settings) -> list[str]:
    from cdp.identity.explain import node_key_for
    from cdp.privacy import load_secret

    key = load_secret(settings)
    keys = []
    for name, _ in _ID_OPTIONS:
        for value in getattr(args, name):
            try:
                keys.append(node_key_for(name, value, key))
            except ValueError as exc:
                raise CdpError(f"--{name.replace('_', '-')}: {exc}") from None
    return keys


def _stored_keys(spark, settings, keys: list[str]) -> list[str]:
    """`keys` as stored in identity_nodes. A key in the masked form `explain` prints (`mobile:#e73c9e83`,
    `member_card:main:****6878`) is looked up by that label, and must name exactly one identifier; any other key
    must start with a declared identifier type (`mobile:`, `member_card:`, ...)."""
    from pyspark.sql import functions as F

    from cdp.identity.config import load_identity_rules
    from cdp.lake import read_table, table_exists

    types = load_identity_rules(settings).type_names
    out = []
    for k in keys:
        if k.split(":", 1)[0] not in types or ":" not in k:
            raise CdpError(f"--node-key {k!r}: a node key starts with its identifier type ({', '.join(types)}) "
                           "and a colon, e.g. mobile:<hash> as identity_nodes stores it, or the label "
                           "`cdp identity explain` prints")
        if "#" not in k and "****" not in k:
            out.append(k)
            continue
        found = ([r.node_key for r in read_table(spark, settings, "identity_nodes").where(F.col("display") == k)
                  .select("node_key").limit(3).collect()] if table_exists(spark, settings, "identity_nodes") else [])
        if not found:
            raise CdpError(f"--node-key {k!r}: no identifier of this lake is shown with that label")
        if len(found) > 1:
            raise CdpError(f"--node-key {k!r}: that label is shown for several identifiers; give the identifier "
                           "itself (--mobile, --card BRAND:CARD, ...) or its full node_key from identity_nodes")
        out.append(found[0])
    return out


def _session(args):
    from cdp.entry import open_spark, settings_from_args

    settings = settings_from_args(args)
    return open_spark(settings), settings


def _resolve(args: argparse.Namespace) -> int:
    from cdp.entry import run_date_from_args
    from cdp.locking import lake_lock
    from cdp.resolve_identity import run

    spark, settings = _session(args)
    with lake_lock(settings.lake_dir):   # one writer per lake, as `cdp run` and the Airflow tasks
        summary = run(spark, settings, run_date_from_args(args, settings), full=args.full)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from cdp.entry import run_date_from_args
    from cdp.locking import lake_lock
    from cdp.resolve_identity import rebuild

    spark, settings = _session(args)
    with lake_lock(settings.lake_dir) if not args.dry_run else contextlib.nullcontext():   # a dry run writes nothing
        report = rebuild(spark, settings, run_date_from_args(args, settings), dry_run=args.dry_run)
    print(json.dumps(report, indent=2, default=str))
    return 0


def _read_redirects(spark, settings):
    import pandas as pd

    from cdp.lake import read_table, table_exists

    if table_exists(spark, settings, "identity_redirects"):
        return read_table(spark, settings, "identity_redirects").toPandas()
    return pd.DataFrame(columns=["old_one_id", "current_one_id", "redirected_at", "reason"])


def _carried(spark, settings, one_ids) -> set[str]:
    """The One-IDs among `one_ids` that some identifier of identity_nodes carries now."""
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    if not table_exists(spark, settings, "identity_nodes"):
        return set()
    return {r.one_id for r in read_table(spark, settings, "identity_nodes")
            .where(F.col("one_id").isin(list(set(one_ids)))).select("one_id").distinct().collect()}


def _no_profile(spark, settings, unknown: list[str]) -> CdpError:
    """The error for One-IDs no profile carries; a retired one says when and why (identity_history)."""
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists

    retired = []
    if table_exists(spark, settings, "identity_history"):
        retired = [f"{r.one_id} was retired on {r.run_date} ({r.reason})" for r in
                   read_table(spark, settings, "identity_history")
                   .where(F.col("one_id").isin(unknown) & (F.col("event_type") == "retire"))
                   .orderBy("one_id", "run_date").collect()]
    why = f"; {'; '.join(retired)}: none of its identifiers may link any more (see identity_history)" if retired else ""
    return CdpError(f"no profile carries One-ID {', '.join(unknown)} in this lake ({settings.lake_dir}), "
                    f"nor does any redirect lead from it to one{why}")


def _current_id(args: argparse.Namespace) -> int:
    from cdp.identity.persist import resolve_one_id

    spark, settings = _session(args)
    redirects = _read_redirects(spark, settings)
    current = {one_id: resolve_one_id(one_id, redirects) for one_id in args.one_ids}
    carried = _carried(spark, settings, current.values())
    for one_id, now in current.items():
        if now in carried:
            print(f"{one_id}\t{now}")
    unknown = [one_id for one_id, now in current.items() if now not in carried]
    if unknown:
        raise _no_profile(spark, settings, unknown)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from cdp.identity.explain import explain_profile
    from cdp.identity.persist import resolve_one_id
    from cdp.lake import read_table, table_exists

    spark, settings = _session(args)
    if not table_exists(spark, settings, "identity_nodes"):
        raise CdpError(f"no identity tables in the lake {settings.lake_dir}: run `cdp identity resolve` first, or "
                       "pass the lake the pipeline wrote with --lake")
    keys = _stored_keys(spark, settings, _identifier_keys(args, settings))
    if not keys and not args.one_id:
        raise CdpError("give at least one identifier (--mobile, --card, ...) or --one-id")
    redirects = _read_redirects(spark, settings)
    nodes_t = read_table(spark, settings, "identity_nodes")
    found = nodes_t.where(F.col("node_key").isin(keys)).select("node_key", "one_id", "status").toPandas() if keys else None
    asked = [(oid, resolve_one_id(oid, redirects)) for oid in args.one_id]
    carried = _carried(spark, settings, [cur for _, cur in asked])
    unknown = [oid for oid, cur in asked if cur not in carried]
    if unknown and len(unknown) == len(asked) and not keys:
        raise _no_profile(spark, settings, unknown)
    for oid in unknown:
        print(f"One-ID {oid}: no profile carries it in this lake")
    one_ids = [cur for _, cur in asked if cur in carried]
    if found is not None:
        missing = [k for k in keys if k not in set(found["node_key"])]
        for k in missing:
            print(f"{k.split(':', 1)[0]} identifier not seen in any source record")
        for row in found.itertuples(index=False):
            if row.status != "active":
                print(f"{row.node_key.split(':', 1)[0]} identifier is {row.status}: it has no One-ID (see guardrail decisions)")
        one_ids += [o for o in found["one_id"] if isinstance(o, str)]
    one_ids = list(dict.fromkeys(one_ids))
    nodes = nodes_t.where(F.col("one_id").isin(one_ids) | F.col("node_key").isin(keys))
    member_keys = [r.node_key for r in nodes.select("node_key").collect()]
    edges_t = read_table(spark, settings, "identity_edges")
    edges = edges_t.where(F.col("src_key").isin(member_keys) | F.col("dst_key").isin(member_keys)).toPandas()
    neighbours = set(edges["src_key"]) | set(edges["dst_key"])
    nodes_pd = nodes_t.where(F.col("node_key").isin(list(neighbours | set(member_keys)))).toPandas()
    rejections = read_table(spark, settings, "identity_rejections").where(
        F.col("node_key").isin(list(neighbours | set(member_keys))) | F.col("other_node_key").isin(member_keys)).toPandas()
    path = (keys[0], keys[1]) if len(keys) >= 2 else None
    asked_map = {cur: old for old, cur in asked}
    for one_id in one_ids or [None]:
        print(explain_profile(one_id, nodes_pd, edges, rejections, path_between=path, asked_as=asked_map.get(one_id),
                              focus=tuple(keys)))
        print()
    return 0


RUN_COLUMNS = ("run_date", "mode", "records_touched", "one_ids", "creates", "merges", "splits", "retires",
               "nodes_shared", "nodes_blocked", "links_dropped_limit", "largest_profile_nodes", "duration_s",
               "full_pass_reason")


def _runs(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists
    from cdp.resolve_identity import RUN_SUMMARY_TABLE

    spark, settings = _session(args)
    if not table_exists(spark, settings, RUN_SUMMARY_TABLE):
        print("no identity run yet")
        return 0
    last = (read_table(spark, settings, RUN_SUMMARY_TABLE).orderBy(F.col("finished_at").desc())
            .limit(args.last).collect())
    print("\t".join(RUN_COLUMNS))
    for r in reversed(last):
        print("\t".join("-" if r[c] is None else str(r[c]) for c in RUN_COLUMNS))
    return 0


def _overrides_add(args: argparse.Namespace) -> int:
    import pandas as pd
    from pyspark.sql import functions as F

    from cdp.identity.guardrails import OVERRIDE_COLUMNS
    from cdp.lake import append_table, read_table, table_exists
    from cdp.locking import lake_lock

    spark, settings = _session(args)
    keys = _stored_keys(spark, settings, _identifier_keys(args, settings))
    need = 1 if args.action == "block" else 2
    if len(keys) != need:
        raise CdpError(f"--action {args.action} takes exactly {need} identifier(s), got {len(keys)}")
    a, b = (keys[0], None) if need == 1 else tuple(sorted(keys))
    created = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    override_id = hashlib.sha256(f"{args.action}|{a}|{b}".encode()).hexdigest()[:12]
    row = pd.DataFrame([dict(zip(OVERRIDE_COLUMNS, (override_id, args.action, a, b, args.reason, created, args.by)))])
    schema = ("override_id string, action string, node_key string, other_node_key string, reason string, "
              "created_at timestamp, created_by string")
    if table_exists(spark, settings, "identity_nodes"):
        seen = read_table(spark, settings, "identity_nodes").where(F.col("node_key").isin([k for k in (a, b) if k]))
        unseen = len({k for k in (a, b) if k}) - seen.count()
        if unseen:
            print(f"note: {unseen} of the identifiers is not in identity_nodes yet (never seen in silver, or a typo); "
                  "the override applies when it appears")
    with lake_lock(settings.lake_dir):
        if (table_exists(spark, settings, "identity_overrides") and read_table(spark, settings, "identity_overrides")
                .where(F.col("override_id") == override_id).limit(1).count()):
            print(f"override {override_id} ({args.action}) is already recorded; nothing changed")
            return 0
        append_table(spark.createDataFrame(row, schema), settings, "identity_overrides")
    print(f"override {override_id} ({args.action}) recorded; the next identity run applies it")
    return 0


def _overrides_list(args: argparse.Namespace) -> int:
    from cdp.lake import read_table, table_exists

    spark, settings = _session(args)
    if not table_exists(spark, settings, "identity_overrides"):
        print("no overrides")
        return 0
    for r in read_table(spark, settings, "identity_overrides").orderBy("created_at").collect():
        kinds = r.node_key.split(":", 1)[0] + (f" + {r.other_node_key.split(':', 1)[0]}" if r.other_node_key else "")
        print(f"{r.override_id}\t{r.action}\t{kinds}\t{r.created_at:%Y-%m-%d}\t{r.created_by or '-'}\t{r.reason or ''}")
    return 0


def _overrides_remove(args: argparse.Namespace) -> int:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.lake import read_table, table_exists
    from cdp.locking import lake_lock

    if not re.fullmatch(r"[0-9a-f]{12}", args.override_id):
        raise CdpError("override ids are 12 hex digits, as printed by `cdp identity overrides list`")

    spark, settings = _session(args)
    with lake_lock(settings.lake_dir):
        if not (table_exists(spark, settings, "identity_overrides") and read_table(spark, settings, "identity_overrides")
                .where(F.col("override_id") == args.override_id).limit(1).count()):
            raise CdpError(f"no override {args.override_id} in this lake ({settings.lake_dir}); "
                           "`cdp identity overrides list` shows the recorded ones")
        DeltaTable.forPath(spark, settings.table_path("identity_overrides")).delete(f"override_id = '{args.override_id}'")
    print(f"override {args.override_id} removed; the next identity run applies the change")
    return 0


def _quality(args: argparse.Namespace) -> int:
    import pandas as pd

    from cdp.identity.quality import pairwise_quality, reachable_groups
    from cdp.lake import read_table

    spark, settings = _session(args)
    truth = pd.read_csv(args.truth, dtype=str)
    rm = read_table(spark, settings, "identity_record_map").select("source", "source_record_id", "one_id").toPandas()
    rej = read_table(spark, settings, "identity_rejections").count()
    reachable = None
    if args.with_reachable:
        from cdp.identity.config import load_identity_rules
        from cdp.identity.edges import extract_observations
        from cdp.resolve_identity import read_silver

        rules = load_identity_rules(settings)
        from cdp.entry import run_date_from_args

        silver = read_silver(spark, settings, rules, run_date_from_args(args, settings))
        obs = extract_observations(silver, rules).select("source", "source_record_id", "node_key").toPandas()
        reachable = reachable_groups(obs, truth)
    print(json.dumps(pairwise_quality(rm, truth, reachable=reachable, rejections=rej), indent=2))
    return 0


def _export_record_map(args: argparse.Namespace) -> int:
    from cdp.lake import read_table, table_exists

    spark, settings = _session(args)
    if not table_exists(spark, settings, "identity_record_map"):
        raise CdpError("no identity_record_map in this lake: run `cdp identity resolve` (or `cdp run`) first")
    df = read_table(spark, settings, "identity_record_map").select("source", "source_record_id", "one_id")
    count = 0
    with open(args.out, "w", encoding="utf-8", newline="") as handle:
        import csv

        writer = csv.writer(handle)
        writer.writerow(["source", "source_record_id", "one_id"])
        for row in df.orderBy("source", "source_record_id").toLocalIterator():
            writer.writerow([row.source, row.source_record_id, row.one_id or ""])
            count += 1
    print(f"wrote {count} records to {args.out}", file=sys.stderr)
    return 0


def _export_group(sub) -> argparse._SubParsersAction:
    """The `cdp export` group, shared with other areas that add exports."""
    parser = sub.choices.get("export")
    if parser is None:
        parser = sub.add_parser("export", help="export tables for downstream tools")
        parser._cdp_exports = parser.add_subparsers(dest="export_what", required=True)  # type: ignore[attr-defined]
    return parser._cdp_exports  # type: ignore[attr-defined]


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    identity = sub.add_parser("identity", help="One-ID resolution: resolve, rebuild, explain, overrides")
    isub = identity.add_subparsers(dest="identity_command", required=True)

    p = isub.add_parser("resolve", parents=[common], help="run the identity stage for a date")
    p.add_argument("--full", action="store_true",
                   help="recompute from all silver instead of the incremental run (same result, slower)")
    p.set_defaults(func=_resolve)

    p = isub.add_parser("rebuild", parents=[common], help="recompute all One-IDs under the current rules")
    p.add_argument("--dry-run", action="store_true", help="only report what would change")
    p.set_defaults(func=_rebuild)

    p = isub.add_parser("explain", parents=[common], help="why identifiers are (not) one profile")
    _add_identifier_options(p)
    p.add_argument("--one-id", action="append", default=[], help="a One-ID (old ids follow their redirect)")
    p.set_defaults(func=_explain)

    p = isub.add_parser("runs", parents=[common], help="the last identity runs: One-IDs, merges, splits, guardrails")
    p.add_argument("--last", type=int, default=10, help="how many runs (default 10), oldest first")
    p.set_defaults(func=_runs)

    p = isub.add_parser("current-id", parents=[common], help="current One-ID of old One-IDs")
    p.add_argument("one_ids", nargs="+")
    p.set_defaults(func=_current_id)

    p = isub.add_parser("quality", parents=[common], help="pairwise precision/recall against a truth CSV")
    p.add_argument("--truth", required=True, help="CSV with source,source_record_id,person_id")
    p.add_argument("--with-reachable", action="store_true", help="also recall of what the links allow")
    p.set_defaults(func=_quality)

    p = isub.add_parser("overrides", help="steward overrides: never-link, always-link, block")
    osub = p.add_subparsers(dest="overrides_command", required=True)
    q = osub.add_parser("add", parents=[common], help="record an override (applied by the next run)")
    q.add_argument("--action", required=True, choices=["never_link", "always_link", "block"])
    _add_identifier_options(q)
    q.add_argument("--reason", required=True, help="why (no personal data)")
    q.add_argument("--by", default=None, help="steward name")
    q.set_defaults(func=_overrides_add)
    q = osub.add_parser("list", parents=[common], help="list overrides (identifier kinds only)")
    q.set_defaults(func=_overrides_list)
    q = osub.add_parser("remove", parents=[common], help="remove an override by id")
    q.add_argument("override_id")
    q.set_defaults(func=_overrides_remove)

    exports = _export_group(sub)
    p = exports.add_parser("record-map", parents=[common], help="CSV source,source_record_id,one_id")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.set_defaults(func=_export_record_map)
