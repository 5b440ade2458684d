"""Incremental identity runs leave exactly the tables a full pass computes (real Spark + Delta, change data feed).

Seeded random silver lands over two days the way ingestion writes it (Delta MERGE on the row key), with the
cases an incremental run must see: new records, re-delivered rows whose identifiers changed (a record loses an
identifier: its node's first/last seen and counts must be recomputed, not patched), extra lines of an old
order, late rows whose landing date is already behind the last run, a member without a registration time (its
busy-day count is on a null day), busy phones (`max_records_per_day`),
shared phones, junk cards and type limits. Day 2 runs incrementally; then a full pass of day 2 must find nothing
to change: same nodes, edges, rejections, record map, busy days, record state and silver one_id, no event.
"""
from __future__ import annotations

import datetime as dt
import random

import pytest

pytestmark = pytest.mark.spark

DAYS = [dt.date(2026, 11, d) for d in (1, 2)]
SCHEMAS = {
    "silver_pos_lines": "paid_at timestamp, brand_id string, member_card_no string, mobile_hash string",
    "silver_miniprogram_events": ("event_at timestamp, appid string, openid_hash string, unionid_hash string, "
                                  "mobile_hash string, member_card_no string, brand_id string"),
    "silver_wecom_contacts": "added_at timestamp, external_userid string, unionid_hash string, remark_mobile_hashes array<string>",
    "silver_crm_members": "registered_at timestamp, brand_id string, member_card_no string, mobile_hash string",
    "silver_ecommerce_lines": "paid_at timestamp, platform string, buyer_id string, member_card_no string, brand_id string",
}
KEY = ("source_record_id", "line")


class Landing:
    """Random silver rows per day: (table -> list of rows), rows keyed by (source_record_id, line)."""

    def __init__(self, seed: int):
        self.rnd = random.Random(seed)
        self.pools = {p: [f"{p}{i}" for i in range(n)] for p, n in (("m", 40), ("c", 30), ("u", 25), ("o", 30), ("b", 15))}
        self.pools["c"] += ["0000000", "TEST-1"]      # junk cards: the blocklist
        self.rows: dict[str, dict[tuple, tuple]] = {t: {} for t in SCHEMAS}

    def pick(self, pool: str, blank: float = 0.15):
        r = self.rnd.random()
        return None if r < blank else self.rnd.choice(self.pools[pool])

    def at(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(self.rnd.randrange(24), self.rnd.randrange(60)))

    def identifiers(self, table: str, day: dt.date) -> tuple:
        p, rnd = self.pick, self.rnd
        if table == "silver_pos_lines":
            mobile = "mSTORE" if rnd.random() < 0.08 else p("m")      # a store phone on many orders a day
            return (self.at(day), "main", p("c"), mobile)
        if table == "silver_miniprogram_events":
            return (self.at(day), rnd.choice(["wxA", "wxB"]), p("o"), p("u"), p("m", 0.6), p("c", 0.7), "main")
        if table == "silver_wecom_contacts":
            return (self.at(day), None, p("u", 0.4), [rnd.choice(self.pools["m"] + [""]) for _ in range(rnd.randint(0, 3))])
        if table == "silver_crm_members":
            return (self.at(day), "main", p("c", 0.0), p("m"))
        return (self.at(day), rnd.choice(["tmall", "jd"]), p("b"), p("c", 0.5), "main")

    def day(self, n: int) -> dict[str, list[tuple]]:
        """The rows landing on day n: new records; from day 2 also changed and extra rows of old records and
        late rows (landing date of the day before)."""
        day, rnd, out = DAYS[n], self.rnd, {}
        for table, rows in self.rows.items():
            batch = {}
            count = {"silver_pos_lines": 40, "silver_miniprogram_events": 30, "silver_wecom_contacts": 10,
                     "silver_crm_members": 8, "silver_ecommerce_lines": 12}[table]
            for i in range(count):
                rid = f"{table[7:10]}{n}-{i}"
                for line in range(rnd.randint(1, 2) if table == "silver_pos_lines" else 1):
                    batch[(rid, line)] = (day, *self.identifiers(table, day))
            if n and rows:
                old = sorted(rows)
                for k in rnd.sample(old, min(6, len(old))):        # re-delivered with other identifiers
                    batch[k] = (day, *self.identifiers(table, day))
                rid = rnd.choice(old)[0]                            # one more line of an old record
                batch[(rid, 7)] = (day, *self.identifiers(table, day))
                late = DAYS[n - 1]
                batch[(f"{table[7:10]}late{n}", 0)] = (late, *self.identifiers(table, late))
                if table == "silver_crm_members":                  # a member without a registration time
                    batch[(f"{table[7:10]}undated{n}", 0)] = (day, None, *self.identifiers(table, day)[1:])
            if table == "silver_wecom_contacts":                     # a contact's id is its record id
                batch = {k: (v[0], v[1], k[0], *v[3:]) for k, v in batch.items()}
            rows.update(batch)
            out[table] = [(k[0], k[1], *v) for k, v in sorted(batch.items())]
        return out


def _land(spark, settings, batch: dict[str, list[tuple]]) -> None:
    """Write one day as ingestion does: MERGE on the row key (re-delivered rows replace theirs)."""
    from pyspark.sql import functions as F

    from cdp.lake import merge_table

    for table, rows in batch.items():
        df = spark.createDataFrame(rows, f"source_record_id string, line int, dt date, {SCHEMAS[table]}")
        merge_table(spark, df.withColumn("one_id", F.lit(None).cast("string")), settings, table, keys=list(KEY))


def _snapshot(spark, settings) -> dict[str, list]:
    from cdp.lake import read_table

    def rows(name, drop=("run_date",)):
        df = read_table(spark, settings, name)
        return sorted((tuple(r) for r in df.select(*[c for c in df.columns if c not in drop]).collect()), key=repr)

    out = {name: rows(name) for name in ("identity_nodes", "identity_edges", "identity_rejections",
                                         "identity_record_map", "identity_busy_days", "identity_record_state")}
    for table in SCHEMAS:
        out[table] = sorted((tuple(r) for r in read_table(spark, settings, table)
                             .select(*KEY, "one_id").collect()), key=repr)
    return out


def test_incremental_runs_equal_the_full_pass(spark, settings):
    from cdp.lake import read_table
    from cdp.resolve_identity import run

    landing = Landing(seed=11)
    summaries = []
    for n, day in enumerate(DAYS):
        _land(spark, settings, landing.day(n))
        summaries.append(run(spark, settings, day))
    modes = [s["mode"] for s in summaries]
    touched = [s.get("records_touched") for s in summaries]
    assert modes == ["full", "incremental"]
    incremental = _snapshot(spark, settings)
    total = len(incremental["identity_record_map"])
    # the day's run read a part of the records, not all of them (the small pools make the graph dense: a new
    # record shares identifiers with many old ones, so the touched share is large here, but never everything)
    assert all(0 < t < total for t in touched[1:]), (touched, total)
    # the data really holds what the guards and the updates are about
    statuses = {r[8] for r in incremental["identity_nodes"]}
    assert {"active", "shared", "blocked"} <= statuses
    assert incremental["identity_busy_days"], "no busy phone in the data"

    again = run(spark, settings, DAYS[-1], full=True)
    assert again["mode"] == "full" and again["events"] == {}
    full = _snapshot(spark, settings)
    for name in incremental:
        assert full[name] == incremental[name], name

    # every run left its row in identity_run_summary, in order, with the counts it returned
    logged = read_table(spark, settings, "identity_run_summary").orderBy("finished_at").collect()
    expected = [(str(s["run_date"]), s["mode"], s.get("full_pass_reason"), s["records"], s.get("records_touched"),
                 s["records_without_one_id"], s["nodes"], s["nodes_shared"], s["link_pairs"], s["one_ids"],
                 s["largest_profile_nodes"], s["events"].get("merge", 0), s["events"].get("split", 0),
                 s["silver_records_updated"]) for s in [*summaries, again]]
    assert [(str(r.run_date), r.mode, r.full_pass_reason, r.records, r.records_touched, r.records_without_one_id,
             r.nodes, r.nodes_shared, r.link_pairs, r.one_ids, r.largest_profile_nodes, r.merges, r.splits,
             r.silver_records_updated) for r in logged] == expected
    assert logged[1].records_touched == touched[1] and logged[0].records_touched is None
    assert all(r.duration_s > 0 for r in logged)


def _node_rows(records: dict[str, list[tuple]]) -> dict[str, tuple]:
    """Node rows (NODE_AGGREGATES) over records: record id -> [(node_key, seen, anchor)] (a node once per record)."""
    rows: dict[str, list] = {}
    for _rid, carried in records.items():
        for key, seen, anchor in carried:
            r = rows.setdefault(key, [key, "mobile", 1, None, f"d{key}", seen, seen, anchor, 0])
            r[5], r[6], r[7], r[8] = min(r[5], seen), max(r[6], seen), min(r[7], anchor), r[8] + 1
    return {k: tuple(v) for k, v in rows.items()}


def test_patched_rows_equal_a_recount(spark):
    """patch_rows on seeded random changes: every key it patches equals the recount over the records after the
    change, no key is lost, and what it leaves for a recount is a key whose removed extreme is not reached again."""
    from cdp.identity.incremental import NODE_AGGREGATES, patch_rows

    schema = ("node_key string, id_type string, id_priority int, scope string, display string, first_seen_at timestamp, "
              "last_seen_at timestamp, anchor_at timestamp, record_count long")
    columns = [c.split()[0] for c in schema.split(", ")]
    patched_after_removal = recounts = 0
    for seed in range(8):
        rnd = random.Random(seed)

        def hour():   # few values: ties between records
            return dt.datetime(2026, 11, 1, rnd.randrange(6))

        def carried():
            return [(f"n{k}", hour(), hour()) for k in rnd.sample(range(12), rnd.randint(1, 3))]

        old = {f"r{i}": carried() for i in range(30)}
        gone = rnd.sample(sorted(old), 8)
        # re-delivered: half keep their identifiers and times, half change; two disappear; new records come
        now = {rid: (old[rid] if i % 2 else carried()) for i, rid in enumerate(gone[:6])}
        now.update({f"new{i}": carried() for i in range(6)})
        after = {rid: v for rid, v in old.items() if rid not in gone} | now
        before, removed, added = _node_rows(old), _node_rows({r: old[r] for r in gone}), _node_rows(now)

        def frame(rows):
            return spark.createDataFrame(list(rows.values()), schema)

        rows, redo = patch_rows(frame(before), frame(removed), frame(added), NODE_AGGREGATES)
        patched = {r.node_key: tuple(r[c] for c in columns) for r in rows.collect()}
        redo = {r.node_key for r in redo.collect()}
        truth = _node_rows(after)
        assert not patched.keys() & redo, seed
        assert {k: v for k, v in truth.items() if k in patched} == patched, seed
        # every key a touched record carries is patched or left for a recount, except keys no record carries now
        assert ((removed.keys() | added.keys()) & truth.keys()) - redo == patched.keys(), seed
        for k in redo:   # first_seen_at, last_seen_at (a max), anchor_at
            assert before[k][8] > removed[k][8] and any(
                removed[k][f] == before[k][f] and (k not in added or (added[k][f] < removed[k][f] if f == 6
                                                                      else added[k][f] > removed[k][f]))
                for f in (5, 6, 7)), (seed, k)
        patched_after_removal += len(patched.keys() & removed.keys())
        recounts += len(redo)
    assert patched_after_removal and recounts       # both paths taken
