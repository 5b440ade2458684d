"""Evaluation on real data: UCI Online Retail (issue 5, item 9), with two baselines on the same split.

Protocol (as in the issue): as-of 2011-09-09; the population is every customer with a purchase day in
[2010-12-01, as-of); one purchase = one customer-day with positive sales; cancellations (invoices "C...")
are not purchases (they enter the features as returns); churn_90 = no purchase day in [as-of, as-of+90);
repurchase_30 = a purchase day in [as-of, as-of+30). Only facts before as-of build features, and the model
is trained on earlier as-of dates whose label windows end before as-of.

Baselines on the same split:
- recency-only: days since the last purchase (a logistic fit of label on log(1+recency) over the training
  dates turns it into a probability for the Brier score; ROC/PR AUC and lift only depend on the ranking);
- BG/NBD (Fader, Hardie & Lee 2005) fitted on the as-of population: P(no purchase in 90 days) for churn,
  P(>= 1 purchase in 30 days) for repurchase.
Also reported: plain gradient boosting on RFM + tenure (the issue's third reference).

    cdp models evaluate-uci --out docs/     # writes docs/models_uci_metrics.json and two SVG charts
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

log = logging.getLogger(__name__)

UCI_FILE = "online_retail_2010_2011_raw.parquet"
UCI_OLDER_FILE = "online_retail_II_2009_2010_raw.parquet"
AS_OF = dt.date(2011, 9, 9)
POPULATION_SINCE = dt.date(2010, 12, 1)
RFM_COLUMNS = ["recency_days", "frequency", "monetary", "tenure_days"]


def load_uci_facts(path: str | Path, older_path: str | Path | None = None) -> pd.DataFrame:
    """UCI Online Retail mapped into the gold_order_facts shape (pandas): one row per invoice line.

    one_id = CustomerID (lines without it are dropped, as anonymous lines are in gold_order_facts);
    channel = "ecommerce"; paid_date = invoice day; category = first 3 characters of StockCode (the shop's
    product families); amount = Quantity * UnitPrice; is_return = cancellation invoice ("C...") or negative
    quantity. With `older_path` (Online Retail II, 2009-2010) invoices already in the first file are dropped.
    """
    def one(file: str | Path, invoice: str, customer: str, price: str) -> pd.DataFrame:
        raw = pd.read_parquet(file, columns=[invoice, "StockCode", "Quantity", "InvoiceDate", price, customer])
        raw = raw.loc[raw[customer].notna()]
        inv = raw[invoice].astype(str)
        quantity = raw["Quantity"].astype(float)
        return pd.DataFrame({
            "one_id": raw[customer].astype("int64").astype(str).to_numpy(),
            "channel": "ecommerce",
            "paid_date": pd.to_datetime(raw["InvoiceDate"]).dt.normalize().to_numpy(),
            "category": raw["StockCode"].astype(str).str[:3].to_numpy(),
            "amount": (quantity * raw[price].astype(float)).to_numpy(),
            "is_return": (inv.str.startswith("C") | (quantity < 0)).to_numpy(),
            "order_id": inv.to_numpy(),
        })

    facts = one(path, "InvoiceNo", "CustomerID", "UnitPrice")
    if older_path is not None:
        older = one(older_path, "Invoice", "Customer ID", "Price")
        facts = pd.concat([older.loc[~older["order_id"].isin(set(facts["order_id"]))], facts], ignore_index=True)
    return facts


def top_decile_lift(y: np.ndarray, score: np.ndarray) -> float:
    """Positive rate among the 10% highest scores divided by the overall positive rate (stable sort)."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    top = order[: max(1, int(round(len(y) * 0.1)))]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), Brier score and top-decile lift of probabilities p."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
            "brier": float(brier_score_loss(y, np.clip(p, 0, 1))), "top_decile_lift": top_decile_lift(y, p),
            "positive_rate": float(y.mean()), "n": int(len(y))}


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per quantile bin of p."""
    order = np.argsort(p, kind="mergesort")
    out = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            out.append((float(np.mean(p[chunk])), float(np.mean(y[chunk])), int(len(chunk))))
    return out


def lift_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[float]:
    """Positive rate per score decile (highest first) divided by the overall rate."""
    order = np.argsort(-p, kind="mergesort")
    return [float(np.mean(y[chunk]) / np.mean(y)) for chunk in np.array_split(order, bins)]


def evaluate_uci(data_dir: str | Path, config=None, with_older_history: bool = False) -> dict[str, Any]:
    """Run the protocol; returns metrics per task and method, plus curves for the charts.

    with_older_history=True adds Online Retail II (2009-2010) as extra history for every method (baselines
    included), a second, separate split.
    """
    from cdp.models.config import ModelsConfig
    from cdp.models.features import compact_facts
    from cdp.models.propensity import fit_propensity, snapshot, target, training_dates

    cfg = config or ModelsConfig()
    data_dir = Path(data_dir)
    wanted = [data_dir / UCI_FILE] + ([data_dir / UCI_OLDER_FILE] if with_older_history else [])
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        from cdp.errors import CdpError

        raise CdpError(f"UCI Online Retail file(s) not found: {', '.join(missing)}. Pass --data-dir with the folder "
                       f"holding {UCI_FILE} (the shared external data, see docs/models.md)")
    facts = load_uci_facts(data_dir / UCI_FILE, data_dir / UCI_OLDER_FILE if with_older_history else None)
    compact = compact_facts(facts)
    evaluation = snapshot(compact, AS_OF, population_since=POPULATION_SINCE)
    result: dict[str, Any] = {"as_of": AS_OF.isoformat(), "population": int(len(evaluation)),
                              "with_older_history": with_older_history, "tasks": {}}
    first_fact = pd.Timestamp(compact.days["paid_date"].min()).date()
    cache: dict[dt.date, pd.DataFrame] = {}
    for task, task_cfg in (("churn", cfg.churn), ("repurchase", cfg.repurchase)):
        horizon = task_cfg.horizon_days
        y = target(compact, evaluation.index, AS_OF, horizon, task)
        model, _ = fit_propensity(compact, AS_OF, task, horizon, cfg.training, cfg.seed, snapshots=cache)
        p_model = model.predict(evaluation)
        # Baselines, fitted on the same training dates (recency mapping, plain GBM) or unsupervised (BG/NBD)
        dates = training_dates(AS_OF, horizon, cfg.training, first_fact)
        train = [cache[d] for d in dates]
        y_train = np.concatenate([target(compact, f.index, d, horizon, task) for f, d in zip(train, dates)])
        X_train = pd.concat(train)
        recency = LogisticRegression().fit(np.log1p(X_train[["recency_days"]].to_numpy()), y_train)
        p_recency = recency.predict_proba(np.log1p(evaluation[["recency_days"]].to_numpy()))[:, 1]
        p_none = evaluation[f"bg_p_none_{horizon}"].to_numpy()
        p_bgnbd = p_none if task == "churn" else 1.0 - p_none
        gbm = HistGradientBoostingClassifier(random_state=cfg.seed).fit(X_train[RFM_COLUMNS], y_train)
        p_gbm = gbm.predict_proba(evaluation[RFM_COLUMNS])[:, 1]
        methods = {"model": p_model, "recency": p_recency, "bgnbd": p_bgnbd, "gbm_rfm": p_gbm}
        result["tasks"][f"{task}_{horizon}"] = {
            "metrics": {name: binary_metrics(y, p) for name, p in methods.items()},
            "calibration": {name: calibration_curve(y, methods[name]) for name in ("model", "bgnbd")},
            "lift": {name: lift_curve(y, p) for name, p in methods.items()},
            "training_dates": model.training_dates,
        }
    result["clv"] = evaluate_clv_uci(data_dir, cfg)
    return result


def evaluate_clv_uci(data_dir: str | Path, cfg=None) -> dict[str, Any]:
    """CLV (expected spend in the next 365 days) on a 12-month split: as-of 2010-12-01 with the 2009-2010
    history (Online Retail II), actual spend 2010-12-01..2011-11-30 from both files. Compared with the naive
    "next year = last year" baseline."""
    from scipy.stats import spearmanr

    from cdp.models.clv import predict_clv
    from cdp.models.features import build_features, compact_facts, purchase_days

    data_dir = Path(data_dir)
    as_of = dt.date(2010, 12, 1)
    facts = load_uci_facts(data_dir / UCI_FILE, data_dir / UCI_OLDER_FILE)
    compact = compact_facts(facts)
    features = build_features(compact, as_of)
    predicted = predict_clv(features, 365)
    days = purchase_days(compact)
    future = days.loc[(days["paid_date"] >= pd.Timestamp(as_of))
                      & (days["paid_date"] < pd.Timestamp(as_of) + pd.Timedelta(days=365))]
    spend = future.groupby("customer")["amount"].sum()
    spend.index = compact.label(spend.index.to_numpy())
    actual = spend.reindex(features.index).fillna(0.0).to_numpy()
    naive = features["amount_0_365"].to_numpy()
    out = {"as_of": as_of.isoformat(), "customers": int(len(features)), "mean_actual": float(actual.mean())}
    for name, pred in (("model", predicted), ("naive_last_365", naive)):
        order = np.argsort(-pred, kind="mergesort")[: max(1, len(pred) // 10)]
        out[name] = {"mae": float(np.mean(np.abs(pred - actual))),
                     "rmse": float(np.sqrt(np.mean((pred - actual) ** 2))),
                     "spearman": float(spearmanr(pred, actual).statistic),
                     "top_decile_share_of_spend": float(actual[order].sum() / actual.sum()),
                     "total_predicted_over_actual": float(pred.sum() / actual.sum())}
    return out


def metrics_table(result: dict[str, Any]) -> str:
    """Markdown table of the metrics (one line per task and method)."""
    lines = ["| task | method | ROC AUC | PR AUC | Brier | top-decile lift |", "|---|---|---|---|---|---|"]
    names = {"model": "**our model**", "recency": "recency-only", "bgnbd": "BG/NBD", "gbm_rfm": "plain GBM on RFM"}
    for task, block in result["tasks"].items():
        for method, m in block["metrics"].items():
            lines.append(f"| {task} | {names[method]} | {m['roc_auc']:.3f} | {m['pr_auc']:.3f} | {m['brier']:.3f} "
                         f"| {m['top_decile_lift']:.2f} |")
    return "\n".join(lines)


def write_charts(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Calibration plot and lift chart as SVG (matplotlib is not part of the pinned stack)."""
    from cdp.models.charts import line_chart

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    series, lifts = [], []
    colours = {"model": "#1f77b4", "bgnbd": "#d62728", "recency": "#7f7f7f", "gbm_rfm": "#2ca02c"}
    for task, block in result["tasks"].items():
        for method, curve in block["calibration"].items():
            series.append((f"{task} {method}", [(a, b) for a, b, _ in curve], colours[method],
                           "4 3" if task.startswith("repurchase") else None))
        for method, lift in block["lift"].items():
            lifts.append((f"{task} {method}", [(i + 1, v) for i, v in enumerate(lift)], colours[method],
                          "4 3" if task.startswith("repurchase") else None))
    cal = out_dir / "models_calibration.svg"
    cal.write_text(line_chart(series, "Calibration on UCI Online Retail (as-of 2011-09-09)", "mean predicted probability",
                              "observed rate", (0, 1), (0, 1), diagonal=True), encoding="utf-8")
    lift = out_dir / "models_lift.svg"
    lift.write_text(line_chart(lifts, "Lift by score decile (1 = highest scores)", "decile", "lift", (1, 10), None),
                    encoding="utf-8")
    paths += [cal, lift]
    return paths


def run_evaluation(data_dir: str | Path, out_dir: str | Path | None = None, with_older_history: bool = False,
                   threads: int | None = None) -> dict:
    """Evaluate and (with out_dir) write the metrics JSON and the charts. `threads` caps OpenMP threads of the
    boosted models (oversubscribed machines run much faster with 1)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        result = evaluate_uci(data_dir, with_older_history=with_older_history)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        suffix = "_with_2009" if with_older_history else ""
        (out / f"models_uci_metrics{suffix}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
        if not with_older_history:
            write_charts(result, out)
    return result
