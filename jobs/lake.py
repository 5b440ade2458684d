"""Reads and writes of Delta tables by logical name: the only place jobs touch storage.

Transforms stay pure (`DataFrame -> DataFrame`); a job's `run()` calls these at its edges.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from cdp.config import Settings

log = logging.getLogger(__name__)


def table_exists(spark: SparkSession, settings: Settings, name: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, settings.table_path(name))


def read_table(spark: SparkSession, settings: Settings, name: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(settings.table_path(name))


def table_version(spark: SparkSession, settings: Settings, name: str) -> int | None:
    """Current Delta version of a table (None when it does not exist yet)."""
    from delta.tables import DeltaTable

    if not table_exists(spark, settings, name):
        return None
    return int(DeltaTable.forPath(spark, settings.table_path(name)).history(1).collect()[0]["version"])


def overwrite_table(df: DataFrame, settings: Settings, name: str, partition_by: Sequence[str] = (),
                    replace_where: str | None = None) -> None:
    """Replace the whole table (or the slice `replace_where`) with `df` in one Delta commit."""
    writer = df.write.format("delta").mode("overwrite").option("overwriteSchema", "true" if not replace_where else "false")
    if replace_where:
        writer = writer.option("replaceWhere", replace_where)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(settings.table_path(name))


def append_table(df: DataFrame, settings: Settings, name: str, partition_by: Sequence[str] = ()) -> None:
    writer = df.write.format("delta").mode("append")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(settings.table_path(name))


def merge_table(spark: SparkSession, df: DataFrame, settings: Settings, name: str, keys: Sequence[str],
                update: bool = True, partition_by: Sequence[str] = (), update_condition: str | None = None) -> None:
    """Upsert `df` into table `name` on `keys` (insert-only when `update` is False); creates the table if absent.

    `update_condition` (SQL over aliases `t` target and `s` source, e.g. `s.updated_at >= t.updated_at`) limits
    which matched rows are updated. Running the same merge twice leaves the table as after one run.
    """
    from delta.tables import DeltaTable

    path = settings.table_path(name)
    if not DeltaTable.isDeltaTable(spark, path):
        writer = df.write.format("delta").mode("append")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(path)
        return
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    merge = DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), condition)
    if update:
        merge = merge.whenMatchedUpdateAll(condition=update_condition)
    merge.whenNotMatchedInsertAll().execute()


def register_tables(spark: SparkSession, settings: Settings, prefixes: Sequence[str] = ("silver_", "gold_")) -> list[str]:
    """Register existing tables as temporary views named by their logical name, for Spark SQL by name."""
    registered = []
    for name in settings.tables:
        if name.startswith(tuple(prefixes)) and table_exists(spark, settings, name):
            read_table(spark, settings, name).createOrReplaceTempView(name)
            registered.append(name)
    return registered


def add_missing_columns(spark: SparkSession, settings: Settings, name: str, schema: StructType) -> list[str]:
    """Additive schema change of an existing table: add the top-level columns of `schema` that table `name`
    lacks (nullable: earlier rows read null), so a MERGE of rows with a new contract column keeps it.
    Returns the added column names; nothing to do when the table does not exist yet."""
    if not table_exists(spark, settings, name):
        return []
    present = {c.lower() for c in read_table(spark, settings, name).columns}
    added = []
    for i, f in enumerate(schema.fields):
        if f.name.lower() in present:
            continue
        position = f"AFTER `{schema.fields[i - 1].name}`" if i else "FIRST"  # the contract's column order
        spark.sql(f"ALTER TABLE delta.`{settings.table_path(name)}` ADD COLUMNS "
                  f"(`{f.name}` {f.dataType.simpleString()} {position})")
        present.add(f.name.lower())
        added.append(f.name)
    if added:
        log.info("%s: added column(s) %s", name, ", ".join(added))
    return added


def delete_rows(spark: SparkSession, settings: Settings, name: str, condition: Column) -> None:
    """Delta DELETE of the rows of table `name` matching `condition` (a new table version; the data files stay
    for time travel until a VACUUM removes them)."""
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, settings.table_path(name)).delete(condition)
