"""CivitaiHttpClient against the real local fake Civitai (and requests-mock for narrow cases)."""

import hashlib
import logging
import os
import threading
import time

import pytest
import requests

from scripts.civitai_manager_libs import http_client, setting
from scripts.civitai_manager_libs.errors import (
    AuthError,
    BadRequestError,
    DiskSpaceError,
    DownloadCancelledError,
    DownloadError,
    IncompleteDownloadError,
    InvalidResponseError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnexpectedContentError,
)
from scripts.civitai_manager_libs.transport.host_gate import origin_of
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient, get_http_client

KEY = "sk-test-0123456789abcdef"
MOCK_BASE = "https://civitai.invalid"


def _client(fake, **kw):
    kw.setdefault("base_url", fake.base_url)
    kw.setdefault("api_key", "")
    kw.setdefault("backoff_factor", 0.05)
    kw.setdefault("timeout", (2, 5))
    return CivitaiHttpClient(**kw)


def _image_urls(fake, n=8):
    body = _client(fake, max_retries=0).get_json("/api/v1/images", {"limit": n, "nsfw": "X"})
    urls = [item["url"] for item in body["items"] if item.get("type", "image") == "image"]
    assert len(urls) >= min(n, 4), "the fake dataset should list images"
    fake.reset()
    return urls


def _path_of(url):
    return requests.utils.urlparse(url).path


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _reference(fake, url, tmp_path):
    """The bytes the image host serves for ``url`` (fetched with a plain client, log reset)."""
    data = requests.get(url, timeout=5).content
    fake.reset()
    return data


# -- get_json: success, joining, typed errors ------------------------------------------------


def test_get_json_joins_paths_and_absolute_urls(fake_civitai):
    client = _client(fake_civitai)
    by_path = client.get_json("/api/v1/images", {"limit": 2})
    by_rel = client.get_json("api/v1/images", {"limit": 2})
    by_abs = client.get_json(fake_civitai.base_url + "/api/v1/images", {"limit": 2})
    assert by_path["items"] and by_path == by_rel == by_abs
    paths = [r.path for r in fake_civitai.api_requests()]
    assert paths == ["/api/v1/images"] * 3


def test_api_url_keeps_a_base_path_prefix():
    client = CivitaiHttpClient(base_url="https://proxy.example/civitai/", api_key="")
    assert client.api_url("/api/v1/images") == "https://proxy.example/civitai/api/v1/images"
    assert client.api_url("https://x.example/y") == "https://x.example/y"


def test_404_is_not_retried_and_carries_the_server_text(fake_civitai):
    client = _client(fake_civitai, max_retries=3)
    with pytest.raises(NotFoundError) as info:
        client.get_json("/api/v1/models/987654321")
    err = info.value
    assert err.status == 404
    assert "987654321" in err.url
    assert err.server_message and err.server_message in str(err)
    assert len(fake_civitai.api_requests()) == 1


def test_not_found_fault_is_not_retried(fake_civitai):
    fake_civitai.faults.not_found("/api/v1/images")
    client = _client(fake_civitai, max_retries=4)
    with pytest.raises(NotFoundError):
        client.get_json("/api/v1/images")
    assert [r.status for r in fake_civitai.api_requests()] == [404]


def test_400_is_a_bad_request_with_the_server_error(fake_civitai):
    fake_civitai.faults.queue_status(
        "/api/v1/images", 400, body={"error": "limit: Number must be less than 200"}
    )
    with pytest.raises(BadRequestError) as info:
        _client(fake_civitai, max_retries=3).get_json("/api/v1/images", {"limit": 999})
    assert info.value.server_message == "limit: Number must be less than 200"
    assert "Number must be less than 200" in str(info.value)
    assert len(fake_civitai.api_requests()) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_say_what_to_do(fake_civitai, status):
    fake_civitai.faults.queue_status("/api/v1/images", status, body={"error": "Unauthorized"})
    with pytest.raises(AuthError) as info:
        _client(fake_civitai).get_json("/api/v1/images")
    assert "civitai_api_key" in str(info.value)
    assert len(fake_civitai.api_requests()) == 1


def test_429_with_retry_after_is_retried_after_the_wait(fake_civitai, caplog):
    fake_civitai.faults.queue_status("/api/v1/images", 429, headers={"Retry-After": "1"}, count=1)
    with caplog.at_level(logging.WARNING):
        body = _client(fake_civitai, max_retries=3).get_json("/api/v1/images", {"limit": 1})
    assert body["items"]
    log = fake_civitai.api_requests()
    assert [r.status for r in log] == [429, 200]
    assert log[1].time - log[0].time >= 0.95
    assert "Civitai asked us to wait 1 s (HTTP 429)" in caplog.text


def test_5xx_without_retry_after_backs_off_exponentially(fake_civitai):
    fake_civitai.faults.queue_status("/api/v1/images", 503, count=2)
    client = _client(fake_civitai, max_retries=3, backoff_factor=0.2)
    assert client.get_json("/api/v1/images", {"limit": 1})["items"]
    log = fake_civitai.api_requests()
    assert [r.status for r in log] == [503, 503, 200]
    assert log[1].time - log[0].time >= 0.19
    assert log[2].time - log[1].time >= 0.39


def test_server_error_after_every_retry(fake_civitai):
    fake_civitai.faults.queue_status(
        "/api/v1/images",
        500,
        body={"error": "canceling statement due to statement timeout"},
        count=10,
    )
    with pytest.raises(ServerError) as info:
        _client(fake_civitai, max_retries=2, backoff_factor=0.01).get_json("/api/v1/images")
    assert info.value.status == 500
    assert "statement timeout" in str(info.value)
    assert len(fake_civitai.api_requests()) == 3


def test_rate_limited_after_every_retry(fake_civitai):
    fake_civitai.faults.queue_status("/api/v1/images", 429, headers={"Retry-After": "0"}, count=10)
    with pytest.raises(RateLimitedError) as info:
        _client(fake_civitai, max_retries=1, backoff_factor=0.01).get_json("/api/v1/images")
    assert info.value.status == 429
    assert len(fake_civitai.api_requests()) == 2


def test_html_with_200_is_an_invalid_response(fake_civitai):
    fake_civitai.faults.html_instead("/api/v1/images", count=1)
    with pytest.raises(InvalidResponseError, match="HTML page"):
        _client(fake_civitai).get_json("/api/v1/images")


def test_read_timeout_is_a_network_error_after_retries(fake_civitai):
    fake_civitai.faults.delay("/api/v1/images", 1.5)
    client = _client(fake_civitai, max_retries=1, timeout=(2, 0.3), backoff_factor=0.01)
    start = time.monotonic()
    with pytest.raises(NetworkError) as info:
        client.get_json("/api/v1/images")
    assert time.monotonic() - start < 1.4
    assert "http_timeout" in str(info.value)
    # The fake records a stalled request once its stall ends.
    deadline = time.monotonic() + 5
    while len(fake_civitai.api_requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_civitai.api_requests()) == 2


def test_connection_refused_is_a_network_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = CivitaiHttpClient(base_url=f"http://127.0.0.1:{port}", api_key="", max_retries=1)
    client.retry.backoff_factor = 0.01
    with pytest.raises(NetworkError, match="connection was refused"):
        client.get_json("/api/v1/images")


def test_json_that_is_not_an_object_is_invalid(requests_mock):
    requests_mock.get(f"{MOCK_BASE}/api/v1/images", json=[1, 2])
    with pytest.raises(InvalidResponseError, match="list"):
        CivitaiHttpClient(base_url=MOCK_BASE, api_key="", max_retries=0).get_json("/api/v1/images")


def test_truncated_json_is_invalid(requests_mock):
    requests_mock.get(
        f"{MOCK_BASE}/api/v1/images",
        text='{"items": [',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(InvalidResponseError, match="not JSON"):
        CivitaiHttpClient(base_url=MOCK_BASE, api_key="", max_retries=0).get_json("/api/v1/images")


def test_auth_error_hint_differs_with_a_key(requests_mock):
    requests_mock.get(f"{MOCK_BASE}/api/v1/images", status_code=401, json={"error": "bad key"})
    client = CivitaiHttpClient(base_url=MOCK_BASE, api_key=KEY, max_retries=0)
    with pytest.raises(AuthError, match="rejected") as info:
        client.get_json("/api/v1/images")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


# -- the host gate -----------------------------------------------------------------------------


def test_429_pauses_every_thread_for_that_host_only(fake_civitai, tmp_path):
    urls = _image_urls(fake_civitai, 8)
    first_path = _path_of(urls[0])
    fake_civitai.faults.queue_status(first_path, 429, headers={"Retry-After": "1"}, count=1)
    client = _client(fake_civitai, max_retries=3, pool_size=8)
    image_origin = origin_of(fake_civitai.image_base_url)
    results, errors = {}, []

    def fetch(i, url, target):
        # Odd threads use the plain streaming call: the gate must hold on the Session itself,
        # not only inside fetch_to_file.
        try:
            if i % 2:
                with client.get_stream_response(url) as resp:
                    results[i] = len(resp.content)
            else:
                results[i] = client.fetch_to_file(url, target).size
        except Exception as exc:  # collected for the assertion below
            errors.append(exc)

    first = threading.Thread(target=fetch, args=(0, urls[0], str(tmp_path / "0")))
    first.start()
    deadline = time.monotonic() + 5
    while client.host_gate.remaining(image_origin) == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert client.host_gate.remaining(image_origin) > 0.5
    others = [
        threading.Thread(target=fetch, args=(i, url, str(tmp_path / str(i))))
        for i, url in enumerate(urls[1:8], start=1)
    ]
    for t in others:
        t.start()
    # The API host is not paused.
    api_start = time.monotonic()
    client.get_json("/api/v1/images", {"limit": 1})
    assert time.monotonic() - api_start < 0.5
    for t in [first] + others:
        t.join(10)
    assert not errors
    assert len(results) == len(urls[:8]) and all(size > 0 for size in results.values())
    log = fake_civitai.image_requests()
    throttled = [r for r in log if r.status == 429]
    assert len(throttled) == 1
    after = [r for r in log if r.time > throttled[0].time]
    assert len(after) == len(urls[:8])
    assert min(r.time for r in after) - throttled[0].time >= 0.95


# -- fetch_to_file ---------------------------------------------------------------------------


def test_fetch_writes_the_exact_bytes_and_reports_progress(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    expected = _reference(fake_civitai, url, tmp_path)
    seen = []
    target = str(tmp_path / "a" / "b" / "1.jpeg")
    result = _client(fake_civitai).fetch_to_file(
        url, target, progress_callback=lambda done, total: seen.append((done, total))
    )
    assert result.path == target
    assert open(target, "rb").read() == expected
    assert result.size == len(expected) and result.sha256 == _sha(expected)
    assert result.resumed is False
    assert not os.path.exists(target + ".part")
    assert seen[-1] == (len(expected), len(expected))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert fake_civitai.image_requests()[0].headers.get("Range") is None


def test_fix_extension_uses_the_real_type(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(300_000, kind="mp4")
    result = _client(fake_civitai).fetch_to_file(
        url, str(tmp_path / "clip.jpeg"), fix_extension=True
    )
    assert result.path == str(tmp_path / "clip.mp4")
    assert result.content_type == "video/mp4"
    assert os.path.getsize(result.path) == 300_000
    assert not os.path.exists(tmp_path / "clip.jpeg")


def test_fix_extension_appends_to_a_name_without_a_media_suffix(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    result = _client(fake_civitai).fetch_to_file(url, str(tmp_path / "v1.5"), fix_extension=True)
    assert os.path.basename(result.path).startswith("v1.5.")
    assert result.path.endswith((".jpeg", ".png", ".webp", ".gif"))


def test_resume_with_206_sends_range_and_hashes_the_whole_file(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(400_000, kind="mp4")
    expected = _reference(fake_civitai, url, tmp_path)
    target = str(tmp_path / "v.mp4")
    with open(target + ".part", "wb") as part:
        part.write(expected[:150_000])
    result = _client(fake_civitai).fetch_to_file(url, target)
    log = fake_civitai.image_requests()
    assert len(log) == 1
    assert log[0].headers.get("Range") == "bytes=150000-"
    assert log[0].status == 206
    assert result.resumed is True
    assert result.sha256 == _sha(expected) and result.size == len(expected)
    assert open(target, "rb").read() == expected


def test_restart_from_zero_when_the_server_ignores_range(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(200_000, kind="mp4")
    expected = _reference(fake_civitai, url, tmp_path)
    fake_civitai.faults.ignore_range = True
    target = str(tmp_path / "v.mp4")
    with open(target + ".part", "wb") as part:
        part.write(b"\x00" * 50_000)  # a stale prefix that must not survive
    result = _client(fake_civitai).fetch_to_file(url, target)
    log = fake_civitai.image_requests()
    assert log[0].headers.get("Range") == "bytes=50000-" and log[0].status == 200
    assert result.resumed is False
    assert open(target, "rb").read() == expected
    assert result.sha256 == _sha(expected)


def test_a_part_file_that_is_not_media_is_discarded(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(100_000, kind="mp4")
    expected = _reference(fake_civitai, url, tmp_path)
    target = str(tmp_path / "v.mp4")
    junk = b"<!DOCTYPE html><html><body>an error page saved by another tool</body></html>"
    with open(target + ".part", "wb") as part:
        part.write(junk)
    result = _client(fake_civitai, backoff_factor=0).fetch_to_file(url, target)
    log = fake_civitai.image_requests()
    assert [r.headers.get("Range") for r in log] == [f"bytes={len(junk)}-", None]
    assert open(target, "rb").read() == expected and result.resumed is False


def test_a_complete_part_is_finished_on_416(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(80_000, kind="mp4")
    expected = _reference(fake_civitai, url, tmp_path)
    target = str(tmp_path / "v.mp4")
    with open(target + ".part", "wb") as part:
        part.write(expected)
    result = _client(fake_civitai).fetch_to_file(url, target)
    assert [r.status for r in fake_civitai.image_requests()] == [416]
    assert open(target, "rb").read() == expected and result.sha256 == _sha(expected)
    assert not os.path.exists(target + ".part")


def test_a_part_longer_than_the_file_restarts(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(80_000, kind="mp4")
    expected = _reference(fake_civitai, url, tmp_path)
    target = str(tmp_path / "v.mp4")
    with open(target + ".part", "wb") as part:
        part.write(expected + b"trailing junk")
    result = _client(fake_civitai, backoff_factor=0).fetch_to_file(url, target)
    assert [r.status for r in fake_civitai.image_requests()] == [416, 200]
    assert open(target, "rb").read() == expected and result.resumed is False


def _whole_png(min_size: int) -> bytes:
    """A real PNG of at least ``min_size`` bytes (noise does not compress)."""
    import io
    import random

    from PIL import Image

    side = 8
    while True:
        rng = random.Random(side)
        image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        if buffer.tell() >= min_size:
            return buffer.getvalue()
        side *= 2


def test_mismatched_content_range_restarts_from_zero(requests_mock, tmp_path):
    body = _whole_png(25_000)
    url = "https://image.invalid/x/original=true/1.jpeg"
    requests_mock.get(
        url,
        [
            {
                "status_code": 206,
                "content": body[10:],
                "headers": {"Content-Range": f"bytes 10-{len(body) - 1}/{len(body)}"},
            },
            {"status_code": 200, "content": body, "headers": {"Content-Type": "image/png"}},
        ],
    )
    target = str(tmp_path / "1.png")
    with open(target + ".part", "wb") as part:
        part.write(body[:500])
    client = CivitaiHttpClient(base_url=MOCK_BASE, api_key="", max_retries=2, backoff_factor=0)
    result = client.fetch_to_file(url, target)
    history = requests_mock.request_history
    assert history[0].headers["Range"] == "bytes=500-"
    assert "Range" not in history[1].headers
    assert open(target, "rb").read() == body and result.sha256 == _sha(body)


def test_a_cut_stream_is_resumed(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(300_000, kind="mp4")
    expected = _reference(fake_civitai, url, tmp_path)
    fake_civitai.faults.cut_after(_path_of(url), 100_000, count=1)
    target = str(tmp_path / "cut.mp4")
    result = _client(fake_civitai).fetch_to_file(url, target)
    log = fake_civitai.image_requests()
    assert len(log) == 2
    offset = int(log[1].headers["Range"].split("=")[1].rstrip("-"))
    assert 0 < offset <= 100_000
    assert log[1].status == 206
    assert log[1].headers.get("If-Range")  # the first answer's validator
    assert result.resumed is True
    assert open(target, "rb").read() == expected and result.sha256 == _sha(expected)


def test_a_stream_that_always_breaks_fails_without_touching_the_final_path(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(300_000, kind="mp4")
    fake_civitai.faults.cut_after(_path_of(url), 50_000)
    target = str(tmp_path / "cut.mp4")
    with pytest.raises(IncompleteDownloadError, match="kept breaking off"):
        _client(fake_civitai, max_retries=2, backoff_factor=0).fetch_to_file(url, target)
    assert not os.path.exists(target)
    assert 0 < os.path.getsize(target + ".part") < 300_000
    assert len(fake_civitai.image_requests()) == 3


def test_html_with_200_is_never_saved(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    fake_civitai.faults.html_instead(_path_of(url))
    target = str(tmp_path / "x.jpeg")
    with pytest.raises(UnexpectedContentError, match="HTML page"):
        _client(fake_civitai, max_retries=3).fetch_to_file(url, target)
    assert os.listdir(tmp_path) == []
    assert len(fake_civitai.image_requests()) == 1


def test_image_404_is_not_retried(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    fake_civitai.faults.not_found(_path_of(url))
    with pytest.raises(DownloadError) as info:
        _client(fake_civitai, max_retries=3).fetch_to_file(url, str(tmp_path / "x.jpeg"))
    assert info.value.status == 404
    assert len(fake_civitai.image_requests()) == 1
    assert os.listdir(tmp_path) == []


def test_image_503_is_retried(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    fake_civitai.faults.queue_status(_path_of(url), 503, headers={"Retry-After": "0"}, count=2)
    result = _client(fake_civitai, max_retries=3).fetch_to_file(url, str(tmp_path / "x"))
    assert [r.status for r in fake_civitai.image_requests()] == [503, 503, 200]
    assert os.path.getsize(result.path) == result.size > 0


def test_a_stalled_image_host_times_out(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    fake_civitai.faults.delay(_path_of(url), 1.0)
    client = _client(fake_civitai, max_retries=0, download_timeout=(2, 0.3))
    start = time.monotonic()
    with pytest.raises(DownloadError, match="read timeout") as info:
        client.fetch_to_file(url, str(tmp_path / "x.jpeg"))
    assert info.value.status is None
    assert time.monotonic() - start < 0.9
    assert os.listdir(tmp_path) == []


def test_cancel_keeps_the_part_for_a_later_resume(fake_civitai, tmp_path):
    url = fake_civitai.blob_url(1_000_000, kind="webm")
    expected = _reference(fake_civitai, url, tmp_path)
    fake_civitai.bandwidth = 2_000_000
    cancel = threading.Event()
    target = str(tmp_path / "v.webm")

    def progress(done, total):
        if done >= 200_000:
            cancel.set()

    client = _client(fake_civitai)
    with pytest.raises(DownloadCancelledError):
        client.fetch_to_file(url, target, progress_callback=progress, cancel_event=cancel)
    assert not os.path.exists(target)
    kept = os.path.getsize(target + ".part")
    assert 200_000 <= kept < 1_000_000
    fake_civitai.bandwidth = None
    result = client.fetch_to_file(url, target)
    assert result.resumed is True
    assert fake_civitai.image_requests()[-1].headers.get("Range") == f"bytes={kept}-"
    assert open(target, "rb").read() == expected and result.sha256 == _sha(expected)


def test_cancel_while_the_host_is_paused_sends_nothing(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    client = _client(fake_civitai)
    client.host_gate.pause(origin_of(url), 5)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(DownloadCancelledError):
        client.fetch_to_file(url, str(tmp_path / "x.jpeg"), cancel_event=cancel)
    assert time.monotonic() - start < 1
    assert fake_civitai.image_requests() == []
    assert os.listdir(tmp_path) == []


def test_cancel_during_a_retry_after_wait(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    fake_civitai.faults.queue_status(_path_of(url), 429, headers={"Retry-After": "30"}, count=1)
    client = _client(fake_civitai, max_retries=3)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(DownloadCancelledError, match="waiting to retry"):
        client.fetch_to_file(url, str(tmp_path / "x.jpeg"), cancel_event=cancel)
    assert time.monotonic() - start < 2
    assert [r.status for r in fake_civitai.image_requests()] == [429]
    assert os.listdir(tmp_path) == []


def test_cancel_during_a_backoff(fake_civitai, tmp_path):
    url = _image_urls(fake_civitai, 4)[0]
    fake_civitai.faults.queue_status(_path_of(url), 500, count=1)
    client = _client(fake_civitai, max_retries=3, backoff_factor=30)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.monotonic()
    with pytest.raises(DownloadCancelledError):
        client.fetch_to_file(url, str(tmp_path / "x.jpeg"), cancel_event=cancel)
    assert time.monotonic() - start < 2
    assert [r.status for r in fake_civitai.image_requests()] == [500]


def test_disk_full_removes_the_part(fake_civitai, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    url = _image_urls(fake_civitai, 4)[0]
    import resource
    import signal

    target = str(tmp_path / "x.jpeg")
    client = _client(fake_civitai)
    # Files may not grow past 1000 bytes: the write fails with EFBIG, as on a full disk. (A .part
    # linked to /dev/full is refused outright now: the tool never writes through a link.)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        with pytest.raises(DiskSpaceError, match="disk filled up"):
            client.fetch_to_file(url, target)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert os.listdir(tmp_path) == []


def test_unwritable_folder_is_an_output_path_error(fake_civitai, tmp_path):
    from scripts.civitai_manager_libs.errors import OutputPathError

    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    url = _image_urls(fake_civitai, 4)[0]
    with pytest.raises(OutputPathError):
        _client(fake_civitai).fetch_to_file(url, str(blocker / "sub" / "x.jpeg"))


# -- the API key ------------------------------------------------------------------------------


def test_the_key_goes_to_the_api_host_only(fake_civitai, tmp_path, caplog):
    urls = _image_urls(fake_civitai, 4)
    client = _client(fake_civitai, api_key=KEY)
    with caplog.at_level(logging.DEBUG):
        client.get_json("/api/v1/images", {"limit": 1})
        client.fetch_to_file(urls[0], str(tmp_path / "a"))
        # A redirect from the API host to the image host must drop the header.
        client.fetch_to_file(fake_civitai.redirect_url(urls[1]), str(tmp_path / "b"))
        with pytest.raises(NotFoundError) as info:
            client.get_json("/api/v1/models/987654321")
    for record in fake_civitai.api_requests():
        assert record.headers.get("Authorization") == f"Bearer {KEY}"
    image_log = fake_civitai.image_requests()
    assert len(image_log) == 2
    for record in image_log:
        assert "Authorization" not in record.headers
        assert KEY not in str(record.headers) and KEY not in str(record.query)
    assert KEY not in caplog.text
    assert KEY not in repr(client) and KEY not in str(info.value) and KEY not in repr(info.value)
    assert "api_key=<api key set>" in repr(client)


def test_key_stays_on_the_api_origin_even_for_another_port(fake_civitai):
    """The image host is the same IP with another port: a different origin."""
    assert origin_of(fake_civitai.base_url) != origin_of(fake_civitai.image_base_url)
    client = _client(fake_civitai, api_key=KEY)
    resp = client.get_stream_response(fake_civitai.image_base_url + "/nothing-here")
    assert resp is None
    assert "Authorization" not in fake_civitai.image_requests()[0].headers


def test_a_caller_supplied_bearer_is_removed_for_other_hosts(fake_civitai):
    url = _image_urls(fake_civitai, 4)[0]
    client = _client(fake_civitai, api_key=KEY)
    with client.get_stream_response(url, headers={"Authorization": f"Bearer {KEY}"}) as resp:
        assert resp.content
    assert "Authorization" not in fake_civitai.image_requests()[0].headers


def test_plain_http_to_a_remote_host_with_a_key_is_warned(caplog):
    with caplog.at_level(logging.WARNING):
        CivitaiHttpClient(base_url="http://civitai.example", api_key=KEY)
        CivitaiHttpClient(base_url="http://127.0.0.1:8000", api_key=KEY)
        CivitaiHttpClient(base_url="http://civitai.example", api_key="")
    assert caplog.text.count("sent unencrypted") == 1
    assert KEY not in caplog.text


# -- many threads, one client -----------------------------------------------------------------


def test_eight_threads_share_one_client(fake_civitai, tmp_path):
    urls = _image_urls(fake_civitai, 24)[:16]
    expected = {}
    for url in urls:
        expected[url] = _sha(requests.get(url, timeout=5).content)
    fake_civitai.reset()
    fake_civitai.latency = 0.05
    client = _client(fake_civitai, pool_size=8)
    results, errors = {}, []
    lock = threading.Lock()

    def worker(chunk):
        for i, url in chunk:
            try:
                res = client.fetch_to_file(url, str(tmp_path / f"{i}.img"))
            except Exception as exc:  # collected for the assertion below
                errors.append(exc)
                continue
            with lock:
                results[url] = res

    items = list(enumerate(urls))
    threads = [threading.Thread(target=worker, args=(items[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert {u: r.sha256 for u, r in results.items()} == expected
    for res in results.values():
        assert _sha(open(res.path, "rb").read()) == res.sha256
    assert 2 <= fake_civitai.max_concurrent_image_requests <= 8
    assert len(fake_civitai.image_requests()) == len(urls)


# -- backlog wrappers ---------------------------------------------------------------------------


def test_download_file_returns_true_or_false_and_logs(fake_civitai, tmp_path, caplog):
    url = _image_urls(fake_civitai, 4)[0]
    client = _client(fake_civitai)
    assert client.download_file(url, str(tmp_path / "ok.jpeg")) is True
    assert os.path.getsize(tmp_path / "ok.jpeg") > 0
    fake_civitai.faults.html_instead(_path_of(url))
    with caplog.at_level(logging.WARNING):
        assert client.download_file(url, str(tmp_path / "bad.jpeg")) is False
    assert "Download failed" in caplog.text and "HTML" in caplog.text
    assert not os.path.exists(tmp_path / "bad.jpeg")


def test_get_stream_response_is_a_context_manager(fake_civitai, caplog):
    url = _image_urls(fake_civitai, 4)[0]
    expected = requests.get(url, timeout=5).content
    client = _client(fake_civitai)
    with client.get_stream_response(url) as resp:
        resp.raw.decode_content = True
        assert resp.raw.read() == expected
    fake_civitai.faults.not_found(_path_of(url))
    with caplog.at_level(logging.WARNING):
        assert client.get_stream_response(url) is None
    assert "HTTP 404" in caplog.text


# -- the shared client ---------------------------------------------------------------------------


@pytest.fixture
def restore_settings(tmp_path, monkeypatch):
    """Defaults, no env overrides, a throwaway settings file; the shared client forgotten."""
    for name in ("CIVITAI_BASE_URL", "CIVITAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    setting.reset()
    http_client.reset_http_client()
    yield
    setting.reset()
    http_client.reset_http_client()


def test_shared_client_is_reused_and_rebuilt_on_change(restore_settings, monkeypatch):
    first = get_http_client()
    assert get_http_client() is first
    setting.set("http_timeout", 42)
    second = get_http_client()
    assert second is not first and second.timeout[1] == 42
    assert second.host_gate is first.host_gate
    setting.set("http_timeout", 42)
    assert get_http_client() is second
    setting.set("civitai_base_url", "http://127.0.0.1:9")
    assert get_http_client().base_url == "http://127.0.0.1:9"
    monkeypatch.setenv("CIVITAI_API_KEY", KEY)
    keyed = get_http_client()
    assert keyed.has_api_key and KEY not in repr(keyed)


def test_a_client_takes_its_values_from_the_options_given_not_the_settings(restore_settings):
    """Policy as data: ClientOptions carries every value; the settings are read only by
    ClientOptions.from_settings (the shells and the shared client call it)."""
    from scripts.civitai_manager_libs.transport.client_options import ClientOptions

    setting.update({"http_timeout": 42, "images.max_file_size_mb": 3, "http_max_retries": 9})
    options = ClientOptions(timeout=7, max_file_mb=5, api_key=KEY, base_url="http://127.0.0.1:9")
    client = CivitaiHttpClient(options=options)
    assert client.timeout[1] == 7 and client.max_retries == ClientOptions().max_retries
    assert client.base_url == client.red_base_url == "http://127.0.0.1:9"
    assert client.file_fetch("http://127.0.0.1:9/a.png", "/tmp/x.png").policy.max_bytes == 5 << 20
    assert client.has_api_key and KEY not in repr(client) + repr(client.options) + repr(options)
    assert CivitaiHttpClient(options=options, timeout=3).timeout[1] == 3  # an argument wins
    built = CivitaiHttpClient()  # no options: the settings now
    assert (built.timeout[1], built.max_retries) == (42, 9)
    assert built.file_fetch("http://127.0.0.1:9/a.png", "/tmp/x.png").policy.max_bytes == 3 << 20
    setting.set("images.max_file_size_mb", 4)  # the shared client follows a changed cap
    assert get_http_client().file_fetch("http://x/a.png", "/tmp/x.png").policy.max_bytes == 4 << 20


def test_shared_client_is_safe_to_create_from_many_threads(restore_settings):
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_http_client())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(seen) == 8 and len({id(c) for c in seen}) == 1


# -- the proxy environment: honoured, read once per origin -------------------------------------


class _Proxy:
    """A forward proxy on 127.0.0.1 that answers every request itself with a JSON object naming
    the absolute URL it was asked for (what a proxy receives), and records it."""

    def __init__(self):
        import http.server

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                seen.append(self.path)
                body = ('{"id": 1, "via": "%s"}' % self.path).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_proxy_environment_is_honoured_and_no_proxy_bypasses_it(fake_civitai, monkeypatch):
    proxy = _Proxy()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        client = _client(fake_civitai, base_url="http://civitai.invalid")
        body = client.get_json("/api/v1/models/7")
        assert body["via"] == "http://civitai.invalid/api/v1/models/7"
        # the fake on 127.0.0.1 is reached directly (NO_PROXY), through the same session
        direct = client.get_json(fake_civitai.base_url + "/api/v1/images", {"limit": 1})
        assert "items" in direct and len(proxy.seen) == 1
    finally:
        proxy.close()


def test_the_proxy_environment_is_read_once_per_origin_not_per_request(fake_civitai, monkeypatch):
    calls = []
    real = requests.sessions.get_environ_proxies

    def counting(url, no_proxy=None):
        calls.append(origin_of(url))
        return real(url, no_proxy=no_proxy)

    urls = _image_urls(fake_civitai, 4)
    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counting)
    client = _client(fake_civitai)
    for _ in range(10):
        client.get_json("/api/v1/images", {"limit": 1})
    for url in urls:
        client.session.get(url, timeout=5).close()
    assert sorted(set(calls)) == sorted(calls), f"read again for one origin: {calls}"
    assert len(calls) == 2  # the API origin and the image host


def test_a_netrc_password_is_never_sent(fake_civitai, tmp_path, monkeypatch):
    """Civitai is authenticated by the API key alone: a ~/.netrc entry for its hosts (requests
    would send it as Basic auth on every request) reaches neither the API nor the image host."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url = _image_urls(fake_civitai, 4)[0]
    client = _client(fake_civitai)
    client.get_json("/api/v1/images", {"limit": 1})
    client.fetch_to_file(url, str(tmp_path / "x.jpeg"))
    seen = fake_civitai.api_requests() + fake_civitai.image_requests()
    assert len(seen) == 2
    assert [r.headers.get("Authorization") for r in seen] == [None, None]
