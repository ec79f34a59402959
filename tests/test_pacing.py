"""Polite pacing (issue 22): --sleep-request spaces the API requests (per origin, with jitter),
--limit-rate paces each media download; both off by default."""

from __future__ import annotations

import io

import pytest

from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.errors import SettingsError
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.transport.pacing import (
    RequestPacer,
    parse_interval,
    parse_rate,
)


class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self):
        self.now = 100.0
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


def test_parsing_the_values():
    assert parse_interval("0") is None and parse_interval("") is None
    assert parse_interval("2") == (2.0, 2.4)
    assert parse_interval("2-5") == (2.0, 5.0)
    assert parse_rate("2M") == 2 * 1024 * 1024 and parse_rate("500k") == 500 * 1024
    assert parse_rate("") is None and parse_rate("0") is None
    for bad in ("x", "5-2", "-1"):
        with pytest.raises(SettingsError):
            parse_interval(bad)
    for bad in ("fast", "2X", "10"):
        with pytest.raises(SettingsError):
            parse_rate(bad)


def test_the_pacer_keeps_the_interval_per_origin_with_jitter():
    t = FakeTime()
    draws = []

    def draw(low, high):
        draws.append((low, high))
        return high  # the longest jitter

    pacer = RequestPacer((2.0, 2.4), clock=t.clock, sleep=t.sleep, draw=draw)
    assert pacer.wait("https://api") == 0  # the first request goes at once
    assert pacer.wait("https://other") == 0  # another origin has its own pace
    assert pacer.wait("https://api") == pytest.approx(2.4)
    t.now += 10  # a long pause: no wait after it
    assert pacer.wait("https://api") == 0
    assert draws == [(2.0, 2.4)] * 4


def test_sleep_request_spaces_every_api_request_of_a_download(tmp_path):
    with FakeCivitai(Dataset.generate(6, image_kb=1, seed=41)) as fake:
        buf = io.StringIO()
        code = cli.main(
            ["download", "model", "500000", "--nsfw", "None", "--metadata", "none", "-q"]
            + ["--output", str(tmp_path / "out"), "--base-url", fake.base_url]
            + ["--sleep-request", "0.3"],
            out=buf,
        )
        assert code == 0, buf.getvalue()
        api = sorted(r.time for r in fake.api_requests())
        assert len(api) >= 2  # the model look-up and the listing
        gaps = [b - a for a, b in zip(api, api[1:])]
        assert min(gaps) >= 0.3 - 0.05, gaps
        assert len(fake.image_requests()) == 6  # media is not paced by it


def test_limit_rate_paces_a_1_mb_download_to_its_share_of_time(tmp_path):
    size = 1024 * 1024
    with FakeCivitai(Dataset.generate(1, image_kb=1, seed=42)) as fake:
        url = fake.blob_url(size, kind="mp4")
        for rate, expected in (("256k", 4.0), ("1M", 1.0), ("", 0.0)):
            t = FakeTime()
            with CivitaiHttpClient(base_url=fake.base_url, limit_rate=rate) as client:
                fetch = client.file_fetch(url, str(tmp_path / f"clip{rate}.mp4"))
                fetch.policy.clock, fetch.policy.sleep = t.clock, t.sleep
                result = fetch.run()
            assert result.size == size
            assert sum(t.slept) == pytest.approx(expected), rate
            assert all(s > 0 for s in t.slept)


def test_bad_pacing_options_exit_2_before_anything(tmp_path):
    for flag in (["--sleep-request", "soon"], ["--limit-rate", "fast"]):
        code = cli.main(
            ["download", "model", "1", "--output", str(tmp_path / "out"), *flag], out=io.StringIO()
        )
        assert code == 2
    assert not (tmp_path / "out").exists()
