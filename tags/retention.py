"""How long the tags and segments stages keep their dated partitions: `retention_days` in conf/tags.yaml.

`gold_tags_long` holds one full snapshot per computed date (every one_id x every tag it has), so it grows by the
whole tag population each day; `gold_segment_members` likewise holds every segment's members per run date;
`gold_tag_history` holds only the changes (enter / leave / value) and is the audit trail. The defaults keep the
last 400 daily snapshots of both (a year plus the same season a year ago) and the history forever (`null`). A
retention of N days keeps the dates in `(run_date - N, run_date]`, the window rule of `within_days`
(docs/segments.md); older partitions are deleted with Delta DELETE after the run's own
partition is written, so the run date's partition, and with it the next run's "previous snapshot", is always
kept. DELETE only removes the rows from the table's current version: the files stay for time travel until a
VACUUM (a separate maintenance task, with Delta's own retention period) removes them.

    >>> conf = TagsConf()
    >>> days = conf.retention_days
    >>> days.gold_tags_long, days.gold_tag_history, days.gold_segment_members
    (400, None, 400)
    >>> retention_cutoffs(conf, dt.date(2026, 11, 27))
    {'gold_tags_long': ('computed_date', datetime.date(2025, 10, 24))}
"""
from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdp.config import read_yaml
from cdp.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

# The dated partition column of each table the retention applies to.
PARTITION_COLUMNS = {"gold_tags_long": "computed_date", "gold_tag_history": "changed_date",
                     "gold_segment_members": "run_date"}
TAG_TABLES = ("gold_tags_long", "gold_tag_history")    # cleaned by `cdp tags build`
SEGMENT_TABLES = ("gold_segment_members",)             # cleaned by `cdp segment run`


class _Conf(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetentionDays(_Conf):
    """Days of dated partitions to keep per table; None keeps every partition."""
    gold_tags_long: int | None = Field(default=400, ge=1, le=36500)
    gold_tag_history: int | None = Field(default=None, ge=1, le=36500)
    gold_segment_members: int | None = Field(default=400, ge=1, le=36500)


class TagsConf(_Conf):
    retention_days: RetentionDays = RetentionDays()


def load_tags_conf(path: Path) -> TagsConf:
    """Validate conf/tags.yaml; a missing file means the defaults. Errors name the file, the key and the fix."""
    if not path.exists():
        log.info("%s not found: tag tables keep their default retention", path)
        return TagsConf()
    try:
        return TagsConf.model_validate(read_yaml(path))
    except ValidationError as exc:
        problems = "; ".join(f"key {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
                             for err in exc.errors())
        raise ConfigError(f"{path}: {problems}. Fix: `retention_days: "
                          "{gold_tags_long: 400, gold_tag_history: null, gold_segment_members: 400}` "
                          "(whole days >= 1, or null to keep every partition)") from None


def retention_cutoffs(conf: TagsConf, run_date: dt.date,
                      tables: tuple[str, ...] = TAG_TABLES) -> dict[str, tuple[str, dt.date]]:
    """`{table: (partition column, oldest date kept)}` for each of `tables` with a retention: partitions dated
    before the oldest date kept (`run_date - days + 1`) are deleted."""
    cutoffs = {}
    for table in tables:
        column = PARTITION_COLUMNS[table]
        days = getattr(conf.retention_days, table)
        if days is not None:
            cutoffs[table] = (column, run_date - dt.timedelta(days=days - 1))
    return cutoffs


def apply_retention(spark: SparkSession, settings: Settings, run_date: dt.date,
                    tables: tuple[str, ...] = TAG_TABLES) -> dict[str, str]:
    """Delete the dated partitions of `tables` older than their retention (conf/tags.yaml); returns
    `{table: oldest date kept}` for the tables that have one. Called last by the stage that writes the tables,
    so the partition it just wrote (the next run's previous snapshot) is never older than the retention."""
    from pyspark.sql import functions as F

    from cdp.lake import delete_rows, read_table, table_exists

    kept = {}
    for name, (column, keep_from) in retention_cutoffs(load_tags_conf(settings.conf_path("tags.yaml")),
                                                       run_date, tables).items():
        kept[name] = keep_from.isoformat()
        if not table_exists(spark, settings, name):
            continue
        older = F.col(column) < F.lit(keep_from)
        # a partition filter: finding no older partition reads the Delta log only, and then nothing is committed
        if read_table(spark, settings, name).where(older).limit(1).count():
            delete_rows(spark, settings, name, older)
            log.info("%s: deleted the partitions before %s (retention)", name, keep_from)
    return kept
