"""Row rules of each source, declared as data in `conf/expectations/<source>.yaml`, compiled to Great Expectations.

One YAML file per source lists its rules in order:

    rules:
      - name: order_id_present          # the id written to quarantine_rows.rule
        check: not_null                 # not_null | null | in_set | between | regex | unique | recent
        column: order_id
        reason: order_id is empty        # readable reason written to quarantine_rows.reason

`check` maps to a GX 1.x expectation: not_null -> ExpectColumnValuesToNotBeNull, null -> ExpectColumnValuesToBeNull,
in_set -> ExpectColumnValuesToBeInSet, between -> ExpectColumnValuesToBeBetween, regex ->
ExpectColumnValuesToMatchRegex, unique -> ExpectCompoundColumnsToBeUnique (always scoped to one delivered file:
`content_hash` is prepended), recent -> ExpectColumnValuesToBeBetween(min_date .. run_date + max_days_ahead).
`when` is an optional Spark SQL condition (GX `row_condition`): the rule applies only to rows where it holds,
which is how "optional, but if present it must parse" is said.

The suite is validated on the typed frame of one run (all new files of a source) in two passes: BOOLEAN_ONLY for
every rule (cheap), then only the failed rules again with result_format COMPLETE and
`unexpected_index_column_names=[content_hash, source_line]`, so every failing row is identified by GX; a
row failing several rules is quarantined once, with the first rule as `rule` and every reason in `reason`.
A table-level ExpectTableColumnsToMatchSet checks the typed frame against the silver contract (a failure is a
bug, raised, not quarantined).
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from cdp.config import read_yaml
from cdp.errors import CdpError, ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

ROW_KEY = ("content_hash", "source_line")


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    check: Literal["not_null", "null", "in_set", "between", "regex", "unique", "recent"]
    column: str | None = None
    columns: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    min: float | None = None
    max: float | None = None
    strict_min: bool = False
    strict_max: bool = False
    regex: str | None = None
    min_date: dt.date = dt.date(2000, 1, 1)
    max_days_ahead: int = 1
    when: str | None = None
    reason: str

    @model_validator(mode="after")
    def _shape(self) -> "Rule":
        if self.check == "unique":
            if not self.columns:
                raise ValueError(f"rule {self.name}: check 'unique' needs `columns: [..]`")
        elif not self.column:
            raise ValueError(f"rule {self.name}: check {self.check!r} needs `column`")
        if self.check == "in_set" and not self.values:
            raise ValueError(f"rule {self.name}: check 'in_set' needs `values: [..]`")
        if self.check == "between" and self.min is None and self.max is None:
            raise ValueError(f"rule {self.name}: check 'between' needs `min` and/or `max`")
        if self.check == "regex" and not self.regex:
            raise ValueError(f"rule {self.name}: check 'regex' needs `regex`")
        return self

    @property
    def columns_used(self) -> tuple[str, ...]:
        return self.columns if self.check == "unique" else (self.column or "",)


class SourceRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _unique_names(self) -> "SourceRules":
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique, repeated: {dupes}")
        return self


def load_rules(conf_dir: str | Path, source: str) -> SourceRules:
    """Rules of `source` from `<conf_dir>/expectations/<source>.yaml`, validated (errors name file and fix)."""
    path = Path(conf_dir) / "expectations" / f"{source}.yaml"
    if not path.exists():
        raise ConfigError(f"{path}: no rules for source {source!r}; add the file (see conf/expectations/pos.yaml)")
    try:
        return SourceRules.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def check_columns(rules: SourceRules, columns: Sequence[str], origin: str) -> None:
    """Every rule must name columns of the typed frame; say which and where otherwise."""
    known = set(columns)
    for rule in rules.rules:
        unknown = [c for c in rule.columns_used if c not in known]
        if unknown:
            raise ConfigError(f"{origin}: rule {rule.name} names unknown column(s) {unknown}; "
                              f"known columns: {sorted(c for c in known if not c.startswith('_'))}")


def compile_rule(rule: Rule, run_date: dt.date):
    """The GX 1.x expectation of one rule."""
    import great_expectations.expectations as gxe

    common: dict[str, Any] = {"meta": {"rule": rule.name}}
    if rule.when:
        common.update(row_condition=rule.when, condition_parser="spark")
    if rule.check == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=rule.column, **common)
    if rule.check == "null":
        return gxe.ExpectColumnValuesToBeNull(column=rule.column, **common)
    if rule.check == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=rule.column, value_set=list(rule.values), **common)
    if rule.check == "regex":
        return gxe.ExpectColumnValuesToMatchRegex(column=rule.column, regex=rule.regex, **common)
    if rule.check == "between":
        return gxe.ExpectColumnValuesToBeBetween(column=rule.column, min_value=rule.min, max_value=rule.max,
                                                 strict_min=rule.strict_min, strict_max=rule.strict_max, **common)
    if rule.check == "recent":
        latest = dt.datetime.combine(run_date + dt.timedelta(days=rule.max_days_ahead + 1), dt.time())
        return gxe.ExpectColumnValuesToBeBetween(column=rule.column,
                                                 min_value=dt.datetime.combine(rule.min_date, dt.time()),
                                                 max_value=latest, strict_max=True, **common)
    # a row without one of the keys (an unsplittable line, an empty order_id) is not a duplicate of another such
    # row: its missing key is the finding, reported by the not-null rules
    keys_present = " AND ".join(f"`{c}` IS NOT NULL" for c in rule.columns)
    common.update(row_condition=f"({rule.when}) AND {keys_present}" if rule.when else keys_present,
                  condition_parser="spark")
    return gxe.ExpectCompoundColumnsToBeUnique(column_list=["content_hash", *rule.columns], **common)


def build_suite(source: str, rules: SourceRules, run_date: dt.date, contract_columns: Sequence[str]):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=f"ingest_{source}")
    suite.add_expectation(gxe.ExpectTableColumnsToMatchSet(column_set=list(contract_columns), exact_match=False,
                                                           meta={"rule": "_contract_columns"}))
    for rule in rules.rules:
        suite.add_expectation(compile_rule(rule, run_date))
    return suite


def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)

    return gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False)))


class ValidationOutcome:
    """What GX said about one source's batch: per-rule failing row keys and counts."""

    def __init__(self, source: str, failures: list[tuple[str, int, int, str]], rule_counts: dict[str, int],
                 success: bool):
        self.source = source
        self.failures = failures  # (content_hash, source_line, rule_order, rule_name)
        self.rule_counts = rule_counts
        self.success = success


def validate_rows(typed: DataFrame, source: str, rules: SourceRules, run_date: dt.date,
                  contract_columns: Sequence[str]) -> ValidationOutcome:
    """Validate `typed` (cached by the caller) with the source's GX suite; returns the failing row keys.

    Only keys of failing rows come back to the driver (two small values per failing row).
    """
    check_columns(rules, typed.columns, f"conf/expectations/{source}.yaml")
    context = _context()
    asset = context.data_sources.add_spark(name=f"ingest_{source}", persist=False).add_dataframe_asset(name=source)
    batch = asset.add_batch_definition_whole_dataframe("run").get_batch(batch_parameters={"dataframe": typed})
    suite = build_suite(source, rules, run_date, contract_columns)
    # Pass 1, cheap: which rules fail at all. Pass 2, only for those: the failing rows' keys.
    first = batch.validate(suite, result_format="BOOLEAN_ONLY")
    _raise_on_errors(first, source)
    failed = [item.expectation_config for item in first.results if not item.success]
    results = []
    if failed:
        import great_expectations as gx

        retry = gx.ExpectationSuite(name=f"ingest_{source}_failures")
        for config in failed:
            retry.add_expectation_configuration(config)
        second = batch.validate(retry, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": list(ROW_KEY),
            "return_unexpected_index_query": False, "partial_unexpected_count": 0})
        _raise_on_errors(second, source)
        results = second.results
    order = {rule.name: i for i, rule in enumerate(rules.rules)}
    failures: list[tuple[str, int, int, str]] = []
    counts: dict[str, int] = {}
    for item in results:
        rule_name = _rule_name(item)
        if rule_name == "_contract_columns":
            raise CdpError(f"typed {source} frame does not carry the silver contract columns: {item.result}")
        index = item.result.get("unexpected_index_list") or []
        counts[rule_name] = int(item.result.get("unexpected_count") or 0)
        for entry in index:
            failures.append((entry["content_hash"], int(entry["source_line"]), order[rule_name], rule_name))
    log.info("GX suite ingest_%s: %d rule(s), %d failing row-rule pair(s)", source, len(rules.rules), len(failures))
    return ValidationOutcome(source, failures, counts, not failed)


def _rule_name(item) -> str:
    return (item.expectation_config.meta or {}).get("rule", item.expectation_config.type)


def _raise_on_errors(result, source: str) -> None:
    for item in result.results:
        info = item.exception_info or {}
        if info.get("raised_exception"):
            raise CdpError(f"GX could not evaluate rule {_rule_name(item)} of conf/expectations/{source}.yaml: "
                           f"{info.get('exception_message')}")


def failures_frame(spark: SparkSession, outcome: ValidationOutcome, rules: SourceRules) -> DataFrame:
    """One row per failing row: `content_hash, source_line, rule` (first failing rule) and `reason` (all)."""
    from pyspark.sql import functions as F

    reasons = {rule.name: rule.reason for rule in rules.rules}
    data = [(h, line, order, name, reasons[name]) for h, line, order, name in outcome.failures]
    df = spark.createDataFrame(data, "content_hash string, source_line int, rule_order int, rule string, "
                                     "rule_reason string")
    return (df.groupBy("content_hash", "source_line")
            .agg(F.sort_array(F.collect_set(F.struct("rule_order", "rule", "rule_reason"))).alias("_fails"))
            .select("content_hash", "source_line", F.col("_fails")[0]["rule"].alias("rule"),
                    F.array_join(F.transform("_fails", lambda f: F.concat(f["rule"], F.lit(": "), f["rule_reason"])),
                                 "; ").alias("rule_reasons")))
