"""The one small engine behind tags and segments: declared conditions -> Spark column expressions.

Tags (`conf/tags/*.yaml`) and segments (`conf/segments/*.yaml`) share one condition language. A condition
is a YAML mapping with exactly one key:

    all: [cond, ...]        any: [cond, ...]        not: cond
    bought:       {category: 榴莲, min_times: 2, within_days: 180}      # behaviour over gold_order_facts
    never_bought: {sku: SKU-HTJF}                                        # = not bought
    no_purchase_within_days: 90
    attribute:    {name: has_app, eq: false}                            # a column of the base table
    membership:   {brand_id: main, is_paid_member: false}
    lifecycle:    [dormant]          rfm: [Champions, Loyal]
    model:        {name: churn, grade: high}            wecom_tag: {group_name: 偏好, tag_name: 榴莲控}
    tag:          durian_lover       (or {name: rfm_segment_tag, in: [Champions]})

Every condition compiles to a boolean Spark `Column` over the *base table*: one row per one_id carrying the
profile columns, the day's lifecycle stage and RFM values, model scores, WeCom contact tags, the tag map and
`purchases`, an array of the one_id's purchase lines. Behaviour conditions become higher-order array
functions over `purchases` (`exists`, `filter`), so a preview is one scan of a cached table with no shuffle.

Windows are relative to the run date in local dates (`paid_date`): `within_days: N` means
`run_date - N < paid_date <= run_date`, so "no purchase within 90 days" is `days since last purchase >= 90`.

    >>> cond = parse_condition({"bought": {"category": "榴莲", "min_times": 2, "within_days": 180}})
    >>> cond.describe()
    'bought category=榴莲 >= 2 times within 180 days'
"""
from __future__ import annotations

import datetime as dt
import difflib
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdp.errors import ConfigError
from cdp.tags import facts as _facts
from cdp.tags import lifecycle as _lifecycle
from cdp.tags import profiles as _profiles
from cdp.tags import rfm as _rfm

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

LIFECYCLE_STAGES = ("prospect", "member_no_purchase", "new", "active", "loyal", "dormant", "churned", "reactivated")
RFM_SEGMENTS = ("Champions", "Loyal", "Potential Loyalists", "New", "Promising", "Need Attention", "At Risk",
                "Can't Lose Them", "Hibernating", "Lost")
CHANNELS = ("pos", "miniprogram", "ecommerce")

# Columns of the base table a condition may name with `attribute:` (and a tag may take with `value:`).
# kind: string | boolean | number | date | array
ATTRIBUTES: dict[str, str] = {
    "one_id": "string", "mobile_count": "number", "member_card_count": "number", "unionid_count": "number",
    "openid_count": "number", "external_userid_count": "number", "buyer_id_count": "number",
    "name_masked": "string", "gender": "string", "birthday": "date", "city": "string",
    "is_member": "boolean", "is_paid_member": "boolean", "has_marketing_consent": "boolean", "has_app": "boolean",
    "home_store_id": "string", "home_city": "string", "wecom_guide_userids": "array", "is_wecom_added": "boolean",
    "channels": "array", "first_purchase_date": "date", "last_purchase_date": "date", "order_count": "number",
    "total_amount": "number", "order_count_pos": "number", "order_count_miniprogram": "number",
    "order_count_ecommerce": "number", "amount_pos": "number", "amount_miniprogram": "number",
    "amount_ecommerce": "number",
    # joined from gold_lifecycle / gold_rfm for the run date
    "lifecycle_stage": "string", "stage_since": "date", "rfm_segment": "string", "recency_days": "number",
    "frequency": "number", "monetary": "number", "r_score": "number", "f_score": "number", "m_score": "number",
}

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DefinitionError(ConfigError):
    """A tag or segment definition is wrong. `problems` lists (where, message-with-fix) pairs.

    The message names the file (or "<inline>"), the tag or segment, the key path and the fix, one per line.
    """

    def __init__(self, source: str, subject: str, problems: list[tuple[str, str]]):
        self.source = source
        self.subject = subject
        self.problems = list(problems)
        lines = [f"{source}: {subject}: {where}: {message}" if where else f"{source}: {subject}: {message}"
                 for where, message in self.problems]
        super().__init__("\n".join(lines))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "subject": self.subject,
                "problems": [{"where": w, "message": m} for w, m in self.problems]}


# --------------------------------------------------------------------------------------------- the conditions
class Condition:
    """A node of the condition tree; `column(run_date)` is its Spark form, `to_yaml()` its declared form."""

    def column(self, run_date: dt.date) -> Column:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_yaml(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def walk(self) -> Iterable[Condition]:
        yield self


_COMBINATIONS = {"all": (operator.and_, "AND"), "any": (operator.or_, "OR")}


@dataclass(frozen=True)
class _Combination(Condition):
    """`all:` (AND) / `any:` (OR) over a list of conditions; a subclass names its YAML key."""
    items: tuple[Condition, ...]
    key: ClassVar[str]

    def column(self, run_date: dt.date) -> Column:
        from functools import reduce

        return reduce(_COMBINATIONS[self.key][0], (c.column(run_date) for c in self.items))

    def to_yaml(self) -> Any:
        return {self.key: [c.to_yaml() for c in self.items]}

    def describe(self) -> str:
        return "(" + f" {_COMBINATIONS[self.key][1]} ".join(c.describe() for c in self.items) + ")"

    def walk(self) -> Iterable[Condition]:
        yield self
        for c in self.items:
            yield from c.walk()


@dataclass(frozen=True)
class All(_Combination):
    key = "all"


@dataclass(frozen=True)
class AnyOf(_Combination):
    key = "any"


@dataclass(frozen=True)
class Not(Condition):
    item: Condition

    def column(self, run_date: dt.date) -> Column:
        return ~self.item.column(run_date)

    def to_yaml(self) -> Any:
        return {"not": self.item.to_yaml()}

    def describe(self) -> str:
        return f"NOT {self.item.describe()}"

    def walk(self) -> Iterable[Condition]:
        yield self
        yield from self.item.walk()


StrOrList = Union[str, list[str], None]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoughtSpec(_Body):
    """Filters over purchase lines (each str or list of str) + window and thresholds."""
    sku: StrOrList = None
    category: StrOrList = None
    brand: StrOrList = None          # product brand from silver_catalog (e.g. an own-brand line)
    brand_id: StrOrList = None       # the chain brand that sold it
    channel: StrOrList = None
    store: StrOrList = None
    city: StrOrList = None           # city of the store (pos lines)
    within_days: int | None = Field(default=None, ge=1, le=3650)
    min_times: int = Field(default=1, ge=1)
    min_amount: float | None = Field(default=None, ge=0)

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: StrOrList) -> StrOrList:
        for v in _as_list(value):
            if v not in CHANNELS:
                raise ValueError(f"unknown channel {v!r}; use one of {list(CHANNELS)}")
        return value


FILTER_FIELDS = {"sku": "sku_id", "category": "category", "brand": "brand", "brand_id": "brand_id",
                 "channel": "channel", "store": "store_id", "city": "city"}


def _as_list(value: StrOrList) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@dataclass(frozen=True)
class Bought(Condition):
    spec: BoughtSpec

    def line_predicate(self, run_date: dt.date):
        """Python lambda for Spark's higher-order functions: does purchase line `p` match the filters + window?"""
        from pyspark.sql import functions as F

        spec = self.spec

        def predicate(p):
            cond = p["paid_date"] <= F.lit(run_date)
            if spec.within_days:
                cond = cond & (p["paid_date"] > F.lit(run_date - dt.timedelta(days=spec.within_days)))
            for key, column in FILTER_FIELDS.items():
                values = _as_list(getattr(spec, key))
                if values:
                    cond = cond & (p[column] == F.lit(values[0]) if len(values) == 1 else p[column].isin(values))
            return cond

        return predicate

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        purchases = F.coalesce(F.col("purchases"), F.array())
        predicate = self.line_predicate(run_date)
        result = None
        if self.spec.min_times == 1 and self.spec.min_amount is None:
            return F.exists(purchases, predicate)
        matching = F.filter(purchases, predicate)
        if self.spec.min_times > 1:
            times = F.size(F.array_distinct(F.transform(matching, lambda p: p["order_key"])))
            result = times >= self.spec.min_times
        if self.spec.min_amount is not None:
            spend = F.aggregate(matching, F.lit(0.0), lambda acc, p: acc + p["amount"])
            spent = spend >= F.lit(self.spec.min_amount)
            result = spent if result is None else result & spent
        return result

    def to_yaml(self) -> Any:
        return {"bought": self.spec.model_dump(exclude_defaults=True)}

    def describe(self) -> str:
        parts = [f"{k}={'|'.join(_as_list(getattr(self.spec, k)))}" for k in FILTER_FIELDS if getattr(self.spec, k)]
        text = "bought " + (" ".join(parts) if parts else "anything")
        if self.spec.min_times > 1:
            text += f" >= {self.spec.min_times} times"
        if self.spec.min_amount is not None:
            text += f" for >= {self.spec.min_amount:g} CNY"
        if self.spec.within_days:
            text += f" within {self.spec.within_days} days"
        return text


@dataclass(frozen=True)
class NeverBought(Condition):
    """`never_bought: {...}` (or `no_purchase_within_days: N`): NOT bought, kept as its own node for round trips."""
    bought: Bought
    sugar: str = "never_bought"

    def column(self, run_date: dt.date) -> Column:
        return ~self.bought.column(run_date)

    def to_yaml(self) -> Any:
        if self.sugar == "no_purchase_within_days":
            return {"no_purchase_within_days": self.bought.spec.within_days}
        return {"never_bought": self.bought.spec.model_dump(exclude_defaults=True)}

    def describe(self) -> str:
        return "never " + self.bought.describe()


class AttributeSpec(_Body):
    name: str
    eq: Any = None
    ne: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    gt: Any = None
    gte: Any = None
    lt: Any = None
    lte: Any = None
    is_null: bool | None = None
    contains: Any = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


_OPS = ("eq", "ne", "in_", "not_in", "gt", "gte", "lt", "lte", "is_null", "contains")


@dataclass(frozen=True)
class Attribute(Condition):
    spec: AttributeSpec

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        col = F.col(self.spec.name)
        s = self.spec
        conds = []
        if s.eq is not None:
            conds.append(col == F.lit(s.eq))
        if s.ne is not None:
            conds.append(col.isNull() | (col != F.lit(s.ne)))
        if s.in_ is not None:
            conds.append(col.isin(list(s.in_)))
        if s.not_in is not None:
            conds.append(col.isNull() | ~col.isin(list(s.not_in)))
        for op, fn in (("gt", col.__gt__), ("gte", col.__ge__), ("lt", col.__lt__), ("lte", col.__le__)):
            value = getattr(s, op)
            if value is not None:
                conds.append(fn(F.lit(value)))
        if s.is_null is not None:
            conds.append(col.isNull() if s.is_null else col.isNotNull())
        if s.contains is not None:
            if ATTRIBUTES[s.name] == "array":
                conds.append(F.array_contains(col, F.lit(s.contains)))
            else:
                conds.append(col.contains(str(s.contains)))
        result = conds[0]
        for c in conds[1:]:
            result = result & c
        return F.coalesce(result, F.lit(False))

    def to_yaml(self) -> Any:
        return {"attribute": self.spec.model_dump(by_alias=True, exclude_none=True)}

    def describe(self) -> str:
        ops = {k.rstrip("_"): v for k, v in self.spec.model_dump(exclude_none=True).items() if k != "name"}
        return f"{self.spec.name} " + " ".join(f"{k} {v!r}" for k, v in ops.items())


class MembershipSpec(_Body):
    brand_id: str | None = None
    level: StrOrList = None
    is_paid_member: bool | None = None
    marketing_consent: bool | None = None


class _SpecCondition(Condition):
    """A leaf whose declared form is `{key: spec}` (membership, model, wecom_tag): one YAML form, one description."""
    key: ClassVar[str]
    spec: _Body

    def to_yaml(self) -> Any:
        return {self.key: self.spec.model_dump(exclude_none=True)}

    def describe(self) -> str:
        return f"{self.key} " + " ".join(f"{k}={v}" for k, v in self.spec.model_dump(exclude_none=True).items())


class _ElementCondition(_SpecCondition):
    """Some struct of the base column `array_column` matches every field the spec gives: a list is "any of", a
    yes/no compares with unknown as false, text must be equal. A spec that gives nothing matches any element."""
    array_column: ClassVar[str]

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        given = self.spec.model_dump(exclude_none=True)

        def predicate(element):
            cond = F.lit(True)
            for name, value in given.items():
                if isinstance(value, bool):
                    cond = cond & (F.coalesce(element[name], F.lit(False)) == F.lit(value))
                elif isinstance(value, list):
                    cond = cond & element[name].isin(value)
                else:
                    cond = cond & (element[name] == F.lit(value))
            return cond

        return F.exists(F.coalesce(F.col(self.array_column), F.array()), predicate)


@dataclass(frozen=True)
class Membership(_ElementCondition):
    key = "membership"
    array_column = "memberships"
    spec: MembershipSpec


@dataclass(frozen=True)
class InList(Condition):
    """`lifecycle: [...]` and `rfm: [...]`: the base column is one of the values."""
    key: Literal["lifecycle", "rfm"]
    values: tuple[str, ...]

    @property
    def base_column(self) -> str:
        return {"lifecycle": "lifecycle_stage", "rfm": "rfm_segment"}[self.key]

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        return F.coalesce(F.col(self.base_column).isin(list(self.values)), F.lit(False))

    def to_yaml(self) -> Any:
        return {self.key: list(self.values)}

    def describe(self) -> str:
        return f"{self.base_column} in {list(self.values)}"


class ModelSpec(_Body):
    name: str = Field(min_length=1)
    grade: StrOrList = None
    min_score: float | None = None
    max_score: float | None = None


@dataclass(frozen=True)
class Model(_SpecCondition):
    key = "model"
    spec: ModelSpec

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        s = self.spec
        cond = F.col("model_grades")[s.name].isNotNull() | F.col("model_scores")[s.name].isNotNull()
        if s.grade is not None:
            cond = cond & F.col("model_grades")[s.name].isin(_as_list(s.grade))
        if s.min_score is not None:
            cond = cond & (F.col("model_scores")[s.name] >= F.lit(s.min_score))
        if s.max_score is not None:
            cond = cond & (F.col("model_scores")[s.name] <= F.lit(s.max_score))
        return F.coalesce(cond, F.lit(False))


class WecomTagSpec(_Body):
    group_name: str | None = None
    tag_name: str | None = None


@dataclass(frozen=True)
class WecomTag(_ElementCondition):
    key = "wecom_tag"
    array_column = "wecom_tags"
    spec: WecomTagSpec

    def describe(self) -> str:
        return f"WeCom tag {self.spec.group_name or '*'}/{self.spec.tag_name or '*'}"


class TagRefSpec(_Body):
    name: str
    value: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class TagRef(Condition):
    spec: TagRefSpec

    def column(self, run_date: dt.date) -> Column:
        from pyspark.sql import functions as F

        value = F.col("tags")[self.spec.name]
        if self.spec.value is not None:
            return F.coalesce(value == F.lit(self.spec.value), F.lit(False))
        if self.spec.in_ is not None:
            return F.coalesce(value.isin(list(self.spec.in_)), F.lit(False))
        return value.isNotNull()

    def to_yaml(self) -> Any:
        if self.spec.value is None and self.spec.in_ is None:
            return {"tag": self.spec.name}
        return {"tag": self.spec.model_dump(by_alias=True, exclude_none=True)}

    def describe(self) -> str:
        return f"tag {self.spec.name}" + (f"={self.spec.value}" if self.spec.value else "")


# ------------------------------------------------------------------------------------------------- the parser
LEAF_KEYS = ("bought", "never_bought", "no_purchase_within_days", "attribute", "membership", "lifecycle", "rfm",
             "model", "wecom_tag", "tag")
KEYS = ("all", "any", "not", *LEAF_KEYS)

_FIX = {
    "bought": "e.g. `bought: {category: 榴莲, min_times: 2, within_days: 180}`",
    "never_bought": "e.g. `never_bought: {sku: SKU-1}`",
    "attribute": "e.g. `attribute: {name: has_app, eq: false}`",
    "membership": "e.g. `membership: {brand_id: main, is_paid_member: false}`",
    "model": "e.g. `model: {name: churn, grade: high}`",
    "wecom_tag": "e.g. `wecom_tag: {group_name: 偏好, tag_name: 榴莲控}`",
    "tag": "e.g. `tag: durian_lover` or `tag: {name: rfm_tag, in: [Champions]}`",
}


@dataclass
class ParseContext:
    """What a definition may refer to: known tag names (None: do not check) and whether tags are allowed."""
    known_tags: set[str] | None = None
    allow_tags: bool = True
    known_models: dict[str, tuple[str, ...]] | None = None   # model name -> its grades (None: do not check)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, where: str, message: str) -> None:
        self.problems.append((where, message))

    def check_name(self, name: Any, what: str, where: str) -> bool:
        """Report at `where` when `name` is not a valid tag/segment name; True when it is."""
        problem = check_name(name, what)
        if problem:
            self.fail(where, problem)
        return problem is None

    def check_keys(self, raw: dict[Any, Any], allowed: tuple[str, ...], prefix: str = "") -> list[Any]:
        """Report every key of `raw` that is not in `allowed` (with the closest allowed key); return them."""
        bad = [key for key in raw if key not in allowed]
        for key in bad:
            self.fail(f"{prefix}{key}", f"unknown key {key!r}{_suggest(key, allowed)}; allowed: {', '.join(allowed)}")
        return bad


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _pydantic_problems(exc: ValidationError, where: str, key: str, allowed: Iterable[str]) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        path = f"{where}.{loc}" if loc else where
        if err["type"] == "extra_forbidden":
            bad = str(err["loc"][-1])
            msg = (f"unknown key {bad!r}{_suggest(bad, allowed)}; allowed keys: {', '.join(sorted(allowed))}. "
                   f"Fix: {_FIX.get(key, 'remove it')}")
        elif err["type"] == "missing":
            msg = f"required key missing. Fix: {_FIX.get(key, 'add it')}"
        else:
            msg = f"{err['msg']} (got {err.get('input')!r}). Fix: {_FIX.get(key, 'correct the value')}"
        problems.append((path, msg))
    return problems


def _body(model: type[BaseModel], raw: Any, where: str, key: str, ctx: ParseContext) -> BaseModel | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        ctx.fail(where, f"expected a mapping, got {type(raw).__name__} {raw!r}. Fix: {_FIX.get(key, '')}")
        return None
    allowed = [f.alias or name for name, f in model.model_fields.items()]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        ctx.problems.extend(_pydantic_problems(exc, where, key, allowed))
        return None


def _parse(raw: Any, where: str, ctx: ParseContext) -> Condition | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        got = list(raw) if isinstance(raw, dict) else type(raw).__name__
        ctx.fail(where, f"a condition is a mapping with exactly one key of {list(KEYS)}, got {got}. "
                        "Fix: wrap several conditions in `all:` or `any:`")
        return None
    key, value = next(iter(raw.items()))
    here = f"{where}.{key}" if where else str(key)
    if key in ("all", "any"):
        if not isinstance(value, list) or not value:
            ctx.fail(here, f"`{key}:` takes a non-empty list of conditions. Fix: `{key}: [cond, cond]`")
            return None
        items = [_parse(item, f"{here}[{i}]", ctx) for i, item in enumerate(value)]
        if any(i is None for i in items):
            return None
        return (All if key == "all" else AnyOf)(tuple(items))  # type: ignore[arg-type]
    if key == "not":
        item = _parse(value, here, ctx)
        return Not(item) if item else None
    if key in ("bought", "never_bought"):
        spec = _body(BoughtSpec, value, here, key, ctx)
        if spec is None:
            return None
        if key == "never_bought":
            if spec.min_times != 1 or spec.min_amount is not None:  # type: ignore[union-attr]
                ctx.fail(here, "never_bought takes no min_times/min_amount. Fix: use `not: {bought: {...}}`")
                return None
            return NeverBought(Bought(spec))  # type: ignore[arg-type]
        return Bought(spec)  # type: ignore[arg-type]
    if key == "no_purchase_within_days":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            ctx.fail(here, f"expected a number of days >= 1, got {value!r}. Fix: `no_purchase_within_days: 90`")
            return None
        return NeverBought(Bought(BoughtSpec(within_days=value)), sugar="no_purchase_within_days")
    if key == "attribute":
        return _parse_attribute(value, here, ctx)
    if key == "membership":
        spec = _body(MembershipSpec, value, here, key, ctx)
        return Membership(spec) if spec else None  # type: ignore[arg-type]
    if key in ("lifecycle", "rfm"):
        allowed = LIFECYCLE_STAGES if key == "lifecycle" else RFM_SEGMENTS
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            ctx.fail(here, f"expected a value or list of {list(allowed)}, got {value!r}")
            return None
        bad = [v for v in values if v not in allowed]
        if bad:
            ctx.fail(here, f"unknown {key} value {bad[0]!r}{_suggest(bad[0], allowed)}. Fix: use one of {list(allowed)}")
            return None
        return InList(key, tuple(values))  # type: ignore[arg-type]
    if key == "model":
        spec = _body(ModelSpec, value, here, key, ctx)
        if spec is None:
            return None
        known = ctx.known_models
        name = spec.name  # type: ignore[union-attr]
        if known is not None and name not in known:
            ctx.fail(f"{here}.name", f"unknown model {name!r}{_suggest(name, known)}. "
                                     f"Fix: use one of {sorted(known)} (conf/models.yaml)")
            return None
        grades = known.get(name, ()) if known is not None else ()
        bad = [g for g in _as_list(spec.grade) if g not in grades] if grades and spec.grade is not None else []  # type: ignore[union-attr]
        if bad:
            ctx.fail(f"{here}.grade", f"unknown grade {bad[0]!r} of model {name}{_suggest(bad[0], grades)}. "
                                      f"Fix: use one of {list(grades)} (conf/models.yaml)")
            return None
        return Model(spec)  # type: ignore[arg-type]
    if key == "wecom_tag":
        spec = _body(WecomTagSpec, value, here, key, ctx)
        if spec is None:
            return None
        if spec.group_name is None and spec.tag_name is None:  # type: ignore[union-attr]
            ctx.fail(here, f"give group_name and/or tag_name. Fix: {_FIX['wecom_tag']}")
            return None
        return WecomTag(spec)  # type: ignore[arg-type]
    if key == "tag":
        if not ctx.allow_tags:
            ctx.fail(here, "a tag's condition cannot refer to other tags (tags are computed together). "
                           "Fix: repeat the other tag's condition here, or use the tag in a segment")
            return None
        spec = _body(TagRefSpec, {"name": value} if isinstance(value, str) else value, here, key, ctx)
        if spec is None:
            return None
        name = spec.name  # type: ignore[union-attr]
        if ctx.known_tags is not None and name not in ctx.known_tags:
            ctx.fail(here, f"unknown tag {name!r}{_suggest(name, ctx.known_tags)}. "
                           "Fix: declare it in conf/tags/ or use one of " + ", ".join(sorted(ctx.known_tags)))
            return None
        return TagRef(spec)  # type: ignore[arg-type]
    ctx.fail(here, f"unknown condition {key!r}{_suggest(key, KEYS)}. Fix: use one of {list(KEYS)}")
    return None


def _parse_attribute(value: Any, here: str, ctx: ParseContext) -> Condition | None:
    spec = _body(AttributeSpec, value, here, "attribute", ctx)
    if spec is None:
        return None
    s: AttributeSpec = spec  # type: ignore[assignment]
    kind = ATTRIBUTES.get(s.name)
    if kind is None:
        ctx.fail(f"{here}.name", f"unknown attribute {s.name!r}{_suggest(s.name, ATTRIBUTES)}. "
                                 f"Fix: use a profile column: {', '.join(sorted(ATTRIBUTES))}")
        return None
    ops = [op for op in _OPS if getattr(s, op) is not None]
    if not ops:
        ctx.fail(here, "no comparison given. Fix: add one of eq, ne, in, not_in, gt, gte, lt, lte, is_null, contains")
        return None
    allowed_ops = {"boolean": {"eq", "ne", "is_null"}, "array": {"contains", "is_null"},
                   "string": {"eq", "ne", "in_", "not_in", "is_null", "contains"},
                   "number": {"eq", "ne", "in_", "not_in", "gt", "gte", "lt", "lte", "is_null"},
                   "date": {"eq", "ne", "gt", "gte", "lt", "lte", "is_null"}}[kind]
    for op in ops:
        if op not in allowed_ops:
            ctx.fail(f"{here}.{op.rstrip('_')}", f"{s.name} is a {kind} column; {op.rstrip('_')!r} does not apply. "
                     f"Fix: use one of {sorted(o.rstrip('_') for o in allowed_ops)}")
            return None
        values = getattr(s, op)
        for v in (values if isinstance(values, list) else [values]):
            if op == "is_null":
                continue
            ok = {"boolean": isinstance(v, bool), "number": isinstance(v, (int, float)) and not isinstance(v, bool),
                  "date": isinstance(v, dt.date), "string": isinstance(v, str), "array": isinstance(v, str)}[kind]
            if not ok:
                example = {"boolean": "true/false", "number": "a number", "date": "a date YYYY-MM-DD",
                           "string": "text (quote it in YAML)", "array": "text"}[kind]
                ctx.fail(f"{here}.{op.rstrip('_')}", f"{s.name} is a {kind} column, got {v!r}. Fix: give {example}")
                return None
    return Attribute(s)


def parse_condition(raw: Any, source: str = "<inline>", subject: str = "condition",
                    known_tags: set[str] | None = None, allow_tags: bool = True) -> Condition:
    """Parse and validate one condition; raise DefinitionError listing every problem with its path and fix."""
    ctx = ParseContext(known_tags=known_tags, allow_tags=allow_tags)
    cond = _parse(raw, "", ctx)
    if ctx.problems or cond is None:
        raise DefinitionError(source, subject, ctx.problems or [("", "invalid condition")])
    return cond


def collect_problems(raw: Any, where: str, ctx: ParseContext) -> Condition | None:
    """Parse `raw` at `where`, adding problems to `ctx` instead of raising (used by tag and segment loaders)."""
    return _parse(raw, where, ctx)


def check_name(name: Any, what: str) -> str | None:
    """Problem text when `name` is not a valid tag/segment name (it becomes a column/partition value)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        return (f"{what} name {name!r} must be lower-case letters, digits and _ (starting with a letter, at most "
                f"63 characters): it becomes a column name. Fix: e.g. `durian_lover`; put display text in `label:`")
    return None


# ------------------------------------------------------------------------------------------- tag definitions
class ManualSpec(_Body):
    path: str = Field(min_length=1)             # absolute, or relative to the landing folder (uploads land there)
    id_type: Literal["one_id", "member_card_no"] = "one_id"
    column: str | None = None                   # CSV header of the id column (default: id_type)
    required: bool = True                       # false: a missing file means an empty list (logged), not an error


@dataclass(frozen=True)
class TagDef:
    """One declared tag. `kind`: rule (boolean from `when:`), value (a base column or model grade),
    wecom (a WeCom contact tag), manual (an uploaded list), campaign (coupon redeemed after a segment's campaign).

    Flag tags (rule, wecom with tag_name, manual, campaign) have value "true" when present; value tags carry text.
    """
    name: str
    kind: Literal["rule", "value", "wecom", "manual", "campaign"]
    source: str = "<inline>"
    label: str | None = None
    description: str | None = None
    condition: Condition | None = None
    value_column: str | None = None
    value_model: str | None = None
    wecom: WecomTagSpec | None = None
    manual: ManualSpec | None = None

    @property
    def is_flag(self) -> bool:
        return self.kind in ("rule", "manual", "campaign") or (
            self.kind == "wecom" and self.wecom is not None and self.wecom.tag_name is not None)

    def value_expr(self, run_date: dt.date) -> Column:
        """Spark column over the base table: the tag's value as text, null when the one_id does not have it."""
        from pyspark.sql import functions as F

        if self.kind == "rule":
            assert self.condition is not None
            return F.when(F.coalesce(self.condition.column(run_date), F.lit(False)), F.lit("true"))
        if self.kind == "value":
            if self.value_model:
                return F.col("model_grades")[self.value_model].cast("string")
            return F.col(str(self.value_column)).cast("string")
        if self.kind == "wecom":
            assert self.wecom is not None
            if self.wecom.tag_name is not None:
                return F.when(WecomTag(self.wecom).column(run_date), F.lit("true"))
            names = F.array_sort(F.array_distinct(F.transform(
                F.filter(F.coalesce(F.col("wecom_tags"), F.array()),
                         lambda t: t["group_name"] == F.lit(self.wecom.group_name)),  # type: ignore[union-attr]
                lambda t: t["tag_name"])))
            return F.when(F.size(names) > 0, F.array_join(names, ","))
        # manual and campaign: lists joined into the base as `list_tags`
        return F.when(F.array_contains(F.coalesce(F.col("list_tags"), F.array().cast("array<string>")),
                                       self.name), F.lit("true"))


_TAG_KEYS = ("name", "label", "description", "when", "value", "wecom", "manual")
_TAG_FIX = ("give exactly one of `when:` (a condition), `value:` (a profile column such as lifecycle_stage, "
            "or {model_grade: churn}), `wecom: {group_name, tag_name}`, `manual: {path, id_type}`")


def parse_tag(raw: Any, source: str, index: int, known_models: dict[str, tuple[str, ...]] | None = None) -> TagDef:
    """Validate one tag mapping from a conf/tags file; raise DefinitionError naming file, tag and fix.
    known_models: model name -> grades (conf/models.yaml) that `model:` conditions are checked against."""
    subject = f"tag #{index + 1}"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        subject = f"tag {raw['name']!r}"
    ctx = ParseContext(allow_tags=False, known_models=known_models)
    if not isinstance(raw, dict):
        raise DefinitionError(source, subject, [("", f"a tag is a mapping with name and one of when/value/wecom/"
                                                      f"manual, got {raw!r}. Fix: {_TAG_FIX}")])
    ctx.check_name(raw.get("name"), "tag", "name")
    ctx.check_keys(raw, _TAG_KEYS)
    kinds = [k for k in ("when", "value", "wecom", "manual") if k in raw]
    if len(kinds) != 1:
        ctx.fail("", f"found {kinds or 'none'} of when/value/wecom/manual. Fix: {_TAG_FIX}")
        raise DefinitionError(source, subject, ctx.problems)
    kind = kinds[0]
    common = {"name": raw.get("name"), "source": source, "label": raw.get("label"),
              "description": raw.get("description")}
    tag: TagDef | None = None
    if kind == "when":
        cond = collect_problems(raw["when"], "when", ctx)
        if cond is not None:
            tag = TagDef(kind="rule", condition=cond, **common)
    elif kind == "value":
        value = raw["value"]
        if isinstance(value, str) and value in ATTRIBUTES and ATTRIBUTES[value] != "array":
            tag = TagDef(kind="value", value_column=value, **common)
        elif isinstance(value, dict) and set(value) == {"model_grade"} and isinstance(value["model_grade"], str):
            tag = TagDef(kind="value", value_model=value["model_grade"], **common)
        else:
            hint = _suggest(value, ATTRIBUTES) if isinstance(value, str) else ""
            ctx.fail("value", f"cannot take the value of {value!r}{hint}. Fix: a profile column such as "
                              "lifecycle_stage, rfm_segment, city, gender, or `{model_grade: churn}`")
    elif kind == "wecom":
        spec = _body(WecomTagSpec, raw["wecom"], "wecom", "wecom_tag", ctx)
        if spec is not None:
            if spec.group_name is None:  # type: ignore[union-attr]
                ctx.fail("wecom.group_name", "required. Fix: the WeCom tag group, e.g. `group_name: 偏好`")
            else:
                tag = TagDef(kind="wecom", wecom=spec, **common)  # type: ignore[arg-type]
    else:
        spec = _body(ManualSpec, raw["manual"], "manual", "manual", ctx)
        if spec is not None:
            tag = TagDef(kind="manual", manual=spec, **common)  # type: ignore[arg-type]
    if ctx.problems or tag is None:
        raise DefinitionError(source, subject, ctx.problems or [("", _TAG_FIX)])
    return tag


@dataclass(frozen=True)
class TagCatalog:
    """All declared tags, in declaration order (files sorted by name)."""
    tags: tuple[TagDef, ...]

    @property
    def names(self) -> set[str]:
        return {t.name for t in self.tags}

    def get(self, name: str) -> TagDef:
        for t in self.tags:
            if t.name == name:
                return t
        raise KeyError(name)

    def with_tags(self, extra: Iterable[TagDef]) -> TagCatalog:
        return TagCatalog(self.tags + tuple(extra))


def parse_tag_file(raw: Any, source: str, known_models: dict[str, tuple[str, ...]] | None = None) -> list[TagDef]:
    if not isinstance(raw, dict) or set(raw) != {"tags"} or not isinstance(raw["tags"], list):
        raise DefinitionError(source, "file", [("", "a tag file holds one key `tags:` with a list of tags. "
                                                    "Fix: `tags:\\n  - name: durian_lover\\n    when: {...}`")])
    return [parse_tag(item, source, i, known_models) for i, item in enumerate(raw["tags"])]


def load_tag_catalog(folder: str | Path, known_models: dict[str, tuple[str, ...]] | None = None) -> TagCatalog:
    """Load and validate every `*.yaml` in `folder` (conf/tags). Duplicate names across files are an error.
    known_models (`segments.known_model_grades`): check `model:` conditions against conf/models.yaml."""

    from cdp.config import read_yaml

    tags: list[TagDef] = []
    seen: dict[str, str] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        for tag in parse_tag_file(read_yaml(path), str(path), known_models):
            if tag.name in seen:
                raise DefinitionError(str(path), f"tag {tag.name!r}", [("name", f"already declared in {seen[tag.name]}. "
                                                                           "Fix: rename one of them")])
            seen[tag.name] = str(path)
            tags.append(tag)
    return TagCatalog(tuple(tags))


# ------------------------------------------------------------------------------ the base table (one row per one_id)
# Schemas of the inputs (docs/tables.md); used for absent optional inputs and in tests. The gold ones are those
# their writers conform to (stage `profiles`), so the two cannot drift apart.
PROFILES_SCHEMA = _profiles.PROFILE_SCHEMA
ORDER_FACTS_SCHEMA = _facts.FACT_SCHEMA
LIFECYCLE_SCHEMA = _lifecycle.LIFECYCLE_SCHEMA
RFM_SCHEMA = _rfm.RFM_SCHEMA
MODEL_SCORES_SCHEMA = ("one_id string, model string, score double, grade string, model_version string, "
                       "scored_date date")
CATALOG_SCHEMA = _facts.SILVER_COLUMNS["silver_catalog"]
STORES_SCHEMA = _facts.SILVER_COLUMNS["silver_stores"]
WECOM_CONTACTS_SCHEMA = (
    "external_userid string, guide_userid string, store_id string, one_id string, is_active boolean, "
    "tags array<struct<group_name:string,tag_name:string>>")
LIST_TAGS_SCHEMA = "one_id string, tag string"

PURCHASE_FIELDS = ("paid_date", "order_key", "sku_id", "category", "brand", "brand_id", "channel", "store_id",
                   "city", "amount")


def purchase_arrays(facts: DataFrame, catalog: DataFrame, stores: DataFrame) -> DataFrame:
    """One row per one_id with `purchases`: array of its purchase lines (returns left out), narrowed to the
    fields conditions filter on. `order_key` identifies the order so "bought >= N times" counts orders."""
    from pyspark.sql import functions as F

    lines = (facts.filter(~F.coalesce(F.col("is_return"), F.lit(False)) & (F.col("amount") > 0)
                          & F.col("one_id").isNotNull())
             .join(F.broadcast(catalog.select("sku_id", "brand").dropDuplicates(["sku_id"])), "sku_id", "left")
             .join(F.broadcast(stores.select("store_id", "city").dropDuplicates(["store_id"])), "store_id", "left")
             .select("one_id", F.struct(
                 F.col("paid_date"), F.xxhash64("channel", "source_record_id").alias("order_key"),
                 "sku_id", "category", "brand", "brand_id", "channel", "store_id", "city",
                 F.col("amount").cast("double").alias("amount")).alias("p")))
    return lines.groupBy("one_id").agg(F.collect_list("p").alias("purchases"))


def latest_snapshot(df: DataFrame, date_col: str, run_date: dt.date) -> DataFrame:
    """Rows of the latest `date_col` on or before `run_date` (a table with one snapshot per date)."""
    from pyspark.sql import functions as F

    upto = df.filter(F.col(date_col) <= F.lit(run_date))
    latest = upto.agg(F.max(date_col).alias("_latest"))
    return upto.join(F.broadcast(latest), F.col(date_col) == F.col("_latest")).drop("_latest")


def model_maps(scores: DataFrame, run_date: dt.date) -> DataFrame:
    """One row per one_id: `model_scores` map<model, score>, `model_grades` map<model, grade>, each model's
    latest scored_date on or before the run date."""
    from pyspark.sql import functions as F

    upto = scores.filter(F.col("scored_date") <= F.lit(run_date))
    latest = upto.groupBy(F.col("model").alias("_model")).agg(F.max("scored_date").alias("_latest"))
    current = upto.join(F.broadcast(latest), (F.col("model") == F.col("_model"))
                        & (F.col("scored_date") == F.col("_latest"))).select("one_id", "model", "score", "grade")
    return current.groupBy("one_id").agg(
        F.map_from_entries(F.collect_list(F.struct("model", "score"))).alias("model_scores"),
        F.map_from_entries(F.collect_list(F.struct("model", "grade"))).alias("model_grades"))


def wecom_tag_arrays(contacts: DataFrame) -> DataFrame:
    """One row per one_id with `wecom_tags`: distinct (group_name, tag_name) over its active WeCom contacts."""
    from pyspark.sql import functions as F

    active = contacts.filter(F.coalesce(F.col("is_active"), F.lit(True)) & F.col("one_id").isNotNull())
    return active.groupBy("one_id").agg(
        F.array_distinct(F.flatten(F.collect_list(F.coalesce(
            F.col("tags"), F.array().cast("array<struct<group_name:string,tag_name:string>>"))))).alias("wecom_tags"))


def build_base(profiles: DataFrame, facts: DataFrame, lifecycle: DataFrame, rfm: DataFrame,
               scores: DataFrame, contacts: DataFrame, catalog: DataFrame, stores: DataFrame,
               list_tags: DataFrame, run_date: dt.date) -> DataFrame:
    """The base table conditions run on: one row per one_id of gold_profiles, plus `lifecycle_stage`,
    `stage_since`, RFM columns, `model_scores`/`model_grades`, `wecom_tags`, `purchases`, `list_tags`
    (manual and campaign tags) and `as_of_date` = run date."""
    from pyspark.sql import functions as F

    stage = latest_snapshot(lifecycle, "as_of_date", run_date).select(
        "one_id", F.col("stage").alias("lifecycle_stage"), "stage_since")
    rfm_now = latest_snapshot(rfm, "as_of_date", run_date).select(
        "one_id", "rfm_segment", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score")
    lists = list_tags.groupBy("one_id").agg(F.array_sort(F.collect_set("tag")).alias("list_tags"))
    base = profiles.drop("as_of_date")
    for part in (stage, rfm_now, model_maps(scores, run_date), wecom_tag_arrays(contacts),
                 purchase_arrays(facts, catalog, stores), lists):
        base = base.join(part, "one_id", "left")
    return base.withColumn("as_of_date", F.lit(run_date))


def with_tag_map(base: DataFrame, catalog: TagCatalog, run_date: dt.date) -> DataFrame:
    """Add `tags`: map<tag, value> of the tags each one_id has on the run date (flag tags have value "true")."""
    from pyspark.sql import functions as F

    if not catalog.tags:
        return base.withColumn("tags", F.create_map().cast("map<string,string>"))
    entries = F.array(*[F.struct(F.lit(t.name).alias("key"), t.value_expr(run_date).alias("value"))
                        for t in catalog.tags])
    return base.withColumn("tags", F.map_from_entries(F.filter(entries, lambda e: e["value"].isNotNull())))


def tags_long(base: DataFrame, run_date: dt.date) -> DataFrame:
    """gold_tags_long: one row per (one_id, tag) held on the run date: one_id, tag, value, computed_date."""
    from pyspark.sql import functions as F

    return (base.select("one_id", F.explode("tags").alias("tag", "value"))
            .withColumn("computed_date", F.lit(run_date)))


def tags_wide(base: DataFrame, catalog: TagCatalog, run_date: dt.date) -> DataFrame:
    """gold_tags_wide: one row per one_id, one column per tag (boolean for flag tags, string for value tags)."""
    from pyspark.sql import functions as F

    columns = [(F.col("tags")[t.name].isNotNull() if t.is_flag else F.col("tags")[t.name]).alias(t.name)
               for t in catalog.tags]
    return base.select("one_id", *columns, F.lit(run_date).alias("computed_date"))


def tag_changes(previous: DataFrame, current: DataFrame, run_date: dt.date) -> DataFrame:
    """gold_tag_history rows for the run date: who entered (`enter`), left (`leave`) or changed value
    (`value`) of a tag between the previous long snapshot and today's. `value` is the new value (the old one
    for `leave`)."""
    from pyspark.sql import functions as F

    prev = previous.select("one_id", "tag", F.col("value").alias("prev_value"))
    cur = current.select("one_id", "tag", "value")
    joined = prev.join(cur, ["one_id", "tag"], "full_outer")
    change = (F.when(F.col("prev_value").isNull(), F.lit("enter"))
              .when(F.col("value").isNull(), F.lit("leave"))
              .when(F.col("value") != F.col("prev_value"), F.lit("value")))
    return (joined.withColumn("change", change).filter(F.col("change").isNotNull())
            .select("one_id", "tag", "change", F.coalesce("value", "prev_value").alias("value"),
                    F.lit(run_date).alias("changed_date")))


def _union_all(parts: list[DataFrame]) -> DataFrame | None:
    """The rows of every part (same columns by name), or None when there are no parts."""
    from functools import reduce

    return reduce(lambda a, b: a.unionByName(b), parts) if parts else None


def manual_list_tags(lists: list[tuple[TagDef, DataFrame]], memberships: DataFrame) -> DataFrame | None:
    """(one_id, tag) rows of manual tags. Each list is a DataFrame with one column `id` of the tag's id_type;
    member cards map to one_ids through `memberships` (one_id, member_card_no)."""
    from pyspark.sql import functions as F

    parts = []
    for tag, ids in lists:
        assert tag.manual is not None
        ids = ids.select(F.trim(F.col("id")).alias("id")).filter(F.col("id") != "").distinct()
        if tag.manual.id_type == "one_id":
            part = ids.select(F.col("id").alias("one_id"))
        else:
            part = ids.join(memberships, ids["id"] == memberships["member_card_no"]).select("one_id")
        parts.append(part.distinct().withColumn("tag", F.lit(tag.name)))
    return _union_all(parts)


@dataclass(frozen=True)
class CampaignFeedback:
    """A segment's campaign: members of `segment` who redeem a coupon within `days` after being selected
    (from `start_date` on) get the flag tag `feedback_tag`."""
    segment: str
    feedback_tag: str
    coupon_id: str | None = None
    start_date: dt.date | None = None
    days: int = 30


def campaign_feedback_tags(campaigns: list[CampaignFeedback], members: DataFrame, events: DataFrame,
                           run_date: dt.date, timezone: str) -> DataFrame | None:
    """(one_id, tag) rows: a member of the campaign's segment on run date d (gold_segment_members) who has a
    mini-program `coupon_redeem` event on a local date in [d, d + days] and on or before the run date gets the
    campaign's feedback tag. When the campaign names a `coupon_id`, only redemptions of that coupon count (events
    without a coupon id never match it); without one, any redemption counts."""
    from pyspark.sql import functions as F

    if "coupon_id" not in events.columns:  # silver written before the column was added (docs/tables.md, version 3)
        events = events.withColumn("coupon_id", F.lit(None).cast("string"))
    redeems = (events.filter((F.col("event_type") == "coupon_redeem") & F.col("one_id").isNotNull())
               .withColumn("redeem_date", F.to_date(F.from_utc_timestamp("event_at", timezone)))
               .filter(F.col("redeem_date") <= F.lit(run_date)))
    parts = []
    for c in campaigns:
        mine = redeems
        if c.coupon_id:
            mine = mine.filter(F.col("coupon_id") == F.lit(c.coupon_id.strip()))
        sel = members.filter((F.col("segment") == c.segment) & (F.col("run_date") <= F.lit(run_date)))
        if c.start_date:
            sel = sel.filter(F.col("run_date") >= F.lit(c.start_date))
        hit = sel.join(mine.select("one_id", "redeem_date"), "one_id").filter(
            (F.col("redeem_date") >= F.col("run_date"))
            & (F.col("redeem_date") <= F.date_add(F.col("run_date"), c.days)))
        parts.append(hit.select("one_id").distinct().withColumn("tag", F.lit(c.feedback_tag)))
    return _union_all(parts)
