"""Typed configuration, loaded once per entry point.

The environment profile (`CDP_PROFILE`, default `local`) picks `conf/profiles/<profile>.yaml`; the landing
contract comes from `conf/sources.yaml` and table locations from `conf/tables.yaml`. Code refers to tables only
by their logical names (`settings.table_path("silver_pos_lines")`).

    >>> settings = load_settings(overrides={"lake_dir": "/tmp/lake"})   # doctest: +SKIP
    >>> settings.table_path("silver_pos_lines")                          # doctest: +SKIP
    '/tmp/lake/silver/pos_lines'
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cdp.errors import ConfigError

SOURCES = ("pos", "miniprogram", "wecom", "ecommerce", "crm")
REFERENCE_SOURCES = ("catalog", "stores")


def local_folder(path: str) -> str | None:
    """The local file-system path of a landing or lake location, or None for an object-store URI.

    >>> local_folder("data/lake"), local_folder("file:///data/lake"), local_folder("s3a://lake/cdp")
    ('data/lake', '/data/lake', None)
    """
    if path.startswith("file:"):
        return "/" + path.removeprefix("file:").lstrip("/")
    return None if "://" in path else path


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SparkSettings(_Frozen):
    master: str | None = "local[*]"
    app_name: str = "cdp"
    jars_dir: str | None = ".jars"
    packages: tuple[str, ...] = ()
    conf: dict[str, str] = {}


class SourceSettings(_Frozen):
    format: Literal["csv", "jsonl"]
    pattern: str
    encoding: Literal["utf-8", "gbk"] = "utf-8"
    required_columns: tuple[str, ...]
    brand_id: str | None = None  # default brand for single-brand sources; falls back to settings.default_brand_id


class Settings(_Frozen):
    profile: str
    landing_dir: str
    lake_dir: str
    timezone: str = "Asia/Shanghai"
    default_brand_id: str = "main"
    local_secret_file: str | None = None
    spark: SparkSettings = SparkSettings()
    sources: dict[str, SourceSettings] = {}
    tables: dict[str, str] = {}
    conf_dir: str = ""

    @field_validator("landing_dir", "lake_dir")
    @classmethod
    def _absolute(cls, folder: str) -> str:
        """A local folder given relative to the working directory becomes absolute, once: Delta's SQL
        (`ALTER TABLE delta.`path``) reads a relative path as a table name, and a Spark job may run elsewhere.
        URIs (`s3a://...`, `file:/...`) are kept as given.

        >>> Settings._absolute("/data/lake"), Settings._absolute("s3a://lake/cdp")
        ('/data/lake', 's3a://lake/cdp')
        >>> Settings._absolute("data/lake") == os.path.join(os.getcwd(), "data/lake")
        True
        """
        return os.path.abspath(folder) if local_folder(folder) == folder else folder

    def table_path(self, name: str) -> str:
        """Location of the logical table `name` under the lake folder."""
        try:
            relative = self.tables[name]
        except KeyError:
            raise ConfigError(f"unknown table {name!r}: declare it in conf/tables.yaml") from None
        return f"{self.lake_dir.rstrip('/')}/{relative}"

    def landing_path(self, source: str) -> str:
        return f"{self.landing_dir.rstrip('/')}/{source}"

    def conf_path(self, *parts: str) -> Path:
        return Path(self.conf_dir, *parts)


def default_conf_dir() -> Path:
    """`CDP_CONF_DIR` if set, else the `conf/` folder shipped with the package."""
    env = os.environ.get("CDP_CONF_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("cdp.conf")))


def read_yaml(path: Path) -> Any:
    """Read one YAML file, turning syntax errors into a ConfigError that names the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_settings(profile: str | None = None, conf_dir: str | Path | None = None,
                  overrides: dict[str, Any] | None = None) -> Settings:
    """Load the typed settings for `profile` (default: `$CDP_PROFILE` or `local`).

    `overrides` replaces top-level keys (for example `landing_dir`, `lake_dir` from the command line).
    `CDP_SPARK_CONF` (`key=value,key=value`) adds to or replaces the profile's Spark conf for one process,
    for example `CDP_SPARK_CONF=spark.driver.memory=12g` for a bigger local run.
    """
    conf = Path(conf_dir) if conf_dir else default_conf_dir()
    profile = profile or os.environ.get("CDP_PROFILE", "local")
    profile_file = conf / "profiles" / f"{profile}.yaml"
    if not profile_file.exists():
        known = sorted(p.stem for p in (conf / "profiles").glob("*.yaml"))
        raise ConfigError(f"no profile {profile!r}: expected {profile_file} (known profiles: {known})")
    raw: dict[str, Any] = dict(read_yaml(profile_file))
    raw["sources"] = read_yaml(conf / "sources.yaml").get("sources", {})
    raw["tables"] = read_yaml(conf / "tables.yaml").get("tables", {})
    raw["conf_dir"] = str(conf)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = str(value) if isinstance(value, Path) else value
    spark_env = os.environ.get("CDP_SPARK_CONF", "").strip()
    if spark_env:
        pairs = [item.split("=", 1) for item in spark_env.split(",") if item.strip()]
        if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
            raise ConfigError(f"CDP_SPARK_CONF={spark_env!r}: expected key=value pairs separated by commas")
        spark_raw = dict(raw.get("spark") or {})
        spark_raw["conf"] = {**(spark_raw.get("conf") or {}), **{k.strip(): v.strip() for k, v in pairs}}
        raw["spark"] = spark_raw
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{profile_file}: {exc}") from None
