"""Issue 11 items 8-11: listing against the real API's shapes (exact NSFW sets, whole-model sort,
usernames, cursors in every form, Blocked/unrated items, uuid URLs, 2026 meta) on the fake."""

from __future__ import annotations

import logging
import math

import pytest
import requests

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.errors import InvalidQueryError
from scripts.civitai_manager_libs.fake_civitai.listing import CURSOR_FORMS
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata
from scripts.civitai_manager_libs.records import NSFW_LEVELS

BIG_MODEL = 4201


@pytest.fixture
def api(fake_civitai):
    return CivitaiAPI(CivitaiHttpClient(base_url=fake_civitai.base_url, max_retries=0, timeout=10))


def _queries(fake):
    return [dict(r.query) for r in fake.api_requests() if r.path == "/api/v1/images"]


# ------------------------------------------------------------------------------ item 8


def test_exact_nsfw_set_is_asked_with_browsing_level_so_pages_come_full(fake_civitai, api):
    # {None, X}: `nsfw=X` alone brings Soft and Mature items that are then thrown away.
    page = api.get_image_page({}, limit=50, nsfw_levels=("None", "X"))
    assert len(page.items) == 50 and {i.nsfw_level for i in page.items} == {"None", "X"}
    assert _queries(fake_civitai)[-1]["browsingLevel"] == str(1 | 8 | 16)


def test_a_whole_crawl_of_an_exact_set_needs_only_its_own_pages(fake_civitai, api):
    levels = ("Soft", "X")
    expected = fake_civitai.dataset.select(levels=levels)
    fake_civitai.reset()
    items = list(api.iter_images({}, nsfw_levels=levels))
    assert sorted(i.id for i in items) == sorted(i.id for i in expected)
    assert len(_queries(fake_civitai)) == math.ceil(len(expected) / 200)


# ------------------------------------------------------------------------------ item 9


@pytest.mark.parametrize("sort", ["Most Reactions", "Most Comments", "Most Collected"])
def test_whole_model_listing_tells_which_order_civitai_really_gives(api, sort, caplog):
    page = api.get_image_page({"modelId": BIG_MODEL, "sort": sort}, limit=20)
    assert page.notice and "newest first" in page.notice and sort in page.notice
    ids = [i.id for i in page.items]
    assert ids == sorted(ids, reverse=True)  # what the real whole-model path does
    with caplog.at_level(logging.WARNING):
        list(api.iter_images({"modelId": BIG_MODEL, "sort": sort}, limit=5))
    assert any("newest first" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "params",
    [
        {"modelId": BIG_MODEL, "sort": "Newest"},
        {"modelId": BIG_MODEL, "sort": "Oldest"},
        {"modelId": BIG_MODEL, "modelVersionId": 128713, "sort": "Most Reactions"},
        {"username": "alice_art", "sort": "Most Comments"},
        {"modelId": BIG_MODEL},  # no sort chosen: nothing to warn about
    ],
)
def test_no_notice_when_the_order_is_the_one_asked_for(api, params):
    assert api.get_image_page(params, limit=5).notice is None


# ------------------------------------------------------------------------------ item 10


def test_a_username_civitai_refuses_sends_no_request(fake_civitai, api):
    fake_civitai.reset()
    with pytest.raises(InvalidQueryError, match="letters A-Z and a-z, digits and '_'"):
        list(api.iter_images({"username": "carol.b-2"}))
    assert _queries(fake_civitai) == []


def test_all_digit_usernames_stay_text(fake_civitai, api):
    items = list(api.iter_images({"username": "20250101"}, nsfw_levels=NSFW_LEVELS))
    assert items and {i.creator for i in items} == {"20250101"}
    raw = (
        _queries(fake_civitai)
        and requests.get(
            fake_civitai.base_url + "/api/v1/images",
            params={"username": "20250101", "nsfw": "X", "withMeta": "true"},
            timeout=10,
        ).json()["items"][0]
    )
    assert raw["username"] == 20250101  # the API sends a number
    assert extract_image_metadata(raw)["creator"] == "20250101"


# ------------------------------------------------------------------------------ item 11


@pytest.mark.parametrize(
    "params",
    [{"sort": sort} for sort in CURSOR_FORMS] + [{"modelId": BIG_MODEL, "sort": "Most Reactions"}],
)
def test_every_cursor_form_is_followed_verbatim_to_the_end(fake_civitai, api, params):
    dataset = fake_civitai.dataset
    expected = {i.id for i in dataset.select(model_id=params.get("modelId"), levels=NSFW_LEVELS)}
    fake_civitai.reset()
    items = list(api.iter_images(params, nsfw_levels=NSFW_LEVELS))
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert len(_queries(fake_civitai)) > 1


def test_the_fake_serves_every_cursor_form():
    import re

    from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai

    seen = set()
    with FakeCivitai(Dataset.default()) as fake:
        for params in [{"sort": s} for s in CURSOR_FORMS] + [{"modelId": BIG_MODEL}]:
            body = requests.get(
                fake.base_url + "/api/v1/images", params={**params, "limit": 5}, timeout=10
            ).json()
            cursor = body["metadata"]["nextCursor"]
            for form, pattern in (
                ("number", r"\d+"),
                ("pair", r"\d+\|\d+"),
                ("offset", r"offset\|\d+"),
                ("bdx", r"bdx:\{.*\}"),
                ("feed", r"feed:.+"),
            ):
                if re.fullmatch(pattern, str(cursor)) and (form != "number") == isinstance(
                    cursor, str
                ):
                    seen.add(form)
    assert seen == {"number", "pair", "offset", "bdx", "feed"}


def test_blocked_items_need_bit_32_and_unrated_items_list_as_pg(fake_civitai):
    dataset = fake_civitai.dataset
    blocked = [i.id for i in dataset.images if i.nsfw_level == "Blocked"]
    unrated = [i.id for i in dataset.images if i.browsing_level == 0]
    assert blocked and unrated

    def listed(**params):
        url = fake_civitai.base_url + "/api/v1/images"
        items, cursor = [], None
        while True:
            query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
            body = requests.get(url, params=query, timeout=10).json()
            items += body["items"]
            cursor = body["metadata"].get("nextCursor")
            if cursor is None:
                return {i["id"]: i for i in items}

    everything = listed(nsfw="X")
    assert not set(blocked) & set(everything)
    assert set(unrated) <= set(listed(nsfw="None"))
    assert all(everything[i]["nsfwLevel"] == "None" for i in unrated)
    with_blocked = listed(browsingLevel=63)
    assert {with_blocked[i]["nsfwLevel"] for i in blocked} == {"Blocked"}
    assert set(blocked) <= set(listed(nsfw="true"))


def test_uuid_original_urls_are_listed_and_served(fake_civitai, api):
    items = list(api.iter_images({}, nsfw_levels=NSFW_LEVELS))
    new_style = [i for i in items if "/original=true/" in i.url]
    assert new_style
    sample = new_style[0]
    source = fake_civitai.dataset.image(sample.id)
    assert sample.url.endswith(f"/{source.uuid}/original=true/{source.uuid}.jpeg")
    response = requests.get(sample.url, timeout=10)
    assert response.status_code == 200
    assert response.content == fake_civitai.dataset.original_bytes(sample.id)


def test_the_demo_dataset_holds_every_2026_meta_shape(fake_dataset):
    metas = [i.meta for i in fake_dataset.images if i.meta and not i.meta_hidden]
    assert any("width" in m and "Size" not in m for m in metas)
    assert any(isinstance(m.get("TI hashes"), dict) for m in metas)
    assert any("vae" in (m.get("hashes") or {}) for m in metas)
    assert any(any(k.startswith("LORA:") for k in (m.get("hashes") or {})) for m in metas)
    assert any("undefined" in str(m.get("comfy", "")) for m in metas)
    assert any(m.get("scheduler") == "karras" and m.get("sampler") == "dpmpp_2m" for m in metas)
    assert any("Created Date" in m and "engine" in m for m in metas)
    assert any(set(m) <= {"prompt", "seed"} for m in metas)  # fewer than three parameters


def test_a_cli_download_of_all_versions_says_which_order_it_gets(fake_civitai, tmp_path):
    import os
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "CIVITAI_GALLERY_SETTINGS": str(tmp_path / "settings.json")}
    base = ["--limit", "2", "--metadata", "none", "--output", str(tmp_path / "out")]
    base += ["--base-url", fake_civitai.base_url]

    def run(*target):
        argv = [sys.executable, os.path.join(repo, "main.py"), "download", *target, *base]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr

    told = run("filter", f"modelId={BIG_MODEL}", "sort=Most Reactions")
    assert told.count("newest first") == 1 and "Most Reactions" in told
    assert "newest first" not in run("model", str(BIG_MODEL))  # no sort chosen
