"""Role-based access: which tables a role may read and which sensitive actions it may take.

Roles are declared in `conf/roles.yaml` (marketer, data_engineer, admin). The CLI takes `--role` (or
`$CDP_ROLE`); the console maps signed-in users to the same roles. `open_query_session` exposes to Spark SQL
only the tables a role may read (as views named by their logical names) and turns off SQL on raw file paths,
so `SELECT * FROM delta.`/lake/bronze/...`` is refused.
"""
from __future__ import annotations

import fnmatch
import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, ValidationError

from cdp.config import Settings, read_yaml
from cdp.errors import CdpError, ConfigError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROLE_ENV = "CDP_ROLE"


class AccessDenied(CdpError):
    """The role may not read that table or take that action."""


class Role(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = ""
    description: str = ""
    read_tables: tuple[str, ...]
    deny_tables: tuple[str, ...] = ()
    may_lookup_mobile: bool = False
    may_export: bool = False
    may_erase: bool = False
    mask_identifiers: bool = False   # query views show card / WeCom / buyer ids masked (cdp.privacy)

    def may_read(self, table: str) -> bool:
        if any(fnmatch.fnmatchcase(table, p) for p in self.deny_tables):
            return False
        return any(fnmatch.fnmatchcase(table, p) for p in self.read_tables)


def load_roles(settings: Settings) -> dict[str, Role]:
    path = settings.conf_path("roles.yaml")
    raw = read_yaml(path).get("roles", {})
    try:
        return {name: Role.model_validate({**spec, "name": name}) for name, spec in raw.items()}
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def get_role(settings: Settings, name: str | None = None) -> Role:
    """The role called `name` (default `$CDP_ROLE`, else data_engineer)."""
    name = name or os.environ.get(ROLE_ENV) or "data_engineer"
    roles = load_roles(settings)
    if name not in roles:
        raise ConfigError(f"unknown role {name!r}; roles in conf/roles.yaml: {sorted(roles)}")
    return roles[name]


def readable_tables(settings: Settings, role: Role) -> list[str]:
    return [name for name in settings.tables if role.may_read(name)]


def require_read(role: Role, table: str) -> None:
    if not role.may_read(table):
        raise AccessDenied(f"role {role.name!r} may not read {table!r}")


def require(role: Role, action: str) -> None:
    """`action` is one of lookup_mobile, export, erase."""
    if not getattr(role, f"may_{action}"):
        raise AccessDenied(f"role {role.name!r} may not {action.replace('_', ' ')}")


def require_export(role: Role, target: str) -> None:
    """The role may export segments, and a `unionid` export (raw values from pii_values) needs a role that may
    read pii_values (admin; the console's `pii:export` permission says the same)."""
    require(role, "export")
    if target == "unionid" and not role.may_read("pii_values"):
        raise AccessDenied(f"role {role.name!r} may not export raw unionids (they come from pii_values). "
                           "Fix: export --to wecom or --to mobile_hash, or ask an admin (--role admin)")


def read_as(spark: SparkSession, settings: Settings, role: Role, table: str) -> DataFrame:
    from cdp.lake import read_table

    require_read(role, table)
    return read_table(spark, settings, table)


def open_query_session(spark: SparkSession, settings: Settings, role: Role) -> SparkSession:
    """A new Spark SQL session that sees only the role's tables (by logical name) and no raw file paths; for a
    role with `mask_identifiers` the views show member cards, WeCom and buyer ids masked."""
    from cdp.lake import read_table, table_exists
    from cdp.privacy import mask_identifier_fields

    session = spark.newSession()
    session.conf.set("spark.sql.runSQLOnFiles", "false")
    for name in readable_tables(settings, role):
        if table_exists(spark, settings, name):
            table = read_table(session, settings, name)
            (mask_identifier_fields(table) if role.mask_identifiers else table).createOrReplaceTempView(name)
    return session


# Root nodes of a parsed read-only query; anything else (DDL, DML, CACHE, SET, views over paths) is refused.
_QUERY_ROOTS = {"Project", "Aggregate", "Filter", "Sort", "GlobalLimit", "LocalLimit", "Distinct", "Union",
                "UnresolvedWith", "WithCTE", "Join", "SubqueryAlias", "Window", "Offset", "Except", "Intersect",
                "Deduplicate", "Tail", "UnresolvedHint", "Generate", "Pivot", "UnresolvedRelation"}
_FORBIDDEN_IN_TREE = ("TableValuedFunction", "Command", "Create", "Insert", "Cache")


def run_query(spark: SparkSession, settings: Settings, role: Role, sql: str) -> DataFrame:
    """Run one read-only SELECT for `role` over the tables it may read.

    Statements that write, define views or tables, or call table-valued functions are refused before they run
    (a view over a raw path would otherwise bypass the table list).
    """
    session = open_query_session(spark, settings, role)
    plan = session._jsparkSession.sessionState().sqlParser().parsePlan(sql)  # parse only; nothing runs
    tree = plan.treeString()
    root = plan.getClass().getSimpleName()
    if root not in _QUERY_ROOTS or any(word in tree for word in _FORBIDDEN_IN_TREE):
        raise AccessDenied("only read-only SELECT queries over the role's tables are allowed")
    try:
        return session.sql(sql)
    except Exception as exc:  # Spark's AnalysisException for a table the role cannot see
        if "TABLE_OR_VIEW_NOT_FOUND" in str(exc):
            raise AccessDenied(f"role {role.name!r} cannot see a table used by the query: {str(exc).splitlines()[0]}") from None
        raise
