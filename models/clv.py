"""Customer lifetime value: expected spend over the next `horizon` days = BG/NBD expected purchase days x
Gamma-Gamma expected spend per purchase day (Fader, Hardie & Lee 2005, JMR; see cdp.models.bgnbd)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cdp.models.bgnbd import BetaGeoModel, GammaGammaModel
from cdp.models.features import BGNBD_FIT_MAX_CUSTOMERS


def predict_clv(features: pd.DataFrame, horizon_days: int = 365) -> np.ndarray:
    """Step 1: refit BG/NBD on the features' (x, t_x, T) (cheap, keeps the function pure).
    Step 2: fit Gamma-Gamma on repeat customers' mean spend per purchase day.
    Both fits use at most BGNBD_FIT_MAX_CUSTOMERS customers (seeded sample); predictions cover everyone.
    Step 3: CLV = E[purchases in horizon] x E[spend per purchase] (no discounting within one year)."""
    x = (features["frequency"] - 1).to_numpy(float)
    t_x = features["active_span_days"].to_numpy(float)
    T = features["tenure_days"].to_numpy(float)
    bg = BetaGeoModel().fit(x, t_x, T, max_customers=BGNBD_FIT_MAX_CUSTOMERS)
    expected = bg.expected_purchases(x, t_x, T, horizon_days)
    mean_spend = features["mean_spend"].to_numpy(float)
    gg = GammaGammaModel().fit(x, mean_spend, max_customers=BGNBD_FIT_MAX_CUSTOMERS)
    # Gamma-Gamma conditions on repeat transactions; a one-time buyer gets the population mean shrunk toward
    # their first spend with weight of one observation.
    spend = gg.expected_spend(np.maximum(x, 1), mean_spend)
    return expected * spend
