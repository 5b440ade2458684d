"""Typed settings of the models, loaded from `conf/models.yaml` (errors name the file, the key and the fix)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError, field_validator

from cdp.config import Settings, read_yaml
from cdp.errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_bands(bands: dict[str, float]) -> dict[str, float]:
    if not bands:
        raise ValueError("declare at least one band, e.g. {high: 0.7, medium: 0.4, low: 0.0}")
    if any(not 0.0 <= v <= 1.0 for v in bands.values()):
        raise ValueError("band lower bounds must be probabilities/quantiles in [0, 1]")
    if min(bands.values()) != 0.0:
        raise ValueError("the lowest band must start at 0.0 so every score gets a grade")
    return dict(sorted(bands.items(), key=lambda kv: -kv[1]))


class TaskConfig(_Frozen):
    horizon_days: int
    grades: dict[str, float]

    _bands = field_validator("grades")(classmethod(lambda cls, v: _check_bands(v)))


class TrainingConfig(_Frozen):
    as_of_count: int = 4
    as_of_step_days: int = 30
    min_history_days: int = 60
    ensemble_size: int = 1
    max_iter: int = 300
    learning_rate: float = 0.03
    max_depth: int = 3
    min_samples_leaf: int = 100
    max_features: float = 0.5
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    refit_all: bool = True
    # Rows per training as-of date: a larger snapshot is sampled (seeded, stratified by label) down to this.
    # None = no cap. Training cost grows with rows; 100k per date is far more than depth-3 trees need.
    max_rows_per_as_of: PositiveInt | None = 100_000

    @field_validator("max_rows_per_as_of")
    @classmethod
    def _enough_rows(cls, v: int | None) -> int | None:
        if v is not None and v < 1000:
            raise ValueError("keep at least 1000 rows per as-of date (or null for no cap)")
        return v


class TierConfig(_Frozen):
    tiers: dict[str, float]
    horizon_days: int = 365
    dormant_after_days: int = 90

    _bands = field_validator("tiers")(classmethod(lambda cls, v: _check_bands(v)))


class ReplenishmentConfig(_Frozen):
    min_category_repeaters: int = 20
    max_cycle_days: int = 180
    prior_weight: float = 2.0


class LookalikeConfig(_Frozen):
    top_k: int = 1000
    negatives_per_seed: int = 5
    validation_share: float = 0.2


class ModelsConfig(_Frozen):
    seed: int = 0
    churn: TaskConfig = TaskConfig(horizon_days=90, grades={"high": 0.7, "medium": 0.4, "low": 0.0})
    repurchase: TaskConfig = TaskConfig(horizon_days=30, grades={"high": 0.5, "medium": 0.2, "low": 0.0})
    training: TrainingConfig = TrainingConfig()
    clv: TierConfig = TierConfig(tiers={"high": 0.8, "medium": 0.5, "low": 0.0})
    winback: TierConfig = TierConfig(tiers={"high": 0.8, "medium": 0.5, "low": 0.0})
    replenishment: ReplenishmentConfig = ReplenishmentConfig()
    lookalike: LookalikeConfig = LookalikeConfig()

    def grade_names(self) -> dict[str, tuple[str, ...]]:
        """The models the models stage scores (gold_model_scores.model) and the grades each can give."""
        return {"churn": tuple(self.churn.grades), "repurchase": tuple(self.repurchase.grades),
                "clv": tuple(self.clv.tiers), "winback": tuple(self.winback.tiers)}


def load_models_config(source: Settings | Path | str | None = None) -> ModelsConfig:
    """Read `models.yaml` from the settings' conf folder (or a given file); defaults when absent."""
    if isinstance(source, Settings):
        path = source.conf_path("models.yaml")
    elif source is None:
        from cdp.config import default_conf_dir

        path = default_conf_dir() / "models.yaml"
    else:
        path = Path(source)
    if not path.exists():
        return ModelsConfig()
    try:
        return ModelsConfig.model_validate(read_yaml(path))
    except ValidationError as exc:
        problems = "; ".join(f"key {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems} (fix the key in {path.name}; see docs/models.md)") from None


def grade(scores, bands: dict[str, float]):
    """Name of the first band (highest lower bound first) that each score reaches.

    >>> list(grade([0.9, 0.5, 0.1], {"high": 0.7, "medium": 0.4, "low": 0.0}))
    ['high', 'medium', 'low']
    """
    import numpy as np

    scores = np.asarray(scores, dtype=float)
    ordered = sorted(bands.items(), key=lambda kv: -kv[1])
    out = np.full(scores.shape, ordered[-1][0], dtype=object)
    assigned = np.zeros(scores.shape, dtype=bool)
    for name, lower in ordered:
        hit = ~assigned & (scores >= lower)
        out[hit] = name
        assigned |= hit
    return out
