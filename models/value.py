"""Customer value scores from the as-of features (pandas, driver side): CLV and win-back value tiers.

- clv: expected spend over the next `clv.horizon_days` (BG/NBD x Gamma-Gamma, cdp.models.clv); tier from the
  value's quantile among scored customers (bands in conf/models.yaml `clv.tiers`).
- winback: for dormant and churned customers (last purchase >= `winback.dormant_after_days` ago), the expected
  value of winning them back = P(still alive) (BG/NBD) x historical yearly spend (spend / max(tenure, 1 year)),
  tiered by quantile among dormant customers (`winback.tiers`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from cdp.models.clv import predict_clv
from cdp.models.config import ModelsConfig, grade


def quantile_tiers(values: np.ndarray, tiers: dict[str, float]) -> np.ndarray:
    """Tier by the value's percentile rank (ties share the rank): rank >= band lower bound."""
    ranks = pd.Series(values).rank(pct=True, method="average").to_numpy()
    return grade(ranks, tiers)


def clv_scores(features: pd.DataFrame, cfg: ModelsConfig) -> pd.DataFrame:
    """score (expected spend) and grade (tier) per customer, indexed like `features`."""
    value = predict_clv(features, cfg.clv.horizon_days)
    return pd.DataFrame({"score": value, "grade": quantile_tiers(value, cfg.clv.tiers)}, index=features.index)


def winback_scores(features: pd.DataFrame, cfg: ModelsConfig) -> pd.DataFrame:
    """score (win-back value) and grade (tier) per dormant customer, indexed like `features`."""
    dormant = features.loc[features["recency_days"] >= cfg.winback.dormant_after_days]
    if dormant.empty:
        # typed like a non-empty result: an untyped empty `grade` is float64, which Arrow refuses as text
        return pd.DataFrame({"score": pd.Series(dtype=float), "grade": pd.Series(dtype=object)}, index=dormant.index)
    years = np.maximum(dormant["tenure_days"].to_numpy(float), 365.0) / 365.0
    value = dormant["bg_p_alive"].to_numpy(float) * dormant["monetary"].to_numpy(float) / years
    return pd.DataFrame({"score": value, "grade": quantile_tiers(value, cfg.winback.tiers)}, index=dormant.index)
