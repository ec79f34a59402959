"""CivitaiRetry: the retry policy as data."""

import email.utils
import logging
import time

import pytest
from urllib3.util.retry import RequestHistory

from scripts.civitai_manager_libs.transport.host_gate import HostGate
from scripts.civitai_manager_libs.transport.retry_policy import CivitaiRetry, retry_after_seconds


class _Resp:
    def __init__(self, status, headers=None):
        self.status = status
        self.headers = headers or {}


def _with_history(retry, n):
    return retry.new(history=tuple(RequestHistory("GET", "/x", None, 503, None) for _ in range(n)))


def test_policy_values():
    retry = CivitaiRetry.build(4, 0.5, 60)
    assert retry.total == retry.connect == retry.read == retry.status == 4
    assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}
    assert retry.is_retry("GET", 429)
    assert retry.is_retry("HEAD", 503)
    assert retry.is_retry("GET", 502)
    assert not retry.is_retry("GET", 404)
    assert not retry.is_retry("GET", 400)
    assert not retry.is_retry("GET", 403)
    assert not retry.is_retry("POST", 503)
    assert not retry.is_retry("GET", 413, has_retry_after=True)
    assert retry.raise_on_status is False
    assert retry.retry_after_max == 60


def test_backoff_starts_at_the_first_retry_grows_and_is_capped():
    retry = CivitaiRetry.build(10, 1.0, 5)
    assert retry.get_backoff_time() == 0
    first = _with_history(retry, 1).get_backoff_time()
    assert 1.0 <= first <= 1.5
    third = _with_history(retry, 3).get_backoff_time()
    assert 4.0 <= third <= 4.5
    assert _with_history(retry, 8).get_backoff_time() == 5


def test_jitter_varies_the_backoff():
    retry = _with_history(CivitaiRetry.build(5, 1.0, 60), 2)
    values = {retry.get_backoff_time() for _ in range(20)}
    assert len(values) > 1
    assert all(2.0 <= v <= 2.5 for v in values)


def test_retry_after_seconds_and_dates():
    assert retry_after_seconds({"Retry-After": "7"}) == 7
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 27 <= retry_after_seconds({"Retry-After": future}) <= 31
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None


def test_unreadable_retry_after_is_ignored_not_raised(caplog):
    with caplog.at_level(logging.WARNING):
        assert retry_after_seconds({"Retry-After": "soon-ish"}) is None
    assert "unreadable Retry-After" in caplog.text


def test_pause_is_retry_after_capped_else_backoff():
    retry = _with_history(CivitaiRetry.build(5, 0.1, 3), 1)
    assert retry.pause_for(_Resp(429, {"Retry-After": "2"})) == 2
    assert retry.pause_for(_Resp(429, {"Retry-After": "600"})) == 3
    assert 0.1 <= retry.pause_for(_Resp(429)) <= 0.15


def test_new_keeps_gate_and_origin():
    gate = HostGate()
    retry = CivitaiRetry.build(3, 0.1, 10, gate)
    retry.origin = "http://h:1"
    copy = retry.new(total=1)
    assert copy.host_gate is gate and copy.origin == "http://h:1" and copy.total == 1


def test_sleep_on_429_closes_the_gate_for_everyone(caplog):
    gate = HostGate()
    retry = CivitaiRetry.build(3, 0.01, 10, gate)
    retry.origin = "http://h:1"
    retry = _with_history(retry, 1)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        retry.sleep(_Resp(429, {"Retry-After": "1"}))
    assert time.monotonic() - start >= 0.95
    assert "Civitai asked us to wait 1 s (HTTP 429)" in caplog.text


def test_sleep_logs_the_cap(caplog):
    gate = HostGate()
    retry = _with_history(CivitaiRetry.build(3, 0.01, 0.2, gate), 1)
    retry.origin = "http://h:1"
    with caplog.at_level(logging.WARNING):
        retry.sleep(_Resp(503, {"Retry-After": "90"}))
    assert "capped from 90 s by the http_retry_after_cap setting" in caplog.text


@pytest.mark.parametrize("status", [429, 503])
def test_sleep_without_retry_after_backs_off(status, caplog):
    gate = HostGate()
    retry = _with_history(CivitaiRetry.build(3, 0.2, 10, gate), 1)
    retry.origin = "http://h:1"
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        retry.sleep(_Resp(status))
    assert time.monotonic() - start >= 0.19
    assert f"HTTP {status} from http://h:1 without Retry-After" in caplog.text


def test_a_cancel_scope_ends_a_backoff_early():
    import threading

    from scripts.civitai_manager_libs.transport.retry_policy import RetryCancelled, cancel_scope

    retry = _with_history(CivitaiRetry.build(3, 30, 60), 1)
    event = threading.Event()
    threading.Timer(0.1, event.set).start()
    start = time.monotonic()
    with cancel_scope(event), pytest.raises(RetryCancelled):
        retry.sleep(None)
    assert time.monotonic() - start < 1


def test_retry_after_zero_falls_back_to_the_backoff(caplog):
    gate = HostGate()
    retry = _with_history(CivitaiRetry.build(3, 0.01, 10, gate), 1)
    retry.origin = "http://h:1"
    with caplog.at_level(logging.WARNING):
        retry.sleep(_Resp(429, {"Retry-After": "0"}))
    assert "backing off 0.0 s, then retry 1" in caplog.text
