"""Churn warning and repurchase propensity: calibrated gradient boosting on features stacked over several
training as-of dates.

Why stacked as-of dates: one snapshot teaches the model one season's base rate; several snapshots (each with
its own label window, all ending before the scoring date) make it learn which customers come back, not when
the calendar is busy. Why cohort-relative features (`pct_*`, the rank of a feature among the customers of the
same as-of date): the training snapshots have shorter histories than the scoring snapshot, and ranks are
invariant to that drift. Both are general, not tuned to one shop.

    churn label       = 1 when the customer has NO purchase day in [as_of, as_of + H)   (H = churn.horizon_days)
    repurchase label  = 1 when the customer has a purchase day in [as_of, as_of + 30)

Steps of `fit_propensity`:
1. Training as-of dates: latest = end - H (its label window closes before `end`), then every `step` days back.
2. Features per date (`cdp.models.features.build_features`), cohort-relative ranks added (on the whole
   snapshot), labels per date; then, when a snapshot has more than `max_rows_per_as_of` customers, a seeded
   sample stratified by label keeps that many rows (same positive rate; seed = model seed + date).
3. Time-based split: the latest date is the calibration set, the older ones train the boosted ensemble
   (HistGradientBoosting, `ensemble_size` seeds with feature subsampling, averaged).
4. A sigmoid (Platt) or isotonic calibrator maps the older ensemble's out-of-time scores on the latest date
   to probabilities (sigmoid keeps the ranking, so AUC is unchanged by calibration).
5. With `refit_all`, the ensemble is refitted on all dates (same seeds) and keeps that calibrator.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from cdp.errors import CdpError
from cdp.models.config import TrainingConfig
from cdp.models.features import CompactFacts, build_features, labels

log = logging.getLogger(__name__)

Task = Literal["churn", "repurchase"]
RELATIVE_FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "gap_mean", "overdue_ratio",
                     "bg_p_alive", "bg_expected_30", "bg_expected_90", "bg_p_none_30", "bg_p_none_90",
                     "n_0_90", "amount_0_90", "purchase_rate")


SCORE_CHUNK_ROWS = 200_000


class ModelError(CdpError):
    """A model cannot be trained or applied (for example: not enough history)."""


def add_relative_features(features: pd.DataFrame) -> pd.DataFrame:
    """Add `pct_<name>`: the percentile rank of a feature among the customers of the same as-of snapshot."""
    out = features.copy()
    for name in RELATIVE_FEATURES:
        if name in out:
            out[f"pct_{name}"] = out[name].rank(pct=True)
    return out


def target(compact: CompactFacts, index: pd.Index, as_of: dt.date | str, horizon: int, task: Task) -> np.ndarray:
    bought = labels(compact, as_of, horizon).reindex(index).fillna(0.0).to_numpy()
    return 1.0 - bought if task == "churn" else bought


def stratified_sample(y: np.ndarray, max_rows: int | None, seed: int, as_of: dt.date) -> np.ndarray | None:
    """Row positions (sorted) of a seeded sample of at most `max_rows` rows with the positive rate of `y`;
    None when no sampling is needed. Each class keeps round(max_rows * class share) rows, drawn without
    replacement with a generator seeded by (seed, as_of), so equal inputs give equal samples.

    >>> y = np.array([1.0] * 30 + [0.0] * 70)
    >>> keep = stratified_sample(y, 10, seed=1, as_of=dt.date(2024, 1, 1))
    >>> len(keep), y[keep].sum()
    (10, 3.0)
    """
    if max_rows is None or len(y) <= max_rows:
        return None
    rng = np.random.default_rng([seed, as_of.toordinal()])
    picked = []
    for value in (0.0, 1.0):
        rows = np.flatnonzero(y == value)
        picked.append(rng.choice(rows, size=int(round(max_rows * len(rows) / len(y))), replace=False))
    return np.sort(np.concatenate(picked))


def training_dates(end: dt.date, horizon: int, cfg: TrainingConfig, first_fact: dt.date) -> list[dt.date]:
    """Step 1: latest first; drops dates with less than min_history_days of facts before them."""
    latest = end - dt.timedelta(days=horizon)
    dates = [latest - dt.timedelta(days=cfg.as_of_step_days * k) for k in range(cfg.as_of_count)]
    return [d for d in dates if (d - first_fact).days >= cfg.min_history_days]


def snapshot(compact: CompactFacts, as_of: dt.date, profiles: pd.DataFrame | None = None,
             population_since: dt.date | None = None) -> pd.DataFrame:
    """Features (with cohort ranks) of the customers with a purchase day before as_of
    (and, if given, on or after `population_since`)."""
    features = build_features(compact, as_of, profiles)
    if population_since is not None:
        last_purchase = pd.Timestamp(as_of) - pd.to_timedelta(features["recency_days"], unit="D")
        features = features.loc[last_purchase >= pd.Timestamp(population_since)]
    return add_relative_features(features)


def task_training_dates(compact: CompactFacts, end: dt.date, horizon: int, cfg: TrainingConfig) -> list[dt.date]:
    """The training as-of dates `fit_propensity` will use for this horizon (empty without facts)."""
    if compact.days.empty:
        return []
    return training_dates(end, horizon, cfg, pd.Timestamp(compact.days["paid_date"].min()).date())


def retain_snapshots(snapshots: dict[dt.date, pd.DataFrame], dates: set[dt.date]) -> None:
    """Drop cached snapshots no later task needs (each full snapshot is ~0.5 KB per customer)."""
    for as_of in [d for d in snapshots if d not in dates]:
        del snapshots[as_of]


@dataclass
class PropensityModel:
    """A calibrated ensemble; `predict(features)` returns probabilities of the task's label."""

    task: str
    horizon_days: int
    feature_columns: list[str]
    members: list[HistGradientBoostingClassifier]
    calibrator: object
    calibration: str
    training_dates: list[str] = field(default_factory=list)

    def raw_score(self, features: pd.DataFrame) -> np.ndarray:
        """Mean member probability, in chunks of SCORE_CHUNK_ROWS rows (bounded memory for millions)."""
        out = np.empty(len(features))
        for start in range(0, len(features), SCORE_CHUNK_ROWS):
            X = features.iloc[start:start + SCORE_CHUNK_ROWS].reindex(columns=self.feature_columns)
            out[start:start + len(X)] = np.mean([m.predict_proba(X)[:, 1] for m in self.members], axis=0)
        return out

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        raw = self.raw_score(features)
        if self.calibration == "isotonic":
            return self.calibrator.predict(raw)
        return self.calibrator.predict_proba(_logit(raw).reshape(-1, 1))[:, 1]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_ensemble(X: pd.DataFrame, y: np.ndarray, cfg: TrainingConfig, seed: int) -> list[HistGradientBoostingClassifier]:
    members = []
    for k in range(cfg.ensemble_size):
        model = HistGradientBoostingClassifier(
            max_iter=cfg.max_iter, learning_rate=cfg.learning_rate, max_depth=cfg.max_depth,
            min_samples_leaf=cfg.min_samples_leaf, max_features=cfg.max_features, early_stopping=False,
            random_state=seed + k)
        members.append(model.fit(X, y))
    return members


def fit_propensity(compact: CompactFacts, end: dt.date, task: Task, horizon: int, cfg: TrainingConfig,
                   seed: int, profiles: pd.DataFrame | None = None,
                   snapshots: dict[dt.date, pd.DataFrame] | None = None) -> tuple[PropensityModel, dict]:
    """Train on facts before `end` only (labels of the latest training date end the day before `end`).

    `snapshots` is an optional cache {as_of: features} shared between calls (features do not depend on the
    task; the cache holds whole snapshots, sampling happens per task).
    """
    days = compact.days
    if days.empty:
        raise ModelError("no facts to train on")
    first_fact = pd.Timestamp(days["paid_date"].min()).date()
    dates = training_dates(end, horizon, cfg, first_fact)
    if len(dates) < 2:
        raise ModelError(f"{task}: need at least 2 training as-of dates with {cfg.min_history_days} days of history "
                         f"and a closed {horizon}-day label window before {end}; have {len(dates)}")
    # Step 2
    frames, ys, snapshot_rows = [], [], []
    for as_of in dates:
        f = snapshots.get(as_of) if snapshots is not None else None
        if f is None:
            f = snapshot(compact, as_of, profiles)
            if snapshots is not None:
                snapshots[as_of] = f
        y = target(compact, f.index, as_of, horizon, task)
        snapshot_rows.append(len(f))
        keep = stratified_sample(y, cfg.max_rows_per_as_of, seed, as_of)
        if keep is not None:
            f, y = f.iloc[keep], y[keep]
        frames.append(f)
        ys.append(y)
    columns = sorted(set().union(*(f.columns for f in frames)))
    # Step 3: time-based split -- the latest date calibrates, older dates train
    X_train = pd.concat([f.reindex(columns=columns) for f in frames[1:]])
    y_train = np.concatenate(ys[1:])
    X_cal, y_cal = frames[0].reindex(columns=columns), ys[0]
    if len(np.unique(y_train)) < 2 or len(np.unique(y_cal)) < 2:
        raise ModelError(f"{task}: labels of one class only in the training window; need more history")
    members = fit_ensemble(X_train, y_train, cfg, seed)
    model = PropensityModel(task, horizon, columns, members, None, cfg.calibration, [d.isoformat() for d in dates])
    # Step 4: the calibrator learns from out-of-time scores of the latest date
    raw = model.raw_score(X_cal)
    if cfg.calibration == "isotonic":
        model.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y_cal)
    else:
        model.calibrator = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), y_cal)
    p_cal = model.predict(X_cal)
    from cdp.models.evaluate import binary_metrics

    metrics = {f"calibration_{k}": v for k, v in binary_metrics(y_cal, p_cal).items()}
    # Step 5: refit the ensemble on all dates (the latest is the closest to scoring time) and keep the calibrator
    if cfg.refit_all:
        X_all = pd.concat([X_train, X_cal])
        model.members = fit_ensemble(X_all, np.concatenate([y_train, y_cal]), cfg, seed)
    metrics.update(train_rows=int(len(X_train)), calibration_rows=int(len(X_cal)),
                   train_positive_rate=float(y_train.mean()), snapshot_rows=snapshot_rows)
    log.info("%s: trained on %d rows (%d dates), calibration AUC %.3f", task, len(X_train), len(dates) - 1,
             metrics["calibration_roc_auc"])
    return model, metrics
