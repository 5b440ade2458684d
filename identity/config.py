"""Typed One-ID rules (`conf/identity.yaml`), validated once at load with errors that name file, key and fix.

    >>> rules = load_identity_rules(settings)                      # doctest: +SKIP
    >>> [t.name for t in rules.identifier_types][:2]               # doctest: +SKIP
    ['unionid', 'member_card']
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdp.config import SOURCES, read_yaml
from cdp.errors import ConfigError

if TYPE_CHECKING:
    from cdp.config import Settings

IDENTITY_FILE = "identity.yaml"
IDENTIFIER_TYPES = ("mobile", "member_card", "unionid", "openid", "external_userid", "buyer_id")
_SCOPE_COLUMNS = {"none": None, "brand": "brand_id", "appid": "appid", "platform": "platform"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Blocklist(_Frozen):
    patterns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _patterns_compile(self) -> Blocklist:
        for pattern in self.patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({exc}); "
                                 "fix it or remove it") from None
        return self


class IdentifierType(_Frozen):
    name: Literal["mobile", "member_card", "unionid", "openid", "external_userid", "buyer_id"]
    scope: Literal["none", "brand", "appid", "platform"] = "none"
    pii_kind: Literal["mobile", "unionid", "openid"] | None = None
    max_per_one_id: int = Field(0, ge=0)
    shared_threshold: int = Field(0, ge=0)
    max_records_per_day: int = Field(0, ge=0)
    blocklist: Blocklist = Blocklist()


class SourceIdentifier(_Frozen):
    value: str
    scope: str | None = None
    array: bool = False


class IdentitySource(_Frozen):
    table: str
    seen_at: str
    identifiers: dict[str, SourceIdentifier]


class LinkRule(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: str
    left: str
    right: str
    rank: int = Field(ge=0)
    where: str | None = None


class IdentityRules(_Frozen):
    version: int = 1
    method: Literal["array", "spark", "networkx"] = "array"
    identifier_types: tuple[IdentifierType, ...]
    sources: dict[str, IdentitySource]
    link_rules: tuple[LinkRule, ...]
    fill_silver_one_id: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> IdentityRules:
        names = [t.name for t in self.identifier_types]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"identifier_types: {dupes} listed twice; list each type once, in priority order")
        for source_name, source in self.sources.items():
            if source_name not in SOURCES:
                raise ValueError(f"sources.{source_name}: unknown source; use one of {list(SOURCES)}")
            for type_name, ident in source.identifiers.items():
                if type_name not in names:
                    raise ValueError(f"sources.{source_name}.identifiers.{type_name}: not declared in "
                                     f"identifier_types; add it there or remove it here")
                scope = self.type(type_name).scope
                if scope != "none" and not ident.scope:
                    raise ValueError(f"sources.{source_name}.identifiers.{type_name}: type is scoped by {scope}; "
                                     f"add `scope: <column>` (usually {_SCOPE_COLUMNS[scope]})")
        seen_rules = set()
        for i, rule in enumerate(self.link_rules):
            where = f"link_rules[{i}] ({rule.name})"
            if rule.name in seen_rules:
                raise ValueError(f"{where}: rule name used twice; give every rule its own name")
            seen_rules.add(rule.name)
            if rule.source not in self.sources:
                raise ValueError(f"{where}.source: {rule.source!r} has no entry under `sources`; "
                                 f"use one of {sorted(self.sources)}")
            for side in ("left", "right"):
                type_name = getattr(rule, side)
                if type_name not in self.sources[rule.source].identifiers:
                    raise ValueError(f"{where}.{side}: {type_name!r} is not an identifier of source "
                                     f"{rule.source!r}; use one of {sorted(self.sources[rule.source].identifiers)}")
            if rule.left == rule.right:
                raise ValueError(f"{where}: left and right are both {rule.left!r}; a rule links two different types")
        return self

    # --- helpers -------------------------------------------------------------------------------------------
    def type(self, name: str) -> IdentifierType:
        for t in self.identifier_types:
            if t.name == name:
                return t
        raise KeyError(name)

    def priority(self, name: str) -> int:
        """0 = most trusted type."""
        return [t.name for t in self.identifier_types].index(name)

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.identifier_types)


def parse_identity_rules(raw: object, origin: str = IDENTITY_FILE) -> IdentityRules:
    """Validate already-parsed YAML; errors name `origin`, the key and how to fix it."""
    try:
        return IdentityRules.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{origin}: key {key}: {msg}" if key else f"{origin}: key {msg}")
        raise ConfigError("\n".join(problems)) from None


def load_identity_rules(settings: Settings | None = None, path: str | Path | None = None) -> IdentityRules:
    """Load `conf/identity.yaml` (or `path`) from the settings' configuration folder."""
    if path is None:
        if settings is None:
            from cdp.config import default_conf_dir

            path = default_conf_dir() / IDENTITY_FILE
        else:
            path = settings.conf_path(IDENTITY_FILE)
    path = Path(path)
    rules = parse_identity_rules(read_yaml(path), str(path))
    if settings is not None:
        for source_name, source in rules.sources.items():
            if source.table not in settings.tables:
                raise ConfigError(f"{path}: key sources.{source_name}.table: {source.table!r} is not declared in "
                                  "conf/tables.yaml; use a declared silver table name")
    return rules
