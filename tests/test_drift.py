"""Drift is never silent (issue 20 section 3): a fake that answers the way Civitai has changed
before (``fake.faults.drift``) makes a download, ``list`` and the tab's Download all each say so in
one warning line per kind and a ``drift`` section of ``--report``; a normal run says nothing."""

from __future__ import annotations

import io
import json

import pytest

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.civitai.drift import REPORT_AT, Drift, listing_body
from scripts.civitai_manager_libs.civitai.fronts import SFW_ONLY_WARNING
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.civitai.query import Target
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.records import ImageItem, ImagePage
from scripts.civitai_manager_libs.ui import download_job as action
from scripts.civitai_manager_libs.ui.jobs import GalleryJobs

MODEL = 4201
CHANGED = "Civitai's answers changed"
# fake knob -> the kind it shows as, and a fragment of its line
SHAPES = {
    "meta_stripped": ("meta", "came without their generation data"),
    "items_renamed": ("shape", "unknown shape (top-level keys: data, metadata)"),
    "unknown_hosts": ("hosts", "on a host this tool does not know (localhost)"),
    "packed": ("shape", "unknown shape (tRPC-like result.data.json)"),
    "mature_filtered": ("levels", "none of"),
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


def _drift_lines(caplog):
    return [r.getMessage() for r in caplog.records if CHANGED in r.getMessage()]


def _download(fake, tmp_path, limit=60, *more, target=("model", MODEL)):
    report = tmp_path / "report.json"
    argv = ["download", *target, "--base-url", fake.base_url, "--nsfw", "all", *more]
    argv += ["--limit", limit, "--output", tmp_path / "out", "--report", report, "-q"]
    code = cli.main([str(a) for a in argv], out=io.StringIO())
    return code, json.loads(report.read_text())


def test_a_normal_run_says_nothing(fake_civitai, tmp_path, caplog):
    code, report = _download(fake_civitai, tmp_path, limit=0)
    assert code == 0 and report["saved"] > 200
    assert report["drift"] == [] and _drift_lines(caplog) == []


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_drift_makes_one_line_and_a_report_section(fake_civitai, tmp_path, caplog, shape):
    kind, fragment = SHAPES[shape]
    fake_civitai.faults.drift(shape, "/api/v1/images")
    # a mature listing asked of the red front (one address alone: see the test below); "no
    # mature image" is a sign only on Civitai's whole feed (a model may have none)
    target = ("filter", "sort=Newest") if kind == "levels" else ("model", MODEL)
    code, report = _download(
        fake_civitai, tmp_path, 60, "--red-base-url", fake_civitai.red_base_url, target=target
    )
    lines = _drift_lines(caplog)
    assert len(lines) == 1, lines
    assert fragment in lines[0] and REPORT_AT in lines[0]
    assert [entry["kind"] for entry in report["drift"]] == [kind]
    assert report["drift"][0]["message"] in lines[0]
    # an answer without 'items' ends the run (exit 1); the others still download everything
    assert code == (1 if shape == "items_renamed" else 0), report


def test_mature_images_missing_from_civitai_com_alone_make_one_line_not_two(
    fake_civitai, tmp_path, caplog, monkeypatch
):
    """civitai.com alone (no red front; the fake's address stands for it): the fronts' own
    warning says the mature images are missing, and the drift ``levels`` line does not say it a
    second time, even on the whole feed."""
    from scripts.civitai_manager_libs.civitai import fronts

    monkeypatch.setattr(fronts, "SFW_HOSTS", fronts.SFW_HOSTS + ("127.0.0.1",))
    fake_civitai.faults.drift("mature_filtered", "/api/v1/images")
    code, report = _download(fake_civitai, tmp_path, target=("filter", "sort=Newest"))
    assert code == 0, report
    assert _drift_lines(caplog) == [] and report["drift"] == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if SFW_ONLY_WARNING in w]) == 1, warnings


def test_a_model_without_mature_images_is_no_drift(fake_civitai, tmp_path, caplog):
    """A model (or creator, post, tag) may simply have no mature image: all levels asked of a
    mirror or of the red front, none served, is neither drift nor the civitai.com warning (it
    was both once: tests/faults/test_kill_resume.py's last line was a false warning)."""
    fake_civitai.faults.drift("mature_filtered", "/api/v1/images")
    for run, more in enumerate([(), ("--red-base-url", fake_civitai.red_base_url)]):
        caplog.clear()
        (tmp_path / str(run)).mkdir()
        code, report = _download(fake_civitai, tmp_path / str(run), 60, *more)
        assert code == 0 and report["saved"] == 60, report
        assert _drift_lines(caplog) == [] and report["drift"] == []
        assert SFW_ONLY_WARNING not in caplog.text


def test_the_red_fronts_host_is_a_known_host(fake_civitai, tmp_path, caplog):
    """Media on the red front's host are no stranger's: the run's drift count knows both
    fronts' hosts (the fake's drift moves media to ``localhost``, here the red front's name)."""
    fake_civitai.faults.drift("unknown_hosts", "/api/v1/images")
    red = fake_civitai.red_base_url.replace("127.0.0.1", "localhost")
    code, report = _download(fake_civitai, tmp_path, 60, "--red-base-url", red)
    assert code == 0 and report["saved"] == 60, report
    assert _drift_lines(caplog) == [] and report["drift"] == []


def test_items_dropped_as_malformed_make_one_line(fake_civitai, tmp_path, caplog):
    client = CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="")
    items = client.get_json("/api/v1/images", {"modelId": MODEL, "nsfw": "X", "limit": 5})["items"]
    client.close()
    for item in items[:2]:
        del item["url"]
    body = {"items": items, "metadata": {}}
    fake_civitai.faults.queue_status("/api/v1/images", 200, body=body, server="api")
    code, report = _download(fake_civitai, tmp_path)
    lines = _drift_lines(caplog)
    assert len(lines) == 1 and "2 of 5 listed items were dropped as unusable" in lines[0]
    assert [entry["kind"] for entry in report["drift"]] == ["malformed"]
    assert code == 0 and report["saved"] == 3


def test_list_names_the_drift_too(fake_civitai, tmp_path, caplog):
    fake_civitai.faults.drift("meta_stripped", "/api/v1/images")
    argv = ["list", "model", MODEL, "--nsfw", "all", "--to", tmp_path / "rows.jsonl"]
    argv += ["--base-url", fake_civitai.base_url, "-q"]
    assert cli.main([str(a) for a in argv], out=io.StringIO()) == 0
    lines = _drift_lines(caplog)
    assert len(lines) == 1 and "came without their generation data" in lines[0]


def test_the_tabs_download_all_status_names_the_drift(local_settings):
    fake_civitai = local_settings({"http_backoff_factor": 0})
    jobs = GalleryJobs()
    first = jobs.download(Target("version", 43888), ["None", "Soft"])
    assert first.summary.drift == [] and CHANGED not in action.summary_text(first)
    fake_civitai.faults.drift("unknown_hosts", "/api/v1/images")
    outcome = jobs.download(Target("version", 43888), ["None", "Soft"])
    text = action.summary_text(outcome)
    assert text.count(CHANGED) == 1 and "(localhost)" in text
    assert text.splitlines()[0].startswith("downloaded ")
    # a retry lists nothing: it does not repeat the listing's drift
    assert CHANGED not in action.summary_text(jobs.retry_failed())


def test_the_levels_line_needs_enough_images_to_be_sure(fake_civitai):
    """A small listing with no mature image is no sign of anything."""
    fake_civitai.faults.drift("mature_filtered", "/api/v1/images")
    api = CivitaiAPI(CivitaiHttpClient(base_url=fake_civitai.base_url, api_key=""))
    drift = Drift.for_urls(fake_civitai.base_url)
    levels = ["None", "Soft", "Mature", "X"]
    list(
        api.iter_images({"modelId": MODEL}, nsfw_levels=levels, limit=20, watch=drift.watch(levels))
    )
    assert drift.lines() == []


def test_the_listing_body_reader_names_each_shape():
    plain = {"items": [], "metadata": {}}
    assert listing_body(plain) == (plain, None)
    wrapped = {"result": {"data": {"json": {"items": [1], "nextCursor": "c"}}}}
    assert listing_body(wrapped) == (
        {"items": [1], "metadata": {"nextCursor": "c"}},
        "tRPC-like result.data.json",
    )
    assert listing_body({"result": {"data": "[{}]"}}) == (
        None,
        "packed tRPC-like result.data string",
    )
    assert listing_body([1]) == (None, "a JSON list instead of an object")


def _page(items, server_items=None):
    return ImagePage(items=items, cursor=None, next_cursor=None, server_items=server_items)


def test_pages_of_videos_or_a_few_images_without_data_are_no_sign():
    drift = Drift.for_urls("https://civitai.com")
    url = "https://image.civitai.com/k/u/original=true/1.mp4"
    drift.page(_page([ImageItem(id=n, url=url, type="video") for n in range(1, 30)]))
    drift.page(_page([ImageItem(id=n, url=url) for n in range(1, 5)]))  # 4 images: too few
    assert drift.lines() == []
    drift.page(_page([ImageItem(id=n, url=url) for n in range(1, 13)]))
    assert [entry["kind"] for entry in drift.kinds()] == ["meta"]
    assert "12 of 16 images came without" in drift.lines()[0]
