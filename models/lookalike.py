"""Look-alike expansion: given a seed segment's one_ids, score every other profile by similarity to the seeds.

Method (positive-unlabelled learning, Elkan & Noto 2008 style ranking):
1. Hold out `validation_share` of the seeds (seeded shuffle).
2. Sample `negatives_per_seed` unlabelled customers per training seed; fit a gradient-boosting classifier
   seeds-vs-unlabelled on the as-of features (RFM, intervals, channels, categories, profile flags).
3. Validation: rank the held-out seeds among unlabelled customers not used in training; report ROC AUC and
   the recall of held-out seeds in the top K (scaled to the validation pool).
4. Refit on all seeds and score every non-seed profile; the top K is the expansion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from cdp.models.config import LookalikeConfig
from cdp.models.propensity import ModelError


@dataclass(frozen=True)
class LookalikeResult:
    scores: pd.DataFrame   # one_id, score, rank -- top K non-seed profiles, best first
    metrics: dict


def _fit(X: pd.DataFrame, y: np.ndarray, seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_depth=3, min_samples_leaf=20,
                                          random_state=seed).fit(X, y)


def expand_lookalike(features: pd.DataFrame, seed_ids: list[str], cfg: LookalikeConfig, seed: int = 0) -> LookalikeResult:
    seeds = features.index.isin(set(seed_ids))
    n_seeds = int(seeds.sum())
    if n_seeds < 5:
        raise ModelError(f"look-alike needs at least 5 seed customers with features; found {n_seeds}")
    rng = np.random.default_rng(seed)
    seed_idx = np.flatnonzero(seeds)
    other_idx = np.flatnonzero(~seeds)
    rng.shuffle(seed_idx)
    rng.shuffle(other_idx)
    # Step 1
    n_val = max(1, int(round(n_seeds * cfg.validation_share)))
    val_seeds, train_seeds = seed_idx[:n_val], seed_idx[n_val:]
    # Step 2
    n_neg = min(len(other_idx) // 2, cfg.negatives_per_seed * len(train_seeds))
    train_neg, pool = other_idx[:n_neg], other_idx[n_neg:]
    X = features.iloc[np.concatenate([train_seeds, train_neg])]
    y = np.r_[np.ones(len(train_seeds)), np.zeros(len(train_neg))]
    model = _fit(X, y, seed)
    # Step 3
    val_X = features.iloc[np.concatenate([val_seeds, pool])]
    val_y = np.r_[np.ones(len(val_seeds)), np.zeros(len(pool))]
    val_p = model.predict_proba(val_X)[:, 1]
    k_val = max(1, int(round(cfg.top_k * len(val_y) / max(1, len(other_idx)))))
    top = np.argsort(-val_p, kind="mergesort")[:k_val]
    metrics = {"seeds": n_seeds, "validation_seeds": int(len(val_seeds)),
               "validation_roc_auc": float(roc_auc_score(val_y, val_p)) if len(pool) else float("nan"),
               "validation_recall_at_k": float(val_y[top].sum() / len(val_seeds)),
               "validation_k": k_val, "random_recall_at_k": float(k_val / len(val_y))}
    # Step 4
    final = _fit(features.iloc[np.concatenate([seed_idx, other_idx[:min(len(other_idx), cfg.negatives_per_seed * n_seeds)]])],
                 np.r_[np.ones(len(seed_idx)), np.zeros(min(len(other_idx), cfg.negatives_per_seed * n_seeds))], seed)
    candidates = features.iloc[np.sort(other_idx)]
    p = final.predict_proba(candidates)[:, 1]
    order = np.argsort(-p, kind="mergesort")[: cfg.top_k]
    scores = pd.DataFrame({"one_id": candidates.index[order], "score": p[order], "rank": np.arange(1, len(order) + 1)})
    return LookalikeResult(scores, metrics)
