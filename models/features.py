"""Customer features as of a date, built only from facts strictly before that date.

One implementation serves the platform and the UCI evaluation:

1. `compact_facts(facts)` reduces order lines in the `gold_order_facts` shape (one_id, channel, paid_date,
   category, amount, is_return) to one row per customer-day and one row per (customer, category), keyed by
   an integer customer code (codes number the one_ids in sorted order). The platform does this reduction in
   Spark (`cdp.models.spark_features.compact_facts_spark`; the code -> one_id map stays in Spark), the UCI
   evaluation in pandas (the map travels with the frames as `CompactFacts.customer_ids`).
2. `build_features(compact, as_of, ...)` keeps only rows with `paid_date < as_of` and turns those into one numeric row per one_id (pandas + numpy):
   RFM, inter-purchase intervals, trend, tenure, seasonality, spend, BG/NBD outputs, returns, categories,
   channel mix, and (when given) profile attributes.

A "purchase" is one customer-day with a positive net amount of non-return lines (FHL 2005 count repeat
*transactions*; one per day keeps same-day multi-orders from inflating frequency).

    >>> import pandas as pd, datetime as dt
    >>> facts = pd.DataFrame({"one_id": ["a", "a", "b"], "channel": "pos", "category": "tea",
    ...     "paid_date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]).date,
    ...     "amount": [10.0, 20.0, 5.0], "is_return": False})
    >>> features = build_features(compact_facts(facts), dt.date(2024, 3, 1))
    >>> list(features.index), int(features.loc["a", "frequency"])
    (['a'], 2)
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from cdp.models.bgnbd import BetaGeoModel

log = logging.getLogger(__name__)

CHANNELS = ("pos", "miniprogram", "ecommerce")
# Compact day table: one row per (customer, paid_date) with any line; `amount` = sales (non-return, positive
# lines). `customer` is an int32 code of the one_id (see CompactFacts.customer_ids).
DAY_COLUMNS = ("customer", "paid_date", "amount", "n_lines", "return_amount", "return_lines",
               *(f"amount_{c}" for c in CHANNELS))
# Category table: one row per (customer, category) with the first paid_date of a sales line in that category
# (the category itself is not needed on the driver: the features count categories).
CATEGORY_COLUMNS = ("customer", "first_date")
PROFILE_FLAGS = ("is_member", "is_paid_member", "has_app", "is_wecom_added", "has_marketing_consent")
# BG/NBD is fitted on at most this many customers of a snapshot (seeded sample; see BetaGeoModel.fit):
# the fit is a few hundred likelihood evaluations over every customer, the largest cost of a snapshot at 1M.
BGNBD_FIT_MAX_CUSTOMERS = 100_000


@dataclass(frozen=True)
class CompactFacts:
    """Order lines reduced to what the features need; everything as-of is computed from these two frames.

    days: one row per (customer, paid_date) -- see DAY_COLUMNS. categories: one row per (customer, category).
    customer_ids: the one_id of each customer code (position = code), or None when the map stays in Spark
    (the platform path: frames and feature indexes then carry the integer codes, and scores are joined back
    to one_ids in Spark).
    """

    days: pd.DataFrame
    categories: pd.DataFrame
    customer_ids: pd.Index | None = None

    def before(self, as_of: dt.date | str) -> "CompactFacts":
        cut = _as_date(as_of).to_datetime64()
        return CompactFacts(self.days.loc[self.days["paid_date"].to_numpy() < cut],
                            self.categories.loc[self.categories["first_date"].to_numpy() < cut], self.customer_ids)

    def label(self, codes: np.ndarray | pd.Index) -> pd.Index:
        """The index for these customer codes: one_ids when the map is known, else the codes themselves."""
        codes = np.asarray(codes)
        if self.customer_ids is None:
            return pd.Index(codes, name="customer")
        return pd.Index(self.customer_ids.take(codes), name="one_id")


@dataclass(frozen=True)
class ProfileFacts:
    """gold_profiles reduced to numbers per customer code (see `cdp.models.spark_features.profile_facts`).

    flags: index = customer code, one float column per PROFILE_FLAGS entry present in gold_profiles.
    cards: one row per membership card with a registration date: customer, registered_date (datetime64);
    None when gold_profiles has no memberships column.
    """

    flags: pd.DataFrame
    cards: pd.DataFrame | None = None


def _as_date(value: dt.date | str) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def compact_facts(facts: pd.DataFrame) -> CompactFacts:
    """Reduce gold_order_facts-shaped lines (pandas) to CompactFacts. The Spark twin is
    `cdp.models.spark_features.compact_facts_spark`; a Spark test checks they agree."""
    paid = pd.to_datetime(facts["paid_date"]).to_numpy()
    codes, uniques = pd.factorize(facts["one_id"].to_numpy(), sort=True)
    customer = codes.astype(np.int32)
    amount = facts["amount"].astype(float).to_numpy()
    is_return = facts["is_return"].astype(bool).to_numpy() | (amount < 0)
    is_sale = ~is_return & (amount > 0)
    lines = pd.DataFrame({"customer": customer, "paid_date": paid,
                          "amount": np.where(is_sale, amount, 0.0), "n_lines": 1,
                          "return_amount": np.where(is_return, -amount, 0.0),
                          "return_lines": is_return.astype(int)})
    channel = facts["channel"].to_numpy()
    for c in CHANNELS:
        lines[f"amount_{c}"] = np.where(channel == c, lines["amount"].to_numpy(), 0.0)
    days = lines.groupby(["customer", "paid_date"], sort=True).sum().reset_index()
    cats = pd.DataFrame({"customer": customer, "category": facts["category"].to_numpy(),
                         "first_date": paid})[is_sale]
    categories = (cats.groupby(["customer", "category"], sort=True)["first_date"].min().reset_index()
                  .sort_values(["customer", "first_date"], kind="mergesort"))
    return CompactFacts(days[list(DAY_COLUMNS)], categories[list(CATEGORY_COLUMNS)].reset_index(drop=True),
                        pd.Index(uniques, name="one_id"))


def purchase_days(compact: CompactFacts, as_of: dt.date | str | None = None) -> pd.DataFrame:
    """Purchase days (sales amount > 0), optionally only those before as_of: customer, paid_date, amount."""
    days = compact.days if as_of is None else compact.before(as_of).days
    return days.loc[days["amount"] > 0, ["customer", "paid_date", "amount"]].reset_index(drop=True)


def customer_extras(compact: CompactFacts, as_of: dt.date | str) -> pd.DataFrame:
    """Per customer code with lines before as_of: category breadth, returns, channel mix of sales."""
    c = compact.before(as_of)
    g = c.days.groupby("customer", sort=True)
    sums = g[["amount", "return_amount", "return_lines", *(f"amount_{ch}" for ch in CHANNELS)]].sum()
    out = pd.DataFrame(index=sums.index)
    out["n_categories"] = c.categories.groupby("customer").size()
    out["return_lines"] = sums["return_lines"]
    out["return_amount"] = sums["return_amount"]
    gross = sums["amount"]
    out["return_rate"] = sums["return_amount"] / gross.where(gross > 0)
    for ch in CHANNELS:
        out[f"share_{ch}"] = sums[f"amount_{ch}"] / gross.where(gross > 0)
    out["n_channels"] = (sums[[f"amount_{ch}" for ch in CHANNELS]] > 0).sum(axis=1)
    return out.fillna(0.0)


def _window_counts(days: pd.DataFrame, age: np.ndarray, lo: int, hi: int, column: str | None = None) -> pd.Series:
    """Purchase days (or the sum of `column`) with lo <= days-before-as_of < hi, per customer code."""
    mask = (age >= lo) & (age < hi)
    sub = days.loc[mask]
    if column is None:
        return sub.groupby("customer", sort=False).size()
    return sub.groupby("customer", sort=False)[column].sum()


def build_features(compact: CompactFacts, as_of: dt.date | str,
                   profiles: ProfileFacts | None = None, horizons: Sequence[int] = (30, 90),
                   bgnbd: BetaGeoModel | None = None) -> pd.DataFrame:
    """Numeric features for every customer with a purchase day before `as_of`; the index is the one_id
    (`compact.customer_ids` known) or the integer customer code (platform path), see `CompactFacts.label`.

    `compact`: CompactFacts of the order lines (only rows before as_of are used, so passing more is safe).
    `profiles`: ProfileFacts keyed by the same customer codes (cards registered before as_of count).
    `bgnbd`: a fitted model to use; by default one is fitted on this population (BG/NBD is unsupervised).

    Step 1: days before as-of per purchase (age), first/last purchase, frequency and spend.
    Step 2: inter-purchase intervals (mean, median, std, min, last) and how overdue the customer is.
    Step 3: window counts and spend (30/90/180/365 days), trend ratios, last year's same season.
    Step 4: BG/NBD P(alive), P(no purchase) and expected purchases for each horizon.
    Step 5: extras (categories, returns, channel mix) and profile flags.
    """
    as_of_ts = _as_date(as_of)
    d = purchase_days(compact, as_of_ts)
    d = d.sort_values(["customer", "paid_date"], kind="mergesort").reset_index(drop=True)
    age = (as_of_ts - d["paid_date"]).dt.days.to_numpy()
    d["age"] = age
    g = d.groupby("customer", sort=True)

    # Step 1
    f = pd.DataFrame(index=g.size().index)
    f["frequency"] = g.size()
    f["recency_days"] = g["age"].min()
    f["tenure_days"] = g["age"].max()
    f["monetary"] = g["amount"].sum()
    f["mean_spend"] = f["monetary"] / f["frequency"]
    f["max_spend"] = g["amount"].max()
    f["last_spend"] = g["amount"].last()
    f["log_monetary"] = np.log1p(f["monetary"].clip(lower=0))
    f["active_span_days"] = f["tenure_days"] - f["recency_days"]

    # Step 2: gaps between consecutive purchase days of the same customer
    same = d["customer"].to_numpy()[1:] == d["customer"].to_numpy()[:-1]
    gap = np.where(same, age[:-1] - age[1:], np.nan)
    gaps = pd.DataFrame({"customer": d["customer"].to_numpy()[1:], "gap": gap}).dropna()
    gg = gaps.groupby("customer", sort=True)["gap"]
    f["gap_mean"] = gg.mean()
    f["gap_median"] = gg.median()
    f["gap_std"] = gg.std()
    f["gap_min"] = gg.min()
    f["gap_last"] = gg.last()
    span_rate = f["active_span_days"] / (f["frequency"] - 1).where(f["frequency"] > 1)
    f["overdue_ratio"] = f["recency_days"] / f["gap_mean"]
    f["overdue_z"] = (f["recency_days"] - f["gap_mean"]) / (f["gap_std"].fillna(0) + 7.0)
    f["purchase_rate"] = f["frequency"] / (f["tenure_days"] + 30.0)
    f["span_rate_days"] = span_rate

    # Step 3: windows
    for lo, hi in ((0, 30), (0, 90), (90, 180), (0, 180), (0, 365)):
        f[f"n_{lo}_{hi}"] = _window_counts(d, age, lo, hi)
        f[f"amount_{lo}_{hi}"] = _window_counts(d, age, lo, hi, "amount")
    f = f.fillna({c: 0 for c in f.columns if c.startswith(("n_", "amount_"))})
    f["trend_90"] = (f["n_0_90"] + 1) / (f["n_90_180"] + 1)
    f["trend_amount_90"] = np.log1p(f["amount_0_90"]) - np.log1p(f["amount_90_180"])
    f["share_recent_365"] = f["n_0_90"] / f["n_0_365"].where(f["n_0_365"] > 0)
    for horizon in horizons:
        # The season ahead, one year ago: [as_of - 365, as_of - 365 + horizon)
        f[f"n_last_year_next_{horizon}"] = _window_counts(d, age, 365 - horizon + 1, 366)
        f[f"n_last_year_next_{horizon}"] = f[f"n_last_year_next_{horizon}"].fillna(0)
    f["observed_last_year"] = (f["tenure_days"] >= 365).astype(float)

    # Step 4: BG/NBD in days; x = repeat purchase days, t_x = last - first, T = as_of - first
    x = (f["frequency"] - 1).to_numpy(float)
    t_x = f["active_span_days"].to_numpy(float)
    T = f["tenure_days"].to_numpy(float)
    model = bgnbd if bgnbd is not None else BetaGeoModel().fit(x, t_x, T, max_customers=BGNBD_FIT_MAX_CUSTOMERS)
    f["bg_p_alive"] = model.p_alive(x, t_x, T)
    for horizon in horizons:
        f[f"bg_p_none_{horizon}"] = model.p_no_purchase(x, t_x, T, horizon)
        f[f"bg_expected_{horizon}"] = model.expected_purchases(x, t_x, T, horizon)
    f["bg_expected_365"] = model.expected_purchases(x, t_x, T, 365)

    # Step 5
    f = f.join(customer_extras(compact, as_of_ts), how="left")
    f["categories_per_purchase"] = f["n_categories"] / f["frequency"]
    if profiles is not None and len(profiles.flags):
        f = f.join(profile_features(profiles, as_of_ts), how="left")
    f = f.astype(float)
    f.index = compact.label(f.index.to_numpy())
    return f


def profile_features(profiles: ProfileFacts, as_of: dt.date | str) -> pd.DataFrame:
    """Flags from gold_profiles per customer code. Membership counts only cards registered before as_of;
    has_app and WeCom contact are current snapshots (gold_profiles carries no date for them) -- see
    docs/models.md. Vectorised: no Python work per customer."""
    as_of_ts = _as_date(as_of)
    out = profiles.flags.astype(float)
    if profiles.cards is not None:
        cards = profiles.cards.loc[profiles.cards["registered_date"].to_numpy() < as_of_ts.to_datetime64()]
        g = cards.groupby("customer", sort=True)["registered_date"]
        out["member_cards"] = g.size().reindex(out.index).fillna(0).astype(float)
        out["member_tenure_days"] = (as_of_ts - g.min()).dt.days.reindex(out.index).astype(float)
        out["is_member"] = (out["member_cards"] > 0).astype(float)
        if "is_paid_member" in out:
            out["is_paid_member"] = out["is_paid_member"] * out["is_member"]
    return out


def labels(compact: CompactFacts, as_of: dt.date | str, horizon: int) -> pd.Series:
    """1.0 per customer (indexed like build_features) with a purchase day in [as_of, as_of + horizon), else
    absent (fill with 0)."""
    as_of_ts = _as_date(as_of)
    days = purchase_days(compact)
    paid = days["paid_date"].to_numpy()
    mask = (paid >= as_of_ts.to_datetime64()) & (paid < (as_of_ts + pd.Timedelta(days=horizon)).to_datetime64())
    return pd.Series(1.0, index=compact.label(np.unique(days.loc[mask, "customer"].to_numpy())))
