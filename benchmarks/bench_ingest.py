"""Ingest benchmark: landing -> bronze -> silver (cdp.ingest.run) against the floor of reading the same files with
plain pyarrow, with wall time, rows/s and peak memory (driver + Spark JVM).

    python -m benchmarks.bench_ingest --customers 20000 --days 120                 # generate (or synthesise) then time
    python -m benchmarks.bench_ingest --landing data/demo/landing --date 2026-11-26  # an existing landing folder

The landing comes from `cdp generate` when the generator is installed and works; otherwise (or with
`--synthetic`) from a small deterministic synthetic writer below, with the same file formats. The result table
is printed and, with --report, appended to docs/benchmarks.md under "## Ingest".
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import random
import shutil
from pathlib import Path

from benchmarks.harness import bench_settings, machine, measure

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def synthesise(out: Path, customers: int, days: int, end: dt.date, seed: int = 7) -> None:
    """A landing folder with ~15 POS lines, 8 mini-program events, 2 e-commerce lines, 1 CRM row and 0.5 WeCom
    changes per customer over `days` days (deterministic for `seed`), 1% noisy rows."""
    rng = random.Random(seed)
    mobiles = [f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}" for _ in range(customers)]

    def day(i: int) -> str:
        return (end - dt.timedelta(days=days - 1 - i)).isoformat()

    def open_file(source: str, d: str, name: str, header: str | None):
        folder = out / source / f"dt={d}"
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / name, "w", encoding="utf-8")
        if header:
            handle.write(header + "\n")
        return handle

    pos_h = ("order_id,line_no,store_id,paid_at,member_card_no,mobile,sku_id,sku_name,category,quantity,unit_price,"
             "amount,pay_method")
    ecom_h = ("platform,shop_id,order_id,buyer_id,receiver_name,receiver_mobile,province,city,paid_at,sku_id,"
              "sku_name,category,quantity,amount,status,member_card_no")
    crm_h = ("member_card_no,mobile,name,gender,birthday,level,is_paid_member,has_app,join_store_id,registered_at,"
             "marketing_consent,updated_at")
    for i in range(days):
        d = day(i)
        pos = open_file("pos", d, "pos.csv", pos_h)
        for n in range(customers * 15 // days // 2):
            c = rng.randrange(customers)
            phone = rng.choice([mobiles[c], f"+86 {mobiles[c]}", "", f"{mobiles[c][:3]} {mobiles[c][3:7]} {mobiles[c][7:]}"])
            for line in (1, 2):
                amount = "-19.90" if rng.random() < 0.02 else "19.90"
                qty = "1" if rng.random() > 0.01 else "-1"  # 1% noisy rows, quarantined
                pos.write(f"O{i}-{n},{line},S{c % 50:02d},{d} {rng.randrange(8, 22):02d}:{rng.randrange(60):02d}:00,"
                          f"M{c},{phone},K{line},巨峰葡萄,grape,{qty},19.90,{amount},wechat\n")
        pos.close()
        ecom = open_file("ecommerce", d, "orders.csv", ecom_h)
        for n in range(customers * 2 // days):
            c = rng.randrange(customers)
            ecom.write(f"tmall,TM01,T{i}-{n},b{c},张伟,{mobiles[c][:3]}****{mobiles[c][-4:]},广东,深圳,{d} 12:00:00,"
                       f"K1,榴莲,durian,1,88.00,{rng.choice(['paid'] * 9 + ['refunded'])},\n")
        ecom.close()
        mini = open_file("miniprogram", d, "events.jsonl", None)
        for n in range(customers * 8 // days):
            c = rng.randrange(customers)
            mini.write(json.dumps({"event_id": f"E{i}-{n}", "event_type": rng.choice(["app_login", "view_item"]),
                                   "event_time": f"{d}T10:00:00+08:00", "appid": "wx", "openid": f"o{c}",
                                   "unionid": f"u{c}", "mobile": mobiles[c]}) + "\n")
        mini.close()
        wecom = open_file("wecom", d, "contacts.jsonl", None)
        for n in range(customers // 2 // days):
            c = rng.randrange(customers)
            wecom.write(json.dumps({"change_type": "add_external_contact", "event_time": f"{d}T11:00:00+08:00",
                                    "external_contact": {"external_userid": f"wm{c}", "name": "张伟", "gender": 1},
                                    "follow_user": {"userid": f"g{c % 40}", "remark_mobiles": [mobiles[c]],
                                                    "createtime": 1795140000, "tags": []}}, ensure_ascii=False) + "\n")
        wecom.close()
        crm = open_file("crm", d, "members.csv", crm_h)
        for c in range(i, customers, days):
            crm.write(f"M{c},{mobiles[c]},张伟,男,1990-01-01,gold,1,0,S01,2025-01-01 00:00:00,1,{d} 08:00:00\n")
        crm.close()
    catalog = open_file("catalog", day(0), "catalog.csv", "sku_id,sku_name,category,brand,list_price")
    catalog.write("K1,巨峰葡萄,grape,FreshCo,19.90\nK2,榴莲,durian,FreshCo,88\n")
    catalog.close()
    stores = open_file("stores", day(0), "stores.csv", "store_id,store_name,city,region")
    stores.write("".join(f"S{i:02d},店{i},深圳,South\n" for i in range(50)))
    stores.close()


def make_landing(out: Path, customers: int, days: int, end: dt.date, synthetic: bool) -> str:
    shutil.rmtree(out, ignore_errors=True)
    if not synthetic:
        try:
            from cdp.generator import generate

            generate(out, customers=customers, days=days, seed=7, end_date=end)
            return "cdp generate"
        except Exception as exc:  # noqa: BLE001 - any generator failure falls back to the synthetic landing
            logging.getLogger(__name__).warning("cdp generate failed (%s); using the synthetic landing", exc)
            shutil.rmtree(out, ignore_errors=True)
    synthesise(out, customers, days, end)
    return "synthetic"


def pyarrow_floor(landing: Path) -> int:
    """Read every landing file with plain pyarrow (CSV reader / JSON reader): the rows a reader must at least parse."""
    import pyarrow.csv as pv
    import pyarrow.json as pj

    import pyarrow as pa

    rows = 0
    for path in sorted(landing.glob("*/dt=*/*")):
        try:
            if path.suffix == ".csv":
                rows += pv.read_csv(path, parse_options=pv.ParseOptions(invalid_row_handler=lambda row: "skip")).num_rows
            elif path.suffix == ".jsonl":
                rows += pj.read_json(path, read_options=pj.ReadOptions(block_size=1 << 24)).num_rows
        except (pa.ArrowInvalid, UnicodeDecodeError):  # corrupt files (GBK, broken JSON): pyarrow refuses them
            with open(path, "rb") as handle:
                rows += sum(1 for line in handle if line.strip()) - (path.suffix == ".csv")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--date", type=dt.date.fromisoformat, default=dt.date(2026, 11, 26), help="run date / last day")
    parser.add_argument("--landing", help="existing landing folder (skips generation)")
    parser.add_argument("--synthetic", action="store_true", help="use the synthetic landing, not cdp generate")
    parser.add_argument("--work", default="data/bench/ingest")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--report", action="store_true", help="append the table to docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    os.environ.setdefault("CDP_HMAC_SECRET", "benchmark-secret")

    work = Path(args.work).resolve()
    if args.landing:
        landing, origin = Path(args.landing).resolve(), "given folder"
    else:
        landing = work / f"landing_c{args.customers}_d{args.days}"
        origin = make_landing(landing, args.customers, args.days, args.date, args.synthetic)
    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    size_mb = sum(p.stat().st_size for p in landing.glob("*/dt=*/*")) / 2**20

    with measure("pyarrow read (floor)") as floor:
        floor.rows = pyarrow_floor(landing)

    from cdp.ingest import run
    from cdp.spark import build_spark

    settings = bench_settings(lake, landing)
    with measure("spark session start") as start:
        spark = build_spark(settings.spark, extra_conf={"spark.master": args.master, "spark.ui.enabled": "false"})
    with measure("cdp ingest (landing -> bronze -> silver, GX)") as ingest:
        summary = run(spark, settings, args.date)
    ingest.rows = sum(s["rows_landed"] for s in summary["sources"].values())
    with measure("cdp ingest re-run (nothing new)") as rerun:
        run(spark, settings, args.date)
    spark.stop()

    load = os.getloadavg()[0]
    header = (f"\n`python -m benchmarks.bench_ingest --customers {args.customers:,} --days {args.days}` "
              f"({origin}, {size_mb:,.0f} MB of landing files) on {machine()}, master {args.master}, "
              f"load average {load:.1f} at the end; balanced: {summary['is_balanced']}, "
              f"accepted {sum(s['rows_accepted'] for s in summary['sources'].values()):,}, quarantined "
              f"{sum(s['rows_quarantined'] for s in summary['sources'].values()):,}.\n\n"
              "| step | wall s | CPU s (driver + JVM) | rows | rows/s | peak RSS MB (driver + JVM) | rows per CPU s |\n"
              "|---|---:|---:|---:|---:|---:|---:|\n")
    # Measurement.row() carries the CPU seconds of the process tree (harness.measure); add rows per CPU second
    lines = [m.row() + (f" {m.rows / m.cpu_s:,.0f} |" if m.rows and m.cpu_s else " - |")
             for m in (floor, start, ingest, rerun)]
    table = header + "\n".join(lines) + "\n"
    print(table)
    if args.report:
        text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
        if "\n## Ingest\n" not in text:
            text = text.rstrip("\n") + "\n\n## Ingest\n"
            text += ("\nIngest = hash + decode + split every landing file in Python (staged as Parquet), then Spark: "
                     "bronze write, typing and normalisation, the GX suite per source, quarantine, silver MERGE, "
                     "pii_values and the ledger. The floor is reading the same files with pyarrow's CSV/JSON "
                     "readers (no validation, no writes).\n")
            DOCS.write_text(text, encoding="utf-8")
        with open(DOCS, "a", encoding="utf-8") as handle:
            handle.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
