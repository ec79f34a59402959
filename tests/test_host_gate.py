"""HostGate: the shared per-host pause, and origin keys."""

import threading
import time

import pytest

from scripts.civitai_manager_libs.transport.host_gate import HostGate, origin_of


@pytest.mark.parametrize(
    "a, b",
    [
        ("https://Civitai.com/api/v1/images?x=1", "https://civitai.com:443/other"),
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/b?token=1"),
        ("http://example.com/", "http://example.com:80"),
    ],
)
def test_same_origin(a, b):
    assert origin_of(a) == origin_of(b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("https://civitai.com/", "http://civitai.com/"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8081/"),
        ("https://civitai.com/", "https://image.civitai.com/"),
    ],
)
def test_different_origin(a, b):
    assert origin_of(a) != origin_of(b)


def test_origin_has_no_path_or_query():
    assert origin_of("https://civitai.com/api/v1/images?token=abc") == "https://civitai.com:443"


def test_open_gate_does_not_block():
    gate = HostGate()
    start = time.monotonic()
    assert gate.wait("http://h:1") is True
    assert time.monotonic() - start < 1  # nothing to wait for (loose: a loaded machine is slow)
    assert gate.remaining("http://h:1") == 0


def test_wait_blocks_until_the_pause_expires_and_only_for_that_host():
    gate = HostGate()
    gate.pause("http://h:1", 0.3)
    start = time.monotonic()
    assert gate.wait("http://other:1") is True
    assert time.monotonic() - start < 0.29  # had it waited for h's pause it would be >= 0.29
    assert gate.wait("http://h:1") is True
    assert time.monotonic() - start >= 0.29
    assert gate.remaining("http://h:1") == 0


def test_a_later_deadline_wins_and_a_shorter_pause_does_not_shorten_it():
    gate = HostGate()
    gate.pause("http://h:1", 0.4)
    assert gate.pause("http://h:1", 0.05) > 0.3
    assert gate.remaining("http://h:1") > 0.3
    gate.pause("http://h:1", 0.8)
    assert gate.remaining("http://h:1") > 0.7


def test_every_thread_waits_for_the_pause():
    gate = HostGate()
    gate.pause("http://h:1", 0.3)
    released = []
    start = time.monotonic()

    def worker():
        gate.wait("http://h:1")
        released.append(time.monotonic() - start)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(released) == 6
    assert min(released) >= 0.29


def test_a_pause_added_while_waiting_extends_the_wait():
    gate = HostGate()
    gate.pause("http://h:1", 0.6)
    # The second pause comes while the first still runs, even when a loaded machine fires the timer
    # late; without the extension the wait would end at 0.6 s.
    start = time.monotonic()
    threading.Timer(0.05, gate.pause, args=("http://h:1", 0.9)).start()
    gate.wait("http://h:1")
    assert time.monotonic() - start >= 0.9


def test_cancel_event_ends_the_wait_early():
    gate = HostGate()
    gate.pause("http://h:1", 5)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    start = time.monotonic()
    assert gate.wait("http://h:1", cancel) is False
    assert time.monotonic() - start < 1


def test_clear_opens_the_gate():
    gate = HostGate()
    gate.pause("http://h:1", 5)
    gate.pause("http://h:2", 5)
    gate.clear("http://h:1")
    assert gate.remaining("http://h:1") == 0
    assert gate.remaining("http://h:2") > 4
    gate.clear()
    assert gate.remaining("http://h:2") == 0
