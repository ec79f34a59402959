"""DownloadEngine: bounded workers, priority order, cancellation, waiting, counters."""

from __future__ import annotations

import threading
import time

import pytest

from scripts.civitai_manager_libs.engine.pool import (
    CANCELLED,
    DONE,
    FAILED,
    PRIORITY_BULK,
    PRIORITY_SINGLE,
    QUEUED,
    DownloadEngine,
)
from scripts.civitai_manager_libs.errors import DownloadCancelledError


@pytest.fixture
def engine():
    eng = DownloadEngine(client=object(), max_workers=1)
    yield eng
    eng.shutdown(wait=True, cancel_pending=True)


def _blocker(engine):
    """Occupy the single worker until the returned event is set."""
    release = threading.Event()
    started = threading.Event()

    def block(cancel_event):
        started.set()
        release.wait(10)
        return "blocker"

    engine.submit(block, key="blocker")
    assert started.wait(5)
    return release


def test_single_priority_runs_before_bulk_and_fifo_within_priority(engine):
    release = _blocker(engine)
    order = []
    for i in range(3):
        engine.submit(lambda ev, i=i: order.append(f"bulk{i}"), PRIORITY_BULK, key=f"b{i}")
    for i in range(2):
        engine.submit(lambda ev, i=i: order.append(f"single{i}"), PRIORITY_SINGLE, key=f"s{i}")
    release.set()
    assert engine.wait(timeout=5)
    assert order == ["single0", "single1", "bulk0", "bulk1", "bulk2"]


def test_concurrency_is_bounded_and_threads_are_reused():
    eng = DownloadEngine(max_workers=3)
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    threads = set()

    def work(cancel_event):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            threads.add(threading.get_ident())
        time.sleep(0.01)
        with lock:
            state["now"] -= 1

    try:
        jobs = [eng.submit(work) for _ in range(40)]
        assert eng.wait(timeout=10)
        assert all(job.status == DONE for job in jobs)
        assert state["max"] == 3
        assert len(threads) <= 3
        assert eng.worker_count <= 3
    finally:
        eng.shutdown()


def test_a_failing_job_does_not_kill_the_worker(engine):
    def boom(cancel_event):
        raise OSError("disk on fire")

    bad = engine.submit(boom, key="bad")
    good = engine.submit(lambda ev: 42, key="good")
    assert engine.wait(timeout=5)
    assert bad.status == FAILED
    assert isinstance(bad.exception, OSError) and "disk on fire" in str(bad.exception)
    assert good.status == DONE and good.result == 42
    assert engine.worker_count == 1


def test_cancelled_queued_jobs_never_start(engine):
    release = _blocker(engine)
    ran = []
    queued = [engine.submit(lambda ev, i=i: ran.append(i), key=f"q{i}") for i in range(5)]
    assert engine.cancel(["q1", "q3"]) == 2
    release.set()
    assert engine.wait(timeout=5)
    assert ran == [0, 2, 4]
    assert [job.status for job in queued] == [DONE, CANCELLED, DONE, CANCELLED, DONE]


def test_cancel_sets_the_event_of_running_jobs(engine):
    started = threading.Event()

    def long_job(cancel_event):
        started.set()
        if cancel_event.wait(5):
            raise DownloadCancelledError("stopped by the user")
        return "finished"

    job = engine.submit(long_job, key="long")
    queued = engine.submit(lambda ev: "never", key="later")
    assert started.wait(5)
    assert engine.cancel() == 2
    assert job.wait(5)
    assert job.status == CANCELLED
    assert isinstance(job.exception, DownloadCancelledError)
    assert queued.status == CANCELLED and queued.result is None


def test_cancel_queued_leaves_running_jobs_alone(engine):
    seen_cancel = []

    def running(cancel_event):
        release.wait(10)
        seen_cancel.append(cancel_event.is_set())
        return "finished"

    release = threading.Event()
    job = engine.submit(running, key="running")
    while job.status == QUEUED:
        time.sleep(0.01)
    later = [engine.submit(lambda ev: "never", key=f"later{i}") for i in range(3)]
    assert sorted(engine.cancel_queued()) == ["later0", "later1", "later2"]
    release.set()
    assert job.wait(5)
    assert job.status == DONE and job.result == "finished"
    assert seen_cancel == [False]
    assert [j.status for j in later] == [CANCELLED] * 3


def test_a_job_that_fails_after_cancel_counts_as_cancelled(engine):
    started = threading.Event()

    def job_fn(cancel_event):
        started.set()
        cancel_event.wait(5)
        raise ConnectionError("socket closed")

    job = engine.submit(job_fn)
    assert started.wait(5)
    engine.cancel([job.key])
    assert job.wait(5)
    assert job.status == CANCELLED


def test_wait_times_out_and_waits_only_for_named_keys(engine):
    release = _blocker(engine)
    engine.submit(lambda ev: None, key="after")
    t0 = time.monotonic()
    assert engine.wait(["blocker"], timeout=0.2) is False
    assert 0.15 <= time.monotonic() - t0 < 2
    assert engine.wait(["unknown-key"], timeout=0.1) is True
    release.set()
    assert engine.wait(["after"], timeout=5) is True


def test_duplicate_active_key_is_refused_but_a_finished_key_can_be_reused(engine):
    release = _blocker(engine)
    engine.submit(lambda ev: 1, key="x")
    with pytest.raises(ValueError, match="already queued"):
        engine.submit(lambda ev: 2, key="x")
    release.set()
    assert engine.wait(timeout=5)
    again = engine.submit(lambda ev: 3, key="x")
    assert again.wait(5) and again.result == 3


def test_shutdown_runs_queued_jobs_then_refuses_new_ones():
    eng = DownloadEngine(max_workers=2)
    results = []
    for i in range(6):
        eng.submit(lambda ev, i=i: (time.sleep(0.01), results.append(i)))
    eng.shutdown(wait=True)
    assert sorted(results) == list(range(6))
    assert eng.worker_count == 0
    with pytest.raises(RuntimeError, match="shut down"):
        eng.submit(lambda ev: None)


def test_shutdown_with_cancel_pending_drops_the_queue():
    eng = DownloadEngine(max_workers=1)
    release = _blocker(eng)
    later = [eng.submit(lambda ev: None) for _ in range(3)]
    eng.shutdown(wait=False, cancel_pending=True)
    release.set()
    eng.shutdown(wait=True)
    assert all(job.status == CANCELLED for job in later)
    assert eng.get_job("blocker").status == DONE


def test_growing_the_pool_at_run_time(engine):
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    gate = threading.Event()

    def work(cancel_event):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        gate.wait(5)
        with lock:
            state["now"] -= 1

    jobs = [engine.submit(work) for _ in range(4)]
    time.sleep(0.1)
    assert engine.active_count == 1 and jobs[1].status == QUEUED
    engine.max_workers = 4
    deadline = time.monotonic() + 5
    while engine.active_count < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.active_count == 4
    gate.set()
    assert engine.wait(timeout=5)
    assert state["max"] == 4
    with pytest.raises(ValueError):
        engine.max_workers = 0


def test_forget_finished_drops_finished_jobs(engine):
    engine.submit(lambda ev: None, key="a")
    assert engine.wait(timeout=5)
    assert engine.forget_finished() == 1
    assert engine.get_job("a") is None
