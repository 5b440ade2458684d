"""Check gold_profiles / gold_order_facts of a pipeline run against the generator's ground truth.

    cdp generate --out DIR/landing --customers 300 --days 120 --seed 11
    cdp run --landing DIR/landing --lake DIR/lake --date $(cat DIR/landing/_end_date)   # ingest, identity, profiles
    python -m benchmarks.eval_profiles --landing DIR/landing --lake DIR/lake

Order level (independent of identity quality): every order of `_truth/orders.csv` is mapped to its one_id through
identity_record_map; per one_id the purchase count and net spend must equal gold_profiles, and every order's net in
gold_order_facts must equal the truth's net_amount. Person level (for one_ids that hold exactly one person's
records): agreement of survived attributes and purchase facts with `_truth/persons.csv` (sources do not always
state what the truth knows, so these are rates, not equalities). Prints counts and ids only, no personal data.
"""
import argparse
import json

import pandas as pd

from benchmarks.harness import bench_session
from cdp.lake import read_table

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--landing", required=True)
parser.add_argument("--lake", required=True)
args = parser.parse_args()
settings, spark = bench_session(args.lake, args.landing, extra_conf={"spark.sql.shuffle.partitions": "2"})
T = f"{args.landing.rstrip('/')}/_truth/"
orders = pd.read_csv(T + "orders.csv", dtype={"source_record_id": str})
persons = pd.read_csv(T + "persons.csv", dtype=str)
records = pd.read_csv(T + "records.csv", dtype=str)
rm = read_table(spark, settings, "identity_record_map").select("source", "source_record_id", "one_id").toPandas()
prof = read_table(spark, settings, "gold_profiles").toPandas().set_index("one_id")
facts = read_table(spark, settings, "gold_order_facts").toPandas()
o = orders.merge(rm, on=["source", "source_record_id"], how="left")
print("orders", len(o), "purchases", int(o.is_purchase.sum()), "without one_id", int(o.one_id.isna().sum()),
      "of which anonymous", int((o.one_id.isna() & (o.is_anonymous == 1)).sum()))
ok = o[o.one_id.notna()]
exp = ok.groupby("one_id").agg(order_count=("is_purchase", "sum"), total=("net_amount", "sum"))
got = prof.reindex(exp.index)
res = {
    "one_ids_with_orders": len(exp),
    "order_count_equal": int((got.order_count.astype(int) == exp.order_count.astype(int)).sum()),
    "total_amount_equal": int(((got.total_amount.astype(float) - exp.total).abs() < 0.005).sum()),
}
# facts per order: net per (channel, source_record_id)
fo = facts.groupby(["channel", "source_record_id"]).amount.sum().astype(float)
oo = ok.set_index(["source", "source_record_id"]).net_amount
common = fo.index.intersection(oo.index)
res["orders_in_facts"] = len(fo); res["orders_matched"] = len(common)
res["order_net_equal"] = int(((fo.loc[common] - oo.loc[common]).abs() < 0.005).sum())
# person-level attributes for pure one_ids (all records of one person, all that person's records)
r = records.merge(rm, on=["source", "source_record_id"], how="inner")
per_one = r.groupby("one_id").person_id.nunique(); per_person = r.groupby("person_id").one_id.nunique()
pure = r[r.one_id.map(per_one).eq(1) & r.person_id.map(per_person).eq(1)].drop_duplicates("one_id").set_index("one_id").person_id
P = persons.set_index("person_id")
cmp = prof.loc[prof.index.intersection(pure.index)].copy(); cmp["person_id"] = pure.reindex(cmp.index)
pp = P.loc[cmp.person_id]
pp.index = cmp.index
res["pure_one_ids"] = len(cmp)
def rate(name, a, b):
    res[name] = f"{int((a == b).sum())}/{len(a)}"
rate("gender", cmp.gender.fillna("U"), pp.gender.fillna("U"))
rate("birthday", cmp.birthday.astype(str).replace("None", ""), pp.birthday.fillna(""))
rate("city", cmp.city.fillna(""), pp.city.fillna(""))
rate("home_store_id(pos buyers)", cmp.home_store_id[cmp.order_count_pos > 0].fillna(""), pp.home_store_id[cmp.order_count_pos > 0].fillna(""))
is_member = (pp.is_member_main == "1") | (pp.is_member_fresh == "1")
rate("is_member", cmp.is_member, is_member)
rate("has_app", cmp.has_app, (pp.has_app_main == "1") | (pp.has_app_fresh == "1"))
rate("wecom_guides", cmp.wecom_guide_userids.map(lambda a: ";".join(sorted(a))), pp.wecom_guides.fillna("").map(lambda s: ";".join(sorted(x for x in s.split(";") if x))))
rate("order_count vs person orders_total", cmp.order_count.astype(int), pp.orders_total.astype(int))
rate("first_purchase_date", cmp.first_purchase_date.astype(str).replace("None", ""), pp.first_purchase_date.fillna(""))
rate("last_purchase_date", cmp.last_purchase_date.astype(str).replace("None", ""), pp.last_purchase_date.fillna(""))
print(json.dumps(res, indent=1, ensure_ascii=False))
lc = read_table(spark, settings, "gold_lifecycle").toPandas()
print(lc.stage.value_counts().to_dict())
print(read_table(spark, settings, "gold_rfm").toPandas().rfm_segment.value_counts().to_dict())
# mismatch samples (no personal data: ids and counts only)
bad = cmp[cmp.gender.fillna("U") != pp.gender.fillna("U")].index[:5]
print("gender mismatches", [(i, cmp.gender[i], pp.gender[i]) for i in bad])
bad = cmp[cmp.city.fillna("") != pp.city.fillna("")].index[:5]
print("city mismatches", [(i, cmp.city[i], pp.city[i]) for i in bad])
