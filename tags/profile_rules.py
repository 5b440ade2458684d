"""Typed rules of the profile stage, declared as data in conf/: survivorship, RFM, lifecycle thresholds.

Each file is validated at load; a wrong value raises ConfigError naming the file, the key and the fix:

    >>> rules = load_rfm_rules(Path("conf/rfm.yaml"))          # doctest: +SKIP
    >>> rules.segment_of(r_score=5, fm_score=5)                 # doctest: +SKIP
    'Champions'
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdp.config import read_yaml
from cdp.errors import ConfigError

RFM_SEGMENTS = ("Champions", "Loyal", "Potential Loyalists", "New", "Promising", "Need Attention", "At Risk",
                "Can't Lose Them", "Hibernating", "Lost")
LIFECYCLE_STAGES = ("prospect", "member_no_purchase", "new", "active", "loyal", "dormant", "churned",
                    "reactivated")
# Which sources can supply each survivable attribute (cdp.tags.profiles builds these candidates).
ATTRIBUTE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "name_masked": ("crm", "wecom", "ecommerce"),
    "gender": ("crm", "wecom"),
    "birthday": ("crm",),
    "city": ("pos", "ecommerce", "crm"),
}


class _Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AttributeRule(_Rules):
    rule: Literal["source_priority", "most_recent", "most_frequent"]
    sources: tuple[str, ...] = Field(min_length=1)
    ignore_values: tuple[str, ...] = ()


class SurvivorshipRules(_Rules):
    attributes: dict[str, AttributeRule]

    @model_validator(mode="after")
    def _known_attributes_and_sources(self) -> SurvivorshipRules:
        missing = sorted(set(ATTRIBUTE_PROVIDERS) - set(self.attributes))
        if missing:
            raise ValueError(f"attributes {missing} have no rule: add one per attribute of {sorted(ATTRIBUTE_PROVIDERS)}")
        for name, rule in self.attributes.items():
            if name not in ATTRIBUTE_PROVIDERS:
                raise ValueError(f"attributes.{name}: unknown attribute; known: {sorted(ATTRIBUTE_PROVIDERS)}")
            wrong = [s for s in rule.sources if s not in ATTRIBUTE_PROVIDERS[name]]
            if wrong:
                raise ValueError(f"attributes.{name}.sources: {wrong} cannot supply {name}; "
                                 f"use some of {list(ATTRIBUTE_PROVIDERS[name])}")
            if len(set(rule.sources)) != len(rule.sources):
                raise ValueError(f"attributes.{name}.sources: a source is listed twice")
        return self


class RfmRules(_Rules):
    window_days: int = Field(gt=0)
    grid: dict[int, tuple[str, ...]]

    @field_validator("grid")
    @classmethod
    def _full_grid_of_known_segments(cls, grid: dict[int, tuple[str, ...]]) -> dict[int, tuple[str, ...]]:
        if sorted(grid) != [1, 2, 3, 4, 5]:
            raise ValueError(f"needs exactly one row per R score 1..5, got rows {sorted(grid)}")
        for r_score, row in grid.items():
            if len(row) != 5:
                raise ValueError(f"row {r_score} must list 5 segments (FM score 1..5), got {len(row)}")
            unknown = [s for s in row if s not in RFM_SEGMENTS]
            if unknown:
                raise ValueError(f"row {r_score}: unknown segments {unknown}; use one of {list(RFM_SEGMENTS)}")
        return grid

    def segment_of(self, r_score: int, fm_score: int) -> str:
        return self.grid[r_score][fm_score - 1]


class LifecycleRules(_Rules):
    new_days: int = Field(ge=0)
    dormant_after_days: int = Field(gt=0)
    churned_after_days: int = Field(gt=0)
    reactivated_days: int = Field(ge=0)
    loyal_min_orders: int = Field(ge=2)
    loyal_window_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> LifecycleRules:
        if not self.churned_after_days > self.dormant_after_days:
            raise ValueError("churned_after_days must be greater than dormant_after_days (e.g. 180 > 90)")
        if self.new_days > self.dormant_after_days or self.reactivated_days > self.dormant_after_days:
            raise ValueError("new_days and reactivated_days must not exceed dormant_after_days")
        return self


_R = TypeVar("_R", bound=BaseModel)


def _load(path: Path, model: type[_R]) -> _R:
    raw = read_yaml(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"key {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{path}: {problems}. Fix the file (its header comment lists the allowed values).") from None


def load_survivorship_rules(path: Path) -> SurvivorshipRules:
    return _load(path, SurvivorshipRules)


def load_rfm_rules(path: Path) -> RfmRules:
    return _load(path, RfmRules)


def load_lifecycle_rules(path: Path) -> LifecycleRules:
    return _load(path, LifecycleRules)
