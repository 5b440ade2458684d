"""The lake lock serialises concurrent runs (pure Python: two processes, no JVM), and erasure takes it too."""
from __future__ import annotations

import multiprocessing as mp
import time

import pytest

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


def _hold_then_release(lake: str, ready_path: str, released_path: str, hold_s: float) -> None:
    with lake_lock(lake, poll_s=0.05):
        with open(ready_path, "w") as f:
            f.write("held")
        time.sleep(hold_s)
        with open(released_path, "w") as f:  # written just before the lock is released
            f.write(str(time.time()))


@pytest.mark.spark
def test_erase_waits_for_the_lake_lock_and_fails_clearly_when_it_times_out(spark, settings, tmp_path):
    """Erasure rewrites tables with a non-atomic swap, so it must never run while a stage writes: it takes the
    same lake lock as the pipeline. Chosen behaviour: wait up to `lock_timeout_s` (CLI --lock-timeout, default
    30 min), then fail with LockTimeout naming the lock file, having touched nothing."""
    from cdp.erasure import erase
    from cdp.lake import read_table, table_exists
    from cdp.locking import LockTimeout

    ready, released = tmp_path / "ready", tmp_path / "released"
    holder = mp.get_context("fork").Process(target=_hold_then_release,
                                            args=(settings.lake_dir, str(ready), str(released), 4.0))
    holder.start()
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        with pytest.raises(LockTimeout, match=r"_locks/pipeline.lock held by another run"):
            erase(spark, settings, one_id="oid_nobody", requested_by="dpo@test", reason="test", lock_timeout_s=0.5)
        assert not table_exists(spark, settings, "erasure_receipts")  # nothing written while it was refused

        receipt = erase(spark, settings, one_id="oid_nobody", requested_by="dpo@test", reason="test",
                        lock_timeout_s=60)
        finished = time.time()
    finally:
        holder.join(timeout=60)
    assert holder.exitcode == 0
    # it waited: the holder had released the lock before the erasure could finish, and then it ran to the end
    assert released.exists() and float(released.read_text()) <= finished
    assert receipt["total_rows_removed"] == 0
    assert read_table(spark, settings, "erasure_receipts").count() == 1
