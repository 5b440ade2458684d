"""Customer features as of a date, built only from facts strictly before that date.

One implementation serves the platform and the UCI evaluation:

1. `compact_facts(facts)` reduces order lines in the `gold_order_facts` shape (one_id, channel, paid_date,
   category, amount, is_return) to one row per customer-day and one row per (customer, category). The
   platform does this reduction in Spark (`cdp.models.spark_features.compact_facts_spark`), the UCI
   evaluation in pandas.
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
# Compact day table: one row per (one_id, paid_date) with any line; `amount` = sales (non-return, positive lines).
DAY_COLUMNS = ("one_id", "paid_date", "amount", "n_lines", "return_amount", "return_lines",
               *(f"amount_{c}" for c in CHANNELS))
# Category table: one row per (one_id, category) with the first paid_date of a sales line in that category.
CATEGORY_COLUMNS = ("one_id", "category", "first_date")
PROFILE_FLAGS = ("is_member", "is_paid_member", "has_app", "is_wecom_added", "has_marketing_consent")


@dataclass(frozen=True)
class CompactFacts:
    """Order lines reduced to what the features need; everything as-of is computed from these two frames.

    days: one row per (one_id, paid_date) -- see DAY_COLUMNS. categories: one row per (one_id, category).
    """

    days: pd.DataFrame
    categories: pd.DataFrame

    def before(self, as_of: dt.date | str) -> "CompactFacts":
        cut = _as_date(as_of).to_datetime64()
        return CompactFacts(self.days.loc[self.days["paid_date"].to_numpy() < cut],
                            self.categories.loc[self.categories["first_date"].to_numpy() < cut])


def _as_date(value: dt.date | str) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def compact_facts(facts: pd.DataFrame) -> CompactFacts:
    """Reduce gold_order_facts-shaped lines (pandas) to CompactFacts. The Spark twin is
    `cdp.models.spark_features.compact_facts_spark`; a Spark test checks they agree."""
    paid = pd.to_datetime(facts["paid_date"]).to_numpy()
    amount = facts["amount"].astype(float).to_numpy()
    is_return = facts["is_return"].astype(bool).to_numpy() | (amount < 0)
    is_sale = ~is_return & (amount > 0)
    lines = pd.DataFrame({"one_id": facts["one_id"].to_numpy(), "paid_date": paid,
                          "amount": np.where(is_sale, amount, 0.0), "n_lines": 1,
                          "return_amount": np.where(is_return, -amount, 0.0),
                          "return_lines": is_return.astype(int)})
    channel = facts["channel"].to_numpy()
    for c in CHANNELS:
        lines[f"amount_{c}"] = np.where(channel == c, lines["amount"].to_numpy(), 0.0)
    days = lines.groupby(["one_id", "paid_date"], sort=True).sum().reset_index()
    cats = pd.DataFrame({"one_id": facts["one_id"].to_numpy(), "category": facts["category"].to_numpy(),
                         "first_date": paid})[is_sale]
    categories = cats.groupby(["one_id", "category"], sort=True)["first_date"].min().reset_index()
    return CompactFacts(days[list(DAY_COLUMNS)], categories[list(CATEGORY_COLUMNS)])


def purchase_days(compact: CompactFacts, as_of: dt.date | str | None = None) -> pd.DataFrame:
    """Purchase days (sales amount > 0), optionally only those before as_of: one_id, paid_date, amount."""
    days = compact.days if as_of is None else compact.before(as_of).days
    return days.loc[days["amount"] > 0, ["one_id", "paid_date", "amount"]].reset_index(drop=True)


def customer_extras(compact: CompactFacts, as_of: dt.date | str) -> pd.DataFrame:
    """Per one_id with lines before as_of: category breadth, returns, channel mix of sales (index one_id)."""
    c = compact.before(as_of)
    g = c.days.groupby("one_id", sort=True)
    sums = g[["amount", "return_amount", "return_lines", *(f"amount_{ch}" for ch in CHANNELS)]].sum()
    out = pd.DataFrame(index=sums.index)
    out["n_categories"] = c.categories.groupby("one_id").size()
    out["return_lines"] = sums["return_lines"]
    out["return_amount"] = sums["return_amount"]
    gross = sums["amount"]
    out["return_rate"] = sums["return_amount"] / gross.where(gross > 0)
    for ch in CHANNELS:
        out[f"share_{ch}"] = sums[f"amount_{ch}"] / gross.where(gross > 0)
    out["n_channels"] = (sums[[f"amount_{ch}" for ch in CHANNELS]] > 0).sum(axis=1)
    return out.fillna(0.0)


def _window_counts(days: pd.DataFrame, age: np.ndarray, lo: int, hi: int, column: str | None = None) -> pd.Series:
    """Purchase days (or the sum of `column`) with lo <= days-before-as_of < hi, per one_id."""
    mask = (age >= lo) & (age < hi)
    sub = days.loc[mask]
    if column is None:
        return sub.groupby("one_id", sort=False).size()
    return sub.groupby("one_id", sort=False)[column].sum()


def build_features(compact: CompactFacts, as_of: dt.date | str,
                   profiles: pd.DataFrame | None = None, horizons: Sequence[int] = (30, 90),
                   bgnbd: BetaGeoModel | None = None) -> pd.DataFrame:
    """Numeric features per one_id (index) for every customer with a purchase day before `as_of`.

    `compact`: CompactFacts of the order lines (only rows before as_of are used, so passing more is safe).
    `profiles`: gold_profiles-shaped frame with one_id and
    the boolean flags in PROFILE_FLAGS plus optional `memberships` (registered_at before as_of counts).
    `bgnbd`: a fitted model to use; by default one is fitted on this population (BG/NBD is unsupervised).

    Step 1: days before as-of per purchase (age), first/last purchase, frequency and spend.
    Step 2: inter-purchase intervals (mean, median, std, min, last) and how overdue the customer is.
    Step 3: window counts and spend (30/90/180/365 days), trend ratios, last year's same season.
    Step 4: BG/NBD P(alive), P(no purchase) and expected purchases for each horizon.
    Step 5: extras (categories, returns, channel mix) and profile flags.
    """
    as_of_ts = _as_date(as_of)
    d = purchase_days(compact, as_of_ts)
    d = d.sort_values(["one_id", "paid_date"], kind="mergesort").reset_index(drop=True)
    age = (as_of_ts - d["paid_date"]).dt.days.to_numpy()
    d["age"] = age
    g = d.groupby("one_id", sort=True)

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
    same = d["one_id"].to_numpy()[1:] == d["one_id"].to_numpy()[:-1]
    gap = np.where(same, age[:-1] - age[1:], np.nan)
    gaps = pd.DataFrame({"one_id": d["one_id"].to_numpy()[1:], "gap": gap}).dropna()
    gg = gaps.groupby("one_id", sort=True)["gap"]
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
    model = bgnbd if bgnbd is not None else BetaGeoModel().fit(x, t_x, T)
    f["bg_p_alive"] = model.p_alive(x, t_x, T)
    for horizon in horizons:
        f[f"bg_p_none_{horizon}"] = model.p_no_purchase(x, t_x, T, horizon)
        f[f"bg_expected_{horizon}"] = model.expected_purchases(x, t_x, T, horizon)
    f["bg_expected_365"] = model.expected_purchases(x, t_x, T, 365)

    # Step 5
    f = f.join(customer_extras(compact, as_of_ts), how="left")
    f["categories_per_purchase"] = f["n_categories"] / f["frequency"]
    if profiles is not None and len(profiles):
        f = f.join(profile_features(profiles, as_of_ts), how="left")
    f.index.name = "one_id"
    return f.astype(float)


def profile_features(profiles: pd.DataFrame, as_of: dt.date | str) -> pd.DataFrame:
    """Flags from gold_profiles per one_id. Membership counts only cards registered before as_of; has_app and
    WeCom contact are current snapshots (gold_profiles carries no date for them) -- see docs/models.md."""
    as_of_ts = _as_date(as_of)
    p = profiles.set_index("one_id")
    out = pd.DataFrame(index=p.index)
    for flag in PROFILE_FLAGS:
        if flag in p:
            out[flag] = p[flag].fillna(False).astype(float)
    if "memberships" in p:
        def dated(ms: object) -> tuple[float, float]:
            cards = [m for m in (ms if ms is not None else []) if m.get("registered_at") is not None
                     and pd.Timestamp(m["registered_at"]).tz_localize(None) < as_of_ts]
            if not cards:
                return 0.0, np.nan
            first = min(pd.Timestamp(m["registered_at"]).tz_localize(None) for m in cards)
            return float(len(cards)), float((as_of_ts - first).days)
        pairs = p["memberships"].map(dated)
        out["member_cards"] = [a for a, _ in pairs]
        out["member_tenure_days"] = [b for _, b in pairs]
        out["is_member"] = (out["member_cards"] > 0).astype(float)
        if "is_paid_member" in out:
            out["is_paid_member"] = out["is_paid_member"] * out["is_member"]
    return out


def labels(compact: CompactFacts, as_of: dt.date | str, horizon: int) -> pd.Series:
    """1.0 per one_id with a purchase day in [as_of, as_of + horizon), else absent (fill with 0)."""
    as_of_ts = _as_date(as_of)
    days = purchase_days(compact)
    paid = pd.to_datetime(days["paid_date"])
    mask = (paid >= as_of_ts) & (paid < as_of_ts + pd.Timedelta(days=horizon))
    return pd.Series(1.0, index=pd.Index(days.loc[mask, "one_id"].unique(), name="one_id"))
