"""Issue 14: filters (base model, type, generation data, dates, reactions, used-with) against the
fake Civitai: the exact ids kept, the requests sent, the report counts, what the archive keeps."""

from __future__ import annotations

import io
import json
import os
import sqlite3

import pytest

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.civitai.filters import (
    FilterSpec,
    parse_base_models,
    parse_date,
)
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.engine.pool import DownloadEngine
from scripts.civitai_manager_libs.errors import InvalidQueryError
from scripts.civitai_manager_libs.fake_civitai.builders import DATASET_NOW_MS, DAY_MS
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.image_downloader import ARCHIVE_NAME, ImageDownloader
from scripts.civitai_manager_libs.planning import item_filter
from scripts.civitai_manager_libs.records import NSFW_LEVELS

ALL = list(NSFW_LEVELS)
IMAGES = "/api/v1/images"


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    setting.reset()
    yield
    setting.reset()


@pytest.fixture
def make_downloader(fake_civitai, tmp_path):
    made = []

    def make(output=None, **kw):
        client = CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="", max_retries=0)
        engine = DownloadEngine(client=client, max_workers=4)
        downloader = ImageDownloader(
            CivitaiAPI(client=client),
            engine,
            str(output or tmp_path / "out"),
            "{model_id}/{id}",
            metadata_formats=["json"],
            **kw,
        )
        made.append((downloader, engine, client))
        return downloader

    yield make
    for downloader, engine, client in made:
        downloader.close()
        engine.shutdown(wait=True, cancel_pending=True)
        client.close()


def listing_requests(fake):
    return [r for r in fake.api_requests() if r.path == IMAGES]


def task_image_ids(downloader, task_ids):
    return {downloader.get_task(t).image_id for t in task_ids}


def visible_meta(image):
    return None if image.meta_hidden or image.meta is None else image.meta


def has_prompt(image):
    meta = visible_meta(image)
    return bool(meta and isinstance(meta.get("prompt"), str) and meta["prompt"].strip())


def reactions(image):
    s = image.stats
    return sum(s.get(k, 0) for k in item_filter.REACTION_STATS)


# --------------------------------------------------------------------------- the spec


def test_base_model_names_are_civitais_and_a_typo_names_the_closest():
    assert parse_base_models("sdxl 1.0, PONY,Flux.1 D") == ("SDXL 1.0", "Pony", "Flux.1 D")
    with pytest.raises(InvalidQueryError) as info:
        parse_base_models("SDXL")
    assert "'SDXL 1.0'" in str(info.value) and "Did you mean" in str(info.value)
    with pytest.raises(InvalidQueryError) as info:
        parse_base_models("Ilustrious")
    assert "'Illustrious'" in str(info.value)


def test_dates_bounds_and_round_trip():
    assert parse_date("2026-05-01") == 1_777_593_600_000
    assert parse_date("2026-05-01", end=True) == 1_777_593_600_000 + DAY_MS  # whole day kept
    assert parse_date("2026-05-01T12:00:00+02:00") == 1_777_593_600_000 + 10 * 3_600_000
    with pytest.raises(InvalidQueryError, match="YYYY-MM-DD"):
        parse_date("01/05/2026")
    with pytest.raises(InvalidQueryError, match="must be before"):
        FilterSpec.build(since="2026-05-02", until="2026-05-01")
    spec = FilterSpec.build("Pony", "video", True, "2026-05-01", "2026-05-31", 3, "5, 7")
    assert FilterSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert FilterSpec().key() == "" and not FilterSpec().active


def test_fake_refuses_unknown_base_models_like_civitai(fake_civitai):
    import requests

    bad = requests.get(fake_civitai.base_url + IMAGES, params={"baseModels": "SDXL"}, timeout=10)
    assert bad.status_code == 400 and "baseModels" in bad.json()["error"]
    ok = requests.get(
        fake_civitai.base_url + IMAGES, params={"baseModels": "SDXL 1.0", "nsfw": "X"}, timeout=10
    )
    assert ok.status_code == 200 and {i["baseModel"] for i in ok.json()["items"]} == {"SDXL 1.0"}


# --------------------------------------------------------------------------- each filter


def test_base_model_is_sent_to_civitai_and_keeps_exactly_those(fake_civitai, make_downloader):
    dataset = fake_civitai.dataset
    d = make_downloader()
    spec = FilterSpec.build(base_models="Illustrious,Pony")
    ids = d.download_filtered_images({"sort": "Newest", "nsfw_levels": ALL}, limit=0, filters=spec)
    assert d.wait(timeout=120)

    expected = {
        i.id
        for i in dataset.images
        if i.base_model in ("Illustrious", "Pony") and i.nsfw_level != "Blocked"  # bit 32 only
    }
    assert len(expected) >= 30
    assert task_image_ids(d, ids) == expected
    sent = listing_requests(fake_civitai)
    assert sent and all(r.query.get("baseModels") == "Illustrious,Pony" for r in sent)
    assert len(sent) == 1  # ~32 images: one page (the unfiltered set would need two)
    assert d.summary().filtered == {}  # the server did the filtering
    assert d.summary().completed == len(expected)


def test_type_video_server_side_and_type_image_on_the_video_model(
    fake_civitai, make_downloader, tmp_path
):
    dataset = fake_civitai.dataset
    d = make_downloader()
    ids = d.download_filtered_images(
        {"nsfw_levels": ALL}, limit=0, filters=FilterSpec.build(media_type="video")
    )
    assert d.wait(timeout=120)
    videos = {i.id for i in dataset.images if i.type == "video"}
    assert len(videos) == 4 and task_image_ids(d, ids) == videos
    assert {r.query.get("type") for r in listing_requests(fake_civitai)} == {"video"}
    assert all(p.endswith(".mp4") for p in (d.get_task(t).image_path for t in ids))

    fake_civitai.reset()
    d2 = make_downloader(output=tmp_path / "stills")
    ids = d2.download_model_images(99001, nsfw_levels=ALL, filters=FilterSpec.build(None, "image"))
    assert d2.wait(timeout=120)
    stills = {i.id for i in dataset.select(model_id=99001) if (i.type or "image") == "image"}
    assert stills and task_image_ids(d2, ids) == stills
    assert {r.query.get("type") for r in listing_requests(fake_civitai)} == {"image"}


def test_with_generation_data_counts_hidden_meta_as_filtered_not_failed(
    fake_civitai, make_downloader
):
    dataset = fake_civitai.dataset
    images = dataset.select(model_id=4201)
    assert any(i.meta_hidden for i in images) and any(i.meta is None for i in images)
    d = make_downloader()
    spec = FilterSpec.build(with_generation_data=True)
    ids = d.download_model_images(4201, nsfw_levels=ALL, filters=spec)
    assert d.wait(timeout=180)

    kept = {i.id for i in images if has_prompt(i)}
    assert task_image_ids(d, ids) == kept
    summary = d.summary()
    assert summary.filtered == {"no generation data": len(images) - len(kept)}
    assert summary.failed == 0 and summary.completed == len(kept)
    # no filter of this kind reaches Civitai
    assert all("withGenerationData" not in r.query for r in listing_requests(fake_civitai))


def test_since_with_newest_stops_the_listing_early(fake_civitai, make_downloader):
    dataset = fake_civitai.dataset
    d = make_downloader()
    d.page_size = 10  # so "one or two pages" is measurable against ~38 pages for everything
    since = DATASET_NOW_MS - 30 * DAY_MS
    spec = FilterSpec.build(since=since)
    ids = d.download_filtered_images({"nsfw_levels": ALL}, limit=0, filters=spec)
    assert d.wait(timeout=120)

    expected = {i.id for i in dataset.images if i.created_ms >= since}
    assert 10 < len(expected) < 20 and len(expected) % 10
    assert task_image_ids(d, ids) == expected
    sent = listing_requests(fake_civitai)
    # two pages ("what is new" costs one or two), then it stopped; 372 images would be 38 pages
    assert [r.query.get("sort") for r in sent] == ["Newest", "Newest"]
    assert d.summary().filtered == {"date": 20 - len(expected)}  # the rest of the 2nd page


def test_since_with_another_sort_lists_everything_and_filters_on_the_client(
    fake_civitai, make_downloader
):
    dataset = fake_civitai.dataset
    d = make_downloader()
    since = DATASET_NOW_MS - 60 * DAY_MS
    until = DATASET_NOW_MS - 2 * DAY_MS
    spec = FilterSpec.build(since=since, until=until)
    ids = d.download_version_images(128713, nsfw_levels=ALL, filters=spec)
    d.wait(timeout=120)
    pool = dataset.select(version_id=128713)
    expected = {i.id for i in pool if since <= i.created_ms < until}
    assert task_image_ids(d, ids) == expected
    assert d.summary().filtered == {"date": len(pool) - len(expected)}
    assert {r.query.get("sort") for r in listing_requests(fake_civitai)} == {"Newest"}

    # the caller's own sort wins: no early stop, every page listed
    fake_civitai.reset()
    d2 = make_downloader(output=d.output_path + "-2")
    d2.page_size = 50
    ids = d2.download_filtered_images(
        {"sort": "Most Reactions", "modelVersionId": 128713, "nsfw_levels": ALL},
        limit=0,
        filters=spec,
    )
    d2.wait(timeout=120)
    assert task_image_ids(d2, ids) == expected
    sent = listing_requests(fake_civitai)
    assert {r.query.get("sort") for r in sent} == {"Most Reactions"}
    assert len(sent) == -(-len(pool) // 50)


def test_until_with_oldest_stops_early(fake_civitai, make_downloader):
    dataset = fake_civitai.dataset
    d = make_downloader()
    d.page_size = 20
    oldest = sorted(dataset.images, key=lambda i: i.created_ms)
    until = oldest[14].created_ms  # exclusive: the 14 oldest are kept
    ids = d.download_filtered_images(
        {"sort": "Oldest", "nsfw_levels": ALL}, limit=0, filters=FilterSpec(until=until)
    )
    d.wait(timeout=120)
    assert task_image_ids(d, ids) == {i.id for i in oldest[:14]}
    assert len(listing_requests(fake_civitai)) == 1


def test_min_reactions_sums_the_reaction_stats(fake_civitai, make_downloader):
    dataset = fake_civitai.dataset
    pool = dataset.select(version_id=245598)
    counts = sorted(reactions(i) for i in pool)
    threshold = counts[len(counts) // 2]
    d = make_downloader()
    ids = d.download_version_images(
        245598, nsfw_levels=ALL, filters=FilterSpec(min_reactions=threshold)
    )
    d.wait(timeout=120)
    expected = {i.id for i in pool if reactions(i) >= threshold}
    assert 0 < len(expected) < len(pool)
    assert task_image_ids(d, ids) == expected
    assert d.summary().filtered == {"reactions": len(pool) - len(expected)}


def test_used_with_reads_model_version_ids_and_meta_resources(fake_civitai, make_downloader):
    dataset = fake_civitai.dataset
    d = make_downloader()
    # modelVersionIds: the images listed under two DreamShaper versions
    ids = d.download_version_images(
        128713, nsfw_levels=ALL, filters=FilterSpec(used_with=(109123,))
    )
    d.wait(timeout=120)
    both = {i.id for i in dataset.images if {128713, 109123} <= set(i.model_version_ids)}
    assert len(both) == 2 and task_image_ids(d, ids) == both

    # meta.civitaiResources: DreamShaper images that also used the Detail Tweaker LoRA
    d2 = make_downloader(output=d.output_path + "-lora")
    spec = FilterSpec(used_with=(128713, 62833))
    ids = d2.download_model_images(4201, nsfw_levels=ALL, filters=spec)
    d2.wait(timeout=120)

    def used(image):
        meta = visible_meta(image) or {}
        found = set(image.model_version_ids)
        found |= {r.get("modelVersionId") for r in meta.get("civitaiResources") or []}
        return {128713, 62833} <= found

    expected = {i.id for i in dataset.select(model_id=4201) if used(i)}
    assert len(expected) >= 3
    assert task_image_ids(d2, ids) == expected
    assert d2.summary().filtered == {
        "used-with": len(dataset.select(model_id=4201)) - len(expected)
    }


def test_limit_counts_kept_images(fake_civitai, make_downloader):
    d = make_downloader()
    spec = FilterSpec(with_generation_data=True)
    ids = d.download_model_images(4201, limit=7, nsfw_levels=ALL, filters=spec)
    d.wait(timeout=120)
    assert len(ids) == 7
    assert all(has_prompt(fake_civitai.dataset.image(i)) for i in task_image_ids(d, ids))
    assert d.summary().filtered.get("no generation data", 0) >= 0


# --------------------------------------------------------------------------- CLI and report


def _cli(argv, capsys):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def test_cli_flags_report_counts_every_reason(fake_civitai, tmp_path, capsys):
    dataset = fake_civitai.dataset
    output, report = tmp_path / "out", tmp_path / "report.json"
    argv = ["download", "model", 66666, "--base-url", fake_civitai.base_url, "--output", output]
    argv += ["--nsfw", "None,Mature", "--with-generation-data", "--min-reactions", 20]
    argv += ["--report", report, "-q"]
    code, out, err = _cli(argv, capsys)
    assert code == 0, err

    # Civitai is asked for exactly these levels (browsingLevel 5), so no Soft item arrives and
    # the client-side NSFW safety net has nothing to drop.
    pool = dataset.select(model_id=66666, levels=["None", "Mature"])
    listing = [r for r in fake_civitai.api_requests() if r.path == "/api/v1/images"]
    assert listing and {r.query.get("browsingLevel") for r in listing} == {"5"}
    no_data = [i for i in pool if not has_prompt(i)]
    low = [i for i in pool if has_prompt(i) and reactions(i) < 20]
    kept = [i for i in pool if has_prompt(i) and reactions(i) >= 20]
    assert no_data and low and kept
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["filtered"] == {"no generation data": len(no_data), "reactions": len(low)}
    assert data["listed"] == len(pool) and data["saved"] == len(kept) and data["failed"] == 0
    assert (
        f"listed {len(pool)}: filtered {len(pool) - len(kept)} (no generation data "
        f"{len(no_data)}, reactions {len(low)}), saved {len(kept)}"
    ) in out


def test_cli_base_model_typo_is_a_usage_error_before_any_request(fake_civitai, tmp_path, capsys):
    output = tmp_path / "out"
    argv = ["download", "model", 4201, "--base-url", fake_civitai.base_url, "--output", output]
    code, _out, err = _cli(argv + ["--base-model", "SDXL"], capsys)
    assert code == 2
    assert "Unknown base model 'SDXL'" in err and "'SDXL 1.0'" in err
    assert fake_civitai.api_requests() == [] and not output.exists()
    code, _out, err = _cli(argv + ["--since", "2026-06-01", "--until", "2026-05-01"], capsys)
    assert code == 2 and "must be before" in err
    code, _out, err = _cli(argv + ["--type", "gif"], capsys)
    assert code == 2 and "image, video or all" in err
    assert fake_civitai.api_requests() == []


def test_archive_remembers_filters_and_retry_failed_applies_them(fake_civitai, tmp_path, capsys):
    dataset = fake_civitai.dataset
    output = tmp_path / "out"
    base = ["--base-url", fake_civitai.base_url, "--output", output, "--nsfw", "all", "-q"]
    # run 1, no filter: every image of model 66666 fails on the image host
    fake_civitai.faults.queue_status("/xG1nkqKTMzGDvpLrqFT7WA/*", 404, count=1000, server="image")
    code, _out, _err = _cli(["download", "model", 66666] + base, capsys)
    assert code == 1
    failed = dataset.select(model_id=66666)
    fake_civitai.faults.clear()
    # run 2, another target with --with-generation-data: the archive now remembers that filter
    code, _out, err = _cli(["download", "version", 87153, "--with-generation-data"] + base, capsys)
    assert code == 0, err
    with sqlite3.connect(str(output / ARCHIVE_NAME)) as conn:
        rows = dict(conn.execute("SELECT name, value FROM run_options").fetchall())
    assert json.loads(rows["filters"]) == {"with_generation_data": True}

    report = tmp_path / "retry.json"
    code, _out, err = _cli(["retry-failed", "--report", report] + base[:4] + ["-q"], capsys)
    assert code == 0, err
    data = json.loads(report.read_text(encoding="utf-8"))
    with_data = [i for i in failed if has_prompt(i)]
    assert data["saved"] == len(with_data)
    assert data["filtered"] == {"no generation data": len(failed) - len(with_data)}
    saved = {
        int(os.path.splitext(n)[0])
        for _d, _s, names in os.walk(output / "66666")
        for n in names
        if not n.endswith(".json")
    }
    assert saved == {i.id for i in with_data}


def test_another_filter_set_is_another_listing(fake_civitai, make_downloader):
    """A checkpoint of one filter set is never resumed by another (or by no filter)."""
    d = make_downloader()
    d.download_version_images(62833, nsfw_levels=ALL, filters=FilterSpec(min_reactions=1))
    d.wait(timeout=120)
    d.archive.set_checkpoint("version:62833|nsfw=None,Soft,Mature,X|filters=min_reactions=1", "9|9")
    fake_civitai.reset()
    d.download_version_images(62833, nsfw_levels=ALL)  # unfiltered: starts from the beginning
    d.wait(timeout=120)
    assert "cursor" not in listing_requests(fake_civitai)[0].query
    fake_civitai.reset()
    d.download_version_images(62833, nsfw_levels=ALL, filters=FilterSpec(min_reactions=1))
    assert listing_requests(fake_civitai)[0].query.get("cursor") == "9|9"


# --------------------------------------------------------------------------- the tab's handlers


@pytest.fixture
def tab_env(local_settings):
    return local_settings({"http_max_retries": 0})


def test_tab_sends_server_filters_and_says_what_each_filter_hid(tab_env):
    from scripts.civitai_manager_libs.ui import actions as action

    fake = tab_env
    # Filters row values: base models, type, with data, since, until, min reactions, used with
    row = (["SDXL 1.0"], "image", True, "", "", 0, "")
    out = action.load_gallery(
        "77777", ["None", "Soft"], "Newest", "AllTime", action.GalleryView(), *row
    )
    view, label = out[0], out[2]
    sent = [r for r in fake.api_requests() if r.path == IMAGES]
    assert sent[-1].query["baseModels"] == "SDXL 1.0" and sent[-1].query["type"] == "image"
    pool = sorted(
        (i for i in fake.dataset.select(model_id=77777, levels=["None", "Soft"])),
        key=lambda i: -i.created_ms,
    )[: setting.get("gallery_page_size")]
    kept = [i.id for i in pool if has_prompt(i)]
    assert [i.id for i in view.items] == kept
    assert (
        f"{len(pool) - len(kept)} hidden by filters ({len(pool) - len(kept)} no generation data)"
        in label
    )
    # the next page keeps the filters of the loaded view (the session's)
    assert view.filters == FilterSpec(("SDXL 1.0",), "image", True)


def test_tab_download_passes_the_row_filters_and_reports_them(tab_env):
    from scripts.civitai_manager_libs.ui import download_job as action

    fake = tab_env
    status = action.download_all(
        "version 62833",
        ["None", "Soft", "Mature", "X"],
        None,
        None,
        "all",
        False,
        "",
        "",
        0,
        "62833 58390",
        progress=None,
    )
    assert status.startswith("Nothing to download: 12 hidden by filters (12 used-with)")
    status = action.download_all(
        "version 62833",
        ["None", "Soft", "Mature", "X"],
        None,
        None,
        "all",
        True,
        "",
        "",
        0,
        "",
        progress=None,
    )
    pool = fake.dataset.select(version_id=62833)
    kept = [i for i in pool if has_prompt(i)]
    assert f"downloaded {len(kept)}, skipped 0, failed 0 of {len(kept)} images" in status
    assert f"{len(pool) - len(kept)} hidden by filters" in status


def test_tab_status_names_the_filters_of_an_empty_job():
    from scripts.civitai_manager_libs.records import DownloadSummary
    from scripts.civitai_manager_libs.ui.download_job import summary_text
    from scripts.civitai_manager_libs.ui.jobs import JobOutcome

    hidden = DownloadSummary(filtered={"date": 2, "reactions": 1})
    retry = JobOutcome(summary=hidden, kind="retry")
    assert summary_text(retry) == "Nothing to retry: 3 hidden by filters (2 date, 1 reactions)."
    assert summary_text(JobOutcome(kind="retry")) == "Nothing to retry: no download has failed."
    assert summary_text(JobOutcome(summary=hidden)).startswith("Nothing to download: 3 hidden")
