"""BG/NBD ("beta-geometric / negative binomial distribution") model of repeat buying.

Source: Peter S. Fader, Bruce G. S. Hardie and Ka Lok Lee (2005), "'Counting Your Customers' the Easy Way:
An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275-284 (equation numbers below refer to
that paper), and the companion note "Computing P(alive) Using the BG/NBD Model" (Fader, Hardie & Lee 2008).
Spend per transaction uses the Gamma-Gamma model of Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", *Journal of Marketing Research* 42(4), 415-430 (equation 5 there).

Inputs per customer, in one time unit (days here), observed over (0, T]:
    x    number of *repeat* purchases (purchase days after the first one),
    t_x  time of the last purchase, measured from the first purchase (0 when x == 0),
    T    time from the first purchase to the end of observation (the as-of date).

    >>> import numpy as np
    >>> model = BetaGeoModel().fit(np.array([0, 2, 5]), np.array([0., 30., 200.]), np.array([100., 150., 250.]))
    >>> model.p_alive(np.array([5]), np.array([200.]), np.array([250.])).shape
    (1,)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special


def _log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                    weights: np.ndarray) -> float:
    """Sum of the individual log-likelihoods (FHL 2005, equation 6), written in logs for stability.

    L(r, alpha, a, b | x, t_x, T) = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
                                   + delta_{x>0} * B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x))
    """
    r, alpha, a, b = params
    # Step 1: the part common to both terms: ln Gamma(r+x) - ln Gamma(r) + r ln alpha.
    common = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    # Step 2: first term -- the customer is still alive at T (no dropout after the x-th purchase).
    ln_a1 = special.betaln(a, b + x) - special.betaln(a, b) - (r + x) * np.log(alpha + T)
    # Step 3: second term -- the customer dropped out right after the last (x-th) purchase; only when x > 0.
    has_repeat = x > 0
    ln_a2 = np.where(has_repeat,
                     special.betaln(a + 1, np.maximum(b + x - 1, 1e-12)) - special.betaln(a, b)
                     - (r + x) * np.log(alpha + t_x),
                     -np.inf)
    # Step 4: log of the sum of the two terms, computed without overflow.
    ll = common + np.logaddexp(ln_a1, ln_a2)
    return float(np.sum(weights * ll))


@dataclass
class BetaGeoModel:
    """Maximum-likelihood BG/NBD. Parameters after `fit`: r, alpha (purchase rate, gamma mixing),
    a, b (dropout probability, beta mixing).

    `penalizer` adds an L2 penalty on the parameters (0 = plain MLE, as in the paper).
    """

    penalizer: float = 0.0
    params_: dict[str, float] = field(default_factory=dict)

    def fit(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weights: np.ndarray | None = None,
            initial: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
            max_customers: int | None = None, seed: int = 0) -> "BetaGeoModel":
        """Fit by maximising the log-likelihood (FHL 2005, section 3.1) with scipy.

        Step 1: validate 0 <= t_x <= T and integer x >= 0; with more than `max_customers` customers, fit on a
                seeded random sample of that many (four population parameters: 100k customers pin them down
                to well under 1 %, and each likelihood evaluation costs time linear in the customers).
        Step 2: optimise over log-parameters (keeps r, alpha, a, b > 0) with L-BFGS-B, scaling alpha by the
                mean T so the optimiser works on numbers near 1.
        Step 3: fall back to Nelder-Mead if L-BFGS-B does not converge.
        """
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
            raise ValueError("BG/NBD needs x >= 0 and 0 <= t_x <= T for every customer")
        w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
        if max_customers is not None and len(x) > max_customers:
            keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_customers, replace=False))
            x, t_x, T, w = x[keep], t_x[keep], T[keep], w[keep]
        scale = float(np.mean(T)) or 1.0
        xs, ts, Ts = x, t_x / scale, T / scale

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            penalty = self.penalizer * float(np.sum(params ** 2))
            value = -_log_likelihood(params, xs, ts, Ts, w) / w.sum() + penalty
            return value if np.isfinite(value) else 1e12

        start = np.log(np.asarray(initial, dtype=float))
        result = optimize.minimize(objective, start, method="L-BFGS-B",
                                   bounds=[(-12, 12)] * 4, options={"maxiter": 2000})
        if not result.success:
            result = optimize.minimize(objective, result.x, method="Nelder-Mead",
                                       options={"maxiter": 8000, "xatol": 1e-8, "fatol": 1e-12})
        r, alpha, a, b = np.exp(result.x)
        self.params_ = {"r": float(r), "alpha": float(alpha * scale), "a": float(a), "b": float(b)}
        return self

    def _p(self) -> tuple[float, float, float, float]:
        if not self.params_:
            raise ValueError("fit the BG/NBD model first")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(still active at T | x, t_x, T) (FHL 2005, equation 11); 1.0 for customers with x == 0."""
        r, alpha, a, b = self._p()
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        log_ratio = (np.log(a) - np.log(np.maximum(b + x - 1, 1e-12))
                     + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)))
        return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700))), 1.0)

    def p_no_purchase(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
        """P(no purchase in (T, T+horizon] | x, t_x, T).

        Step 1: with probability 1 - P(alive) the customer has dropped out and buys nothing.
        Step 2: if alive at T, lambda | data ~ Gamma(r+x, alpha+T) (FHL 2005, section 4) and, since dropout can
                only follow a purchase, zero purchases in the window has probability E[exp(-lambda*horizon)]
                = ((alpha+T)/(alpha+T+horizon))^(r+x).
        """
        r, alpha, _, _ = self._p()
        x, T = np.asarray(x, dtype=float), np.asarray(T, dtype=float)
        alive = self.p_alive(x, t_x, T)
        none_if_alive = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
        return (1.0 - alive) + alive * none_if_alive

    def expected_purchases(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, horizon: float) -> np.ndarray:
        """E[number of purchases in (T, T+horizon] | x, t_x, T] (FHL 2005, equation 10)."""
        r, alpha, a, b = self._p()
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        if abs(a - 1.0) < 1e-9:
            a = 1.0 + 1e-6  # equation 10 has a removable singularity at a == 1
        z = horizon / (alpha + T + horizon)
        hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)
        body = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon))) * hyp
        if_alive = head * body
        # Far from the data (a near-Poisson base drives the fit to huge r, alpha, a, b) hyp2f1 overflows and the
        # product above is inf * 0: integrate the same expectation over the dropout probability instead.
        bad = ~np.isfinite(if_alive)
        if bad.any():
            if_alive = np.where(bad, 0.0, if_alive)
            if_alive[bad] = _expected_if_alive_by_quadrature(r, alpha, a, b, x[bad], T[bad], horizon)
        denom = 1.0 + np.where(x > 0, a / np.maximum(b + x - 1, 1e-12)
                               * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))), 0.0)
        return np.clip(if_alive / denom, 0.0, None)


def _expected_if_alive_by_quadrature(r: float, alpha: float, a: float, b: float, x: np.ndarray, T: np.ndarray,
                                     horizon: float, nodes: int = 256) -> np.ndarray:
    """E[purchases in (T, T+horizon] | alive at T, x, T]: the numerator of FHL 2005 equation 10, by quadrature.

    Alive at T, the posterior is lambda ~ Gamma(r+x, alpha+T) and p ~ Beta(a, b+x); given both, a customer who
    drops out after each purchase with probability p makes (1 - exp(-lambda p t)) / p purchases in t on average.
    Integrating lambda out exactly leaves E_p[(1 - ((alpha+T) / (alpha+T+p t))^(r+x)) / p], a bounded, smooth
    integrand. It is integrated over s = logit(p), where the Beta weight is p^a (1-p)^(b+x) ds, on a
    Gauss-Legendre grid around the weight's mode wide enough for its tails to fall below exp(-36) (computed in
    logs, so huge a and b do not overflow); one grid per distinct x.
    """
    u, gw = np.polynomial.legendre.leggauss(nodes)
    out = np.empty(len(x))
    for value in np.unique(x):
        rows = x == value
        b1 = b + value
        mode, sd = np.log(a / b1), np.sqrt(1.0 / a + 1.0 / b1)  # log-concave in s: tails fall like exp(a s), exp(-b1 s)
        lo, hi = mode - 36.0 / a - 8.0 * sd, mode + 36.0 / b1 + 8.0 * sd
        s = (hi - lo) / 2 * u + (hi + lo) / 2
        log_weight = -a * np.logaddexp(0.0, -s) - b1 * np.logaddexp(0.0, s)
        weight = gw * np.exp(log_weight - log_weight.max())
        p = special.expit(s)
        k = horizon / (alpha + T[rows])
        kp = np.outer(k, p)
        c = r + value
        exact = -np.expm1(-c * np.log1p(kp)) / np.where(p > 0, p, 1.0)   # ln1p(kp) = ln((alpha+T+p t) / (alpha+T))
        # p -> 0 (a tiny a puts the grid far into the left tail, where p underflows): the limit c k, no dropout
        per_p = np.where((c + 1) * kp < 1e-10, c * k[:, None], exact)
        out[rows] = per_p @ weight / weight.sum()
    return out


@dataclass
class GammaGammaModel:
    """Gamma-Gamma spend model (Fader, Hardie & Lee 2005, JMR, section "spend"): average spend per purchase.

    Parameters p, q, v (v is gamma in the paper). Fit on customers with at least one repeat purchase.
    """

    params_: dict[str, float] = field(default_factory=dict)

    def fit(self, frequency: np.ndarray, mean_spend: np.ndarray, max_customers: int | None = None,
            seed: int = 0) -> "GammaGammaModel":
        """Step 1: keep customers with frequency > 0 and positive mean spend (with more than `max_customers`
                of them, a seeded random sample of that many: three population parameters).
        Step 2: maximise the marginal likelihood of the mean spend (JMR 2005, equation 3) over log-parameters."""
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(mean_spend, dtype=float)
        keep = (x > 0) & (m > 0)
        x, m = x[keep], m[keep]
        if len(x) < 3:
            raise ValueError("Gamma-Gamma needs at least 3 repeat customers with positive spend")
        if max_customers is not None and len(x) > max_customers:
            sample = np.sort(np.random.default_rng(seed).choice(len(x), size=max_customers, replace=False))
            x, m = x[sample], m[sample]
        scale = float(np.mean(m))
        ms = m / scale

        def negll(log_params: np.ndarray) -> float:
            p, q, v = np.exp(log_params)
            ll = (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q)
                  + q * np.log(v) + (p * x - 1) * np.log(ms) + p * x * np.log(x)
                  - (p * x + q) * np.log(x * ms + v))
            value = -float(np.mean(ll))
            return value if np.isfinite(value) else 1e12

        result = optimize.minimize(negll, np.zeros(3), method="L-BFGS-B", bounds=[(-10, 10)] * 3)
        p, q, v = np.exp(result.x)
        self.params_ = {"p": float(p), "q": float(q), "v": float(v * scale)}
        return self

    def expected_spend(self, frequency: np.ndarray, mean_spend: np.ndarray) -> np.ndarray:
        """E[spend per purchase | x, m] (JMR 2005, equation 5); the population mean for x == 0."""
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        x = np.asarray(frequency, dtype=float)
        m = np.nan_to_num(np.asarray(mean_spend, dtype=float))
        q_eff = max(q, 1.0 + 1e-6)
        population = p * v / (q_eff - 1)
        weight = (q_eff - 1) / (p * x + q_eff - 1)
        return weight * population + (1 - weight) * m


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, T: float,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (x, t_x, T) for n customers observed for T time units from known BG/NBD parameters (FHL 2005,
    section 2 assumptions i-v): lambda ~ Gamma(r, alpha), p ~ Beta(a, b), Poisson purchases at rate lambda,
    dropout with probability p after each purchase. Used to test that `fit` recovers the parameters."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x, np.full(n, T)
