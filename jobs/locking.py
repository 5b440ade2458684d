"""One writer at a time per lake: an exclusive lock file held for the duration of a pipeline run or stage.

Two runs started at once (a manual `cdp run` next to an Airflow run, or two Airflow runs of the same date)
would otherwise interleave their MERGEs; the second one waits for the first to finish and then finds its work
done (every stage is idempotent per run date). On a local lake folder this is an `fcntl` lock on
`<lake>/_locks/pipeline.lock`; on object stores (s3a://, abfss://) there is no lock file, and concurrent
writers rely on Delta's optimistic concurrency (a conflicting commit fails and the Airflow task retries) and
on the DAG's `max_active_runs=1`.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Iterator

from cdp.config import local_folder
from cdp.errors import CdpError

log = logging.getLogger(__name__)


class LockTimeout(CdpError):
    """Another run held the lake lock for longer than the timeout."""


@contextlib.contextmanager
def lake_lock(lake_dir: str, timeout_s: float = 6 * 3600, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the exclusive lock of `lake_dir` (no-op for object-store lakes). Re-entrant within one process."""
    local = local_folder(lake_dir)
    if local is None:
        yield
        return
    path = Path(local) / "_locks" / "pipeline.lock"
    key = str(path.resolve())
    if key in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    deadline = time.monotonic() + timeout_s
    waited = False
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log.info("another run holds %s; waiting", path)
                    waited = True
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{path} held by another run for more than {timeout_s:.0f} s") from None
                time.sleep(poll_s)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


_HELD: set[str] = set()
