"""The one SparkSession factory. Called only from entry points and test fixtures, never at import time.

Local by default (`local[*]`, Delta extensions on, session time zone UTC). The Delta jars are resolved once by
`cdp setup-jars` from Maven Central into a git-ignored folder (`.jars/`) and passed with `spark.jars`, so no
run downloads anything; on a cluster profile `spark.packages` may list Maven coordinates instead.
"""
from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from cdp.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import SparkSettings

log = logging.getLogger(__name__)

MAVEN_CENTRAL = os.environ.get("CDP_MAVEN_REPO", "https://repo1.maven.org/maven2")
DELTA_JARS = (
    ("io.delta", "delta-spark_4.1_2.13", "4.3.1"),
    ("io.delta", "delta-storage", "4.3.1"),
)


def jars_dir_path(jars_dir: str | None) -> Path | None:
    if not jars_dir:
        return None
    path = Path(jars_dir)
    if not path.is_absolute():
        # relative to the repository checkout (where setup.py lives), then to the working directory
        repo_root = Path(__file__).resolve().parent.parent
        path = repo_root / jars_dir if (repo_root / "setup.py").exists() else Path.cwd() / jars_dir
    return path


def fetch_jars(jars_dir: str | Path = ".jars") -> list[Path]:
    """Download the Delta jars from Maven Central once (verified against the published SHA-1)."""
    target = jars_dir_path(str(jars_dir)) or Path(jars_dir)
    target.mkdir(parents=True, exist_ok=True)
    fetched = []
    for group, artifact, version in DELTA_JARS:
        name = f"{artifact}-{version}.jar"
        dest = target / name
        if not dest.exists():
            url = f"{MAVEN_CENTRAL}/{group.replace('.', '/')}/{artifact}/{version}/{name}"
            data = urllib.request.urlopen(url, timeout=120).read()
            expected = urllib.request.urlopen(url + ".sha1", timeout=60).read().decode().split()[0]
            if hashlib.sha1(data).hexdigest() != expected:
                raise ConfigError(f"checksum mismatch for {url}")
            tmp = dest.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.rename(dest)
            log.info("fetched %s", name)
        fetched.append(dest)
    return fetched


def build_spark(settings: SparkSettings, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Build (or get) the SparkSession described by `settings`, with Delta Lake enabled."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(settings.app_name)
    if settings.master:
        builder = builder.master(settings.master)
    conf = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.ansi.enabled": "false",
    }
    jars_path = jars_dir_path(settings.jars_dir)
    if jars_path is not None:
        jars = [jars_path / f"{a}-{v}.jar" for _, a, v in DELTA_JARS]
        missing = [j.name for j in jars if not j.exists()]
        if missing:
            raise ConfigError(f"Delta jars {missing} not found in {jars_path}: run `cdp setup-jars` (or `make setup`)")
        conf["spark.jars"] = ",".join(str(j) for j in jars)
    elif settings.packages:
        conf["spark.jars.packages"] = ",".join(settings.packages)
    conf.update(settings.conf)
    conf.update(extra_conf or {})
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
