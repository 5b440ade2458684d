"""Erasure of one person (PIPL article 47): `cdp erase --mobile M | --card BRAND:CARD | --one-id ID`.

Steps (docs/erasure.md): resolve the person's current One-ID, collect every identifier they have (node keys,
hashes, raw values from `pii_values`, cards, ids, source record ids); delete their rows from every Delta table
of the lake by rewriting each touched table without them into a fresh folder with a fresh log, swapped in, so
neither old data files nor old commit statistics keep the values; append a receipt without personal data to
`erasure_receipts`.
All of it under the lake lock (cdp.locking), so it never runs while a pipeline stage writes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdp.errors import CdpError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

RECEIPTS_TABLE = "erasure_receipts"
SKIP_TABLES = {"ingest_staging", RECEIPTS_TABLE}
HASHED_KINDS = {"mobile", "unionid", "openid"}
MIN_SUBSTRING_LEN = 8  # raw values this long are also searched inside strings (raw JSON lines, free text)


class ErasureError(CdpError):
    pass


def _lit_values(values: set[str]) -> list[str]:
    return sorted(v for v in values if v)


def row_condition(df: DataFrame, exact: set[str], raw: set[str]) -> Column | None:
    """A column expression true for rows holding any of `exact` (whole value) or `raw` (also as a substring)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType, StringType, StructType

    exact_list = _lit_values(exact | raw)
    long_raw = _lit_values({v for v in raw if len(v) >= MIN_SUBSTRING_LEN})
    parts: list[Column] = []
    for field in df.schema.fields:
        col = F.col(f"`{field.name}`")
        if isinstance(field.dataType, StringType):
            parts.append(F.coalesce(col.isin(exact_list), F.lit(False)))
            parts.extend(F.coalesce(col.contains(F.lit(v)), F.lit(False)) for v in long_raw)
        elif isinstance(field.dataType, (ArrayType, MapType, StructType)):
            text = F.to_json(col)
            parts.extend(F.coalesce(text.contains(F.lit(json.dumps(v))), F.lit(False)) for v in exact_list)
            parts.extend(F.coalesce(text.contains(F.lit(v)), F.lit(False)) for v in long_raw)
    return reduce(lambda a, b: a | b, parts) if parts else None


def _read(spark: SparkSession, settings: Settings, name: str) -> DataFrame | None:
    from cdp.lake import read_table, table_exists

    return read_table(spark, settings, name) if table_exists(spark, settings, name) else None


def resolve_one_id(spark: SparkSession, settings: Settings, key: bytes, *, mobile: str | None,
                   member_card: str | None, one_id: str | None) -> tuple[str | None, set[str]]:
    """(current one_id or None, node keys named by the request)."""
    from pyspark.sql import functions as F

    from cdp.identity.explain import normalise_mobile
    from cdp.privacy import hash_value

    request_keys: set[str] = set()
    if mobile:
        norm = normalise_mobile(mobile)
        if norm is None:
            raise ErasureError("--mobile is not a valid mainland mobile number")
        request_keys.add("mobile:" + hash_value(norm, "mobile", key))
    if member_card:
        if ":" not in member_card:
            raise ErasureError("--card must be BRAND:CARD")
        request_keys.add("member_card:" + member_card.strip())
    if not one_id and request_keys:
        nodes = _read(spark, settings, "identity_nodes")
        if nodes is not None:
            rows = nodes.where(F.col("node_key").isin(sorted(request_keys)) & F.col("one_id").isNotNull()) \
                .select("one_id").distinct().collect()
            one_id = rows[0]["one_id"] if rows else None
    if one_id:
        redirects = _read(spark, settings, "identity_redirects")
        for _ in range(20):  # follow a redirect chain to the current id
            if redirects is None:
                break
            row = redirects.where(F.col("old_one_id") == F.lit(one_id)).select("current_one_id").first()
            if row is None or row[0] in (None, one_id):
                break
            one_id = row[0]
    return one_id, request_keys


def collect_identifiers(spark: SparkSession, settings: Settings, one_id: str | None,
                        request_keys: set[str], raw_request: set[str]) -> tuple[set[str], set[str]]:
    """(exact values: one_ids, node keys, hashes, ids, source record ids; raw personal values)."""
    from pyspark.sql import functions as F

    node_keys: set[str] = set(request_keys)
    exact: set[str] = set()
    raw: set[str] = set(raw_request)
    one_ids = {one_id} if one_id else set()
    if one_id:
        redirects = _read(spark, settings, "identity_redirects")
        if redirects is not None:
            one_ids |= {r[0] for r in redirects.where(F.col("current_one_id") == F.lit(one_id))
                        .select("old_one_id").collect()}
        nodes = _read(spark, settings, "identity_nodes")
        if nodes is not None:
            node_keys |= {r[0] for r in nodes.where(F.col("one_id").isin(sorted(one_ids))).select("node_key").collect()}
        record_map = _read(spark, settings, "identity_record_map")
        if record_map is not None:
            exact |= {r[0] for r in record_map.where(F.col("one_id").isin(sorted(one_ids)))
                      .select("source_record_id").collect() if r[0]}
    exact |= one_ids | node_keys
    hashes: set[str] = set()
    for node_key in node_keys:
        kind, _, rest = node_key.partition(":")
        value = rest.rsplit(":", 1)[-1]
        if kind in HASHED_KINDS:
            hashes.add(value)
        else:  # member cards, external_userids, buyer ids are stored as they are
            raw.add(value)
    exact |= hashes
    pii = _read(spark, settings, "pii_values")
    if pii is not None and hashes:
        raw |= {r[0] for r in pii.where(F.col("value_hash").isin(sorted(hashes))).select("value").collect() if r[0]}
    return exact, raw


def _swap_paths(path: str) -> tuple[str, str]:
    return path.rstrip("/") + ".__erasure_new", path.rstrip("/") + ".__erasure_old"


def finish_interrupted_swap(path: str) -> None:
    """Repair a table whose swap an earlier, killed erasure left half done (see `rewrite_without`).

    `path` missing and `<path>.__erasure_old` present: the kill came between the two renames, the old table is
    put back (the erasure is re-run on it). Both present: the swap was complete, the old folder is deleted.
    """
    tmp, old = _swap_paths(path)
    if Path(old).exists():
        if Path(path).exists():
            shutil.rmtree(old)
        else:
            Path(old).rename(path)
    shutil.rmtree(tmp, ignore_errors=True)


def rewrite_without(spark: SparkSession, path: str, condition: Column) -> None:
    """Rewrite the table without the rows matching `condition`, with a fresh log, and delete the old folder.

    One pass: the kept rows are written to a sibling folder, which is swapped in; deleting the old folder
    removes every earlier data file and commit (old commits keep min/max statistics of erased values), so
    time travel cannot bring the rows back and no VACUUM is needed. A kill at any point leaves either the old
    or the new table in place (`finish_interrupted_swap` repairs the in-between on the next run).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    partitions = list(DeltaTable.forPath(spark, path).detail().first()["partitionColumns"] or [])
    tmp, old = _swap_paths(path)
    shutil.rmtree(tmp, ignore_errors=True)
    kept = spark.read.format("delta").load(path).where(~F.coalesce(condition, F.lit(False)))
    writer = kept.write.format("delta").mode("overwrite")
    if partitions:
        writer = writer.partitionBy(*partitions)
    writer.save(tmp)
    Path(path).rename(old)
    Path(tmp).rename(path)
    shutil.rmtree(old)


ERASE_LOCK_TIMEOUT_S = 1800.0


def erase(spark: SparkSession, settings: Settings, *, mobile: str | None = None, member_card: str | None = None,
          one_id: str | None = None, requested_by: str, reason: str,
          lock_timeout_s: float = ERASE_LOCK_TIMEOUT_S) -> dict[str, Any]:
    """Erase one person under the lake lock (cdp.locking): it waits for a running stage to finish (at most
    `lock_timeout_s`, then LockTimeout naming the lock file), and no stage starts writing while it runs."""
    from cdp.locking import lake_lock

    if not (mobile or member_card or one_id):
        raise ErasureError("name the person: --mobile, --card or --one-id")
    with lake_lock(settings.lake_dir, timeout_s=lock_timeout_s):
        return _erase_locked(spark, settings, mobile=mobile, member_card=member_card, one_id=one_id,
                             requested_by=requested_by, reason=reason)


def _erase_locked(spark: SparkSession, settings: Settings, *, mobile: str | None, member_card: str | None,
                  one_id: str | None, requested_by: str, reason: str) -> dict[str, Any]:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from cdp.lake import append_table
    from cdp.privacy import hash_value, load_secret

    key = load_secret(settings)
    found, request_keys = resolve_one_id(spark, settings, key, mobile=mobile, member_card=member_card, one_id=one_id)
    raw_request = {v for v in (member_card.split(":", 1)[1].strip() if member_card else None,) if v}
    if mobile:
        from cdp.identity.explain import normalise_mobile
        raw_request.add(normalise_mobile(mobile))
    exact, raw = collect_identifiers(spark, settings, found, request_keys, raw_request)
    log.info("erasure: one_id %s, %d exact values, %d raw values", found, len(exact), len(raw))

    # the identity stage's incremental state (record keys, identifier combinations as JSON) is derived data:
    # deleted whole, not searched; the next identity run takes the full pass and writes it again
    from cdp.identity_state import STATE_TABLES
    for name in STATE_TABLES:
        finish_interrupted_swap(settings.table_path(name))
        shutil.rmtree(settings.table_path(name), ignore_errors=True)

    counts: dict[str, int] = {}
    for name in settings.tables:
        if name in SKIP_TABLES or name in STATE_TABLES:
            continue
        path = settings.table_path(name)
        finish_interrupted_swap(path)
        if not DeltaTable.isDeltaTable(spark, path):
            continue
        df = spark.read.format("delta").load(path)
        cond = row_condition(df, exact, raw)
        if cond is None:
            continue
        n = df.where(cond).count()
        if n == 0:
            continue
        rewrite_without(spark, path, cond)
        counts[name] = n
        log.info("erasure: %s -> %d rows removed", name, n)

    request_text = json.dumps({"mobile": mobile, "member_card": member_card, "one_id": one_id}, sort_keys=True)
    receipt = {
        "one_id": found,
        "rows_removed": counts,
        "total_rows_removed": sum(counts.values()),
        "requested_by": requested_by,
        "reason": reason,
        "erased_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        "request_hash": hash_value(request_text, "erasure_request", key),
    }
    schema = ("one_id string, rows_removed map<string,bigint>, total_rows_removed bigint, requested_by string, "
              "reason string, erased_at timestamp, request_hash string")
    append_table(spark.createDataFrame([receipt], schema=schema), settings, RECEIPTS_TABLE)
    out = dict(receipt, erased_at=receipt["erased_at"].isoformat())
    return out


def _erase_command(args: argparse.Namespace) -> int:
    import getpass

    from cdp.access import get_role, require
    from cdp.entry import open_spark, settings_from_args

    settings = settings_from_args(args)
    require(get_role(settings, args.role), "erase")
    spark = open_spark(settings)
    receipt = erase(spark, settings, mobile=args.mobile, member_card=args.card, one_id=args.one_id,
                    requested_by=args.requested_by or getpass.getuser(), reason=args.reason,
                    lock_timeout_s=args.lock_timeout)
    print(json.dumps(receipt, indent=2, default=str, ensure_ascii=False))
    return 0


def add_commands(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser("erase", parents=[common],
                              help="erase one person from every table of the lake (admin only)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--mobile")
    who.add_argument("--card", help="BRAND:CARD")
    who.add_argument("--one-id")
    p.add_argument("--role", help="must be admin (default $CDP_ROLE or data_engineer)")
    p.add_argument("--requested-by", help="who asked (default: the OS user)")
    p.add_argument("--reason", default="data subject request (PIPL art. 47)")
    p.add_argument("--lock-timeout", type=float, default=ERASE_LOCK_TIMEOUT_S,
                   help="seconds to wait for a running pipeline stage to release the lake lock (default 1800)")
    p.set_defaults(func=_erase_command)


def main(argv: list[str] | None = None) -> int:
    from cdp.cli import main as cli_main

    return cli_main(["erase", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
