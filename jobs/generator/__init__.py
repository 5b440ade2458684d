"""Sample data generator: a realistic, noisy, multi-channel landing folder plus the ground truth behind it.

    >>> from cdp.generator import GeneratorOptions, generate           # doctest: +SKIP
    >>> generate("data/demo/landing", GeneratorOptions(customers=20_000, days=120, seed=7))

or `cdp generate --out DIR --customers N --days D --seed S [--end-date YYYY-MM-DD] [--brands main,fresh]`.
The same options give the same bytes. Persons are simulated one at a time and rows are staged per (source, day)
with a bounded buffer, so memory does not grow with N (see `writer.py`).

Layout (the landing contract of docs/landing-contract.md):

    <out>/pos/dt=YYYY-MM-DD/pos_YYYYMMDD.csv                 one row per order line (`_p2`, ... for big days)
    <out>/miniprogram/dt=YYYY-MM-DD/miniprogram_YYYYMMDD.jsonl
    <out>/wecom/dt=YYYY-MM-DD/wecom_YYYYMMDD.jsonl           (day 1 also holds contacts added before the window)
    <out>/ecommerce/dt=YYYY-MM-DD/ecommerce_YYYYMMDD.csv     (a refund re-sends the line with status=refunded)
    <out>/crm/dt=YYYY-MM-DD/crm_members_full_YYYYMMDD.csv    day 1: snapshot of every card registered before
    <out>/crm/dt=YYYY-MM-DD/crm_members_delta_YYYYMMDD.csv   later days: full rows of cards that changed
    <out>/catalog/dt=<first day>/catalog.csv, <out>/stores/dt=<first day>/stores.csv   (extra: unit, phone)
    <out>/_end_date                                          the last day, YYYY-MM-DD (the demo's run date)
    <out>/_truth/...                                         ground truth, never read by the pipeline

Every source carries `brand_id`. POS `paid_at` and e-commerce `paid_at` are local Asia/Shanghai
`YYYY-MM-DD HH:MM:SS`; mini-program and WeCom `event_time` are ISO 8601 with `+08:00`; WeCom `createtime` is epoch
seconds; amounts have 2 decimals (negative for POS returns; JSON amounts are numbers such as `59.80`); CRM
booleans are `true`/`false`, CRM gender `男`/`女`/empty, WeCom gender 0/1/2. POS is UTF-8, UTF-8 with BOM or GBK
(`--pos-encoding`), everything else UTF-8.

Ground truth (`<out>/_truth/`):

`records.csv` — `source,source_record_id,person_id`: one row per distinct source record that has at least one
valid (parseable) row in the landing files. source_record_id as in the contract: pos `order_id`, ecommerce
`<platform>:<order_id>`, miniprogram `event_id`, wecom `external_userid`, crm `member_card_no`. Re-delivered
copies add no rows (same ids). A record whose every row is corrupt is only in `corrupt_rows.csv`.

`persons.csv` — one row per person (some persons leave no record at all: `records` = 0). Values as of the end
date, computed from the rows actually written (corrupt rows and refunded e-commerce lines excluded):
  person_id, name, gender (F|M), birthday, city, home_store_id (first brand), behaviour (regular | occasional |
  churner | returner | one_time | prospect), mobile (the person's phone; for a family the shared phone),
  mobile_new and phone_changed_on (a changed number), family_id, shares_family_phone (0/1), changed_phone (0/1),
  never_gives_phone (0/1), has_unionid (0/1: a unionid appears in their WeChat records), uses_ecommerce,
  ecommerce_platforms (`;`-separated);
  per brand B: is_member_B, member_card_no_B, level_B, is_paid_member_B, has_app_B (uses the brand's
  mini-program), marketing_consent_B, registered_on_B;
  is_wecom_added (an active guide relation at the end), wecom_ever_added, wecom_guides (`;`-separated userids),
  likes_durian (the person's taste, not a purchase fact);
  purchase facts over orders with is_purchase=1 (see orders.csv): orders_total, orders_pos, orders_miniprogram,
  orders_ecommerce, orders_B per brand, spend_net (purchases minus POS returns, 2 decimals),
  first_purchase_date, last_purchase_date, durian_orders (orders with a line of category 榴莲), kyoho_orders
  (sku S20101 巨峰葡萄), black_kyoho_orders (sku S20102 黑藤巨峰), premium_orders (a product of brand 熊猫大鲜);
  noise counts: anonymous_pos_orders (POS purchases with neither card nor the person's own phone),
  store_phone_orders, placeholder_phone_orders, formatted_phone_orders (POS orders incl. returns whose mobile is
  the store's phone / a placeholder / typed with spaces, +86 or 86-), placeholder_phone_crm (0/1: a CRM card
  registered with a placeholder), corrupt_rows (rows of this person in corrupt_rows.csv); records (rows of
  records.csv for this person).

`orders.csv` — one row per written order (POS purchase or return, mini-program `order_paid`, e-commerce order):
  source, source_record_id (mini-program: the order_paid event_id), order_id, person_id, brand_id, order_date,
  channel_detail (store_id | appid | platform), is_purchase, is_return, net_amount, has_durian, has_kyoho,
  has_black_kyoho, has_premium, is_anonymous. Recompute any purchase fact per person from it.

`corrupt_rows.csv` — source, file, line (1-based, CSV header = line 1), kind (wrong_column_count | bad_date |
bad_amount | broken_json), source_record_id, person_id. `redelivered_files.csv` — original_file, copy_file.
`summary.json` — the options, counts of files, orders and of every noise kind.

Noise (rates in `NoiseRates`, all multiplied by `--noise`; `--noise 0` gives clean data in which every POS order
carries a card or a valid phone). Every kind appears at least once even for tiny N (the first eligible rows or
persons are forced), and forced corrupt rows never hit the only line of an order.

What identity resolution can and cannot know, by design:
- families (`family_id`): 2-3 persons share one phone in CRM, POS, bind_mobile and WeCom remarks, each with their
  own card/openid/unionid; they are separate persons, so a shared phone must not merge them;
- store phones (`stores.csv` column `phone`, prefix 173) and placeholders are typed for many persons;
- anonymous POS orders (no card, no phone or only junk) and e-commerce buyers without a bound member card and
  with a masked phone cannot be linked to anyone; they are still attributed to their person in the truth;
- persons without unionid (`has_unionid`=0) link their openid only through member_card_no or bind_mobile;
- a changed phone (`mobile_new`) is linked to the old one only through the CRM card (update row), bind_mobile
  and the guide's remark; the old number is never reused by someone else;
- dual members (一码双会员) hold one card per brand with the same phone: one person, two memberships.
"""
from cdp.generator.generate import generate
from cdp.generator.options import DEFAULT_END_DATE, GeneratorOptions, NoiseRates

__all__ = ["DEFAULT_END_DATE", "GeneratorOptions", "NoiseRates", "generate"]
