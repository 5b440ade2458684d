"""The lake lock serialises concurrent runs (pure Python: two processes, no JVM)."""
from __future__ import annotations

import multiprocessing as mp
import time

from cdp.locking import lake_lock


def _hold(lake: str, log_path: str, tag: str, hold_s: float) -> None:
    with lake_lock(lake, poll_s=0.05):
        with open(log_path, "a") as log:
            log.write(f"{tag} start {time.monotonic()}\n")
        time.sleep(hold_s)
        with open(log_path, "a") as log:
            log.write(f"{tag} end {time.monotonic()}\n")


def test_two_runs_on_one_lake_never_overlap(tmp_path):
    log_path = tmp_path / "log.txt"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(str(tmp_path / "lake"), str(log_path), tag, 0.5)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    events = [line.split() for line in log_path.read_text().splitlines()]
    # whichever ran first, the other one started only after it ended: start, end, start, end
    assert [e[1] for e in events] == ["start", "end", "start", "end"]
    assert events[0][0] == events[1][0] and events[2][0] == events[3][0]
    assert float(events[2][2]) >= float(events[1][2])


def test_lock_is_reentrant_in_one_process(tmp_path):
    with lake_lock(str(tmp_path)):
        with lake_lock(str(tmp_path)):
            pass
