"""The local Civitai: dataset variety, the API shapes of the notes, the image host, every knob.

Plain ``requests`` on purpose: this checks the wire, independently of the project's HTTP client.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time

import piexif
import piexif.helper
import pytest
import requests
from PIL import Image

from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.fake_civitai.builders import (
    HOSTILE_CREATOR,
    HOSTILE_MODEL_NAME,
    UNICODE_CREATOR,
)
from scripts.civitai_manager_libs.fake_civitai.listing import NSFW_MASKS, PAGE_CAP_MESSAGE
from scripts.civitai_manager_libs.fake_civitai.models_api import RESOURCE_FILES

ITEM_KEYS = {
    "id",
    "url",
    "hash",
    "width",
    "height",
    "nsfwLevel",
    "nsfw",
    "browsingLevel",
    "createdAt",
    "postId",
    "stats",
    "meta",
    "username",
    "baseModel",
    "modelVersionIds",
}
BIG_MODEL = 4201  # more than 200 images: two pages at the maximum limit


def images(fake, **params):
    return requests.get(fake.base_url + "/api/v1/images", params=params, timeout=10)


def all_pages(fake, **params):
    """Follow ``nextCursor`` to the end; returns (items, list of metadata dicts)."""
    items, metas, cursor = [], [], None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = images(fake, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        metas.append(body["metadata"])
        cursor = body["metadata"].get("nextCursor")
        if cursor is None:
            return items, metas
        cursor = str(cursor)  # opaque: a number on the whole-model path, text elsewhere
        assert len(metas) < 100, "paging does not end"


def magic_kind(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp":
        return "mp4"
    return "unknown"


# ---------------------------------------------------------------------------------- dataset
def test_default_dataset_is_fast_deterministic_and_varied():
    started = time.perf_counter()
    first = Dataset.default()
    elapsed = time.perf_counter() - started
    second = Dataset.default()
    assert elapsed < 1.0
    assert [(i.id, i.uuid, i.meta, i.nsfw_level) for i in first.images] == [
        (i.id, i.uuid, i.meta, i.nsfw_level) for i in second.images
    ]
    assert 300 <= len(first.images) <= 400
    assert len(first.models) >= 8
    resource_models = {spec.model_id for spec in RESOURCE_FILES}  # one version each (issue 13)
    assert all(2 <= len(m.versions) <= 3 for m in first.models if m.id not in resource_models)
    names = {m.name for m in first.models}
    assert HOSTILE_MODEL_NAME in names and any(len(n) == 300 for n in names)
    users = {c.username for c in first.creators}
    assert len(users) == 7 and {HOSTILE_CREATOR, UNICODE_CREATOR, "20250101"} <= users
    assert {i.nsfw_level for i in first.images} == {"None", "Soft", "Mature", "X", "Blocked"}
    assert {i.browsing_level for i in first.images} == {0, 1, 2, 4, 8, 16, 32}
    assert {i.media for i in first.images} == {"png", "jpeg", "webp", "mp4"}
    assert 3 <= sum(i.type == "video" for i in first.images) <= 5
    assert any(i.type is None for i in first.images)
    assert any(len(i.model_version_ids) == 2 for i in first.images)
    shapes = {i.meta_shape for i in first.images}
    assert {"a1111", "null", "hidden", "numbers_as_strings", "model_object", "comfy"} <= shapes
    assert any(i.meta and "Clip skip" in i.meta for i in first.images)
    assert any(i.meta and isinstance(i.meta.get("seed"), str) for i in first.images)
    assert any(
        i.meta and "\n" in i.meta["prompt"] and '"' in i.meta["prompt"] for i in first.images
    )


def test_png_originals_carry_their_own_generation_data(fake_dataset):
    a1111 = next(i for i in fake_dataset.images if i.embedded == "a1111")
    comfy = [i for i in fake_dataset.images if i.embedded == "comfy"]
    assert len(comfy) == 1
    with Image.open(io.BytesIO(fake_dataset.original_bytes(a1111.id))) as picture:
        text = picture.text["parameters"]
        assert picture.size == (a1111.width, a1111.height)
    assert text.startswith(a1111.meta["prompt"])
    assert f"Seed: {a1111.meta['seed']}" in text and "Negative prompt: " in text
    with Image.open(io.BytesIO(fake_dataset.original_bytes(comfy[0].id))) as picture:
        graph = json.loads(picture.text["prompt"])
    assert graph["3"]["class_type"] == "KSampler"
    jpeg = next(i for i in fake_dataset.images if i.embedded == "a1111" and i.media == "jpeg")
    exif = piexif.load(fake_dataset.original_bytes(jpeg.id))["Exif"]
    comment = piexif.helper.UserComment.load(exif[piexif.ExifIFD.UserComment])
    assert comment.startswith(jpeg.meta["prompt"]) and f"Seed: {jpeg.meta['seed']}" in comment


@pytest.mark.parametrize("image_kb", [1, 2, 3, 8, 200])
def test_generated_images_have_exactly_the_requested_size(image_kb):
    dataset = Dataset.generate(n_images=8, image_kb=image_kb)
    sizes = {len(dataset.original_bytes(image.id)) for image in dataset.images}
    assert sizes == {image_kb * 1024}


def test_generated_dataset_has_exact_sizes_and_distinct_valid_jpegs():
    dataset = Dataset.generate(n_images=1000, image_kb=50, seed=3)
    assert len(dataset.images) == 1000 and len(dataset.models) == 1
    sample = [dataset.original_bytes(i.id) for i in dataset.images[:6]]
    assert {len(b) for b in sample} == {50 * 1024}
    assert len(set(sample)) == 6
    with Image.open(io.BytesIO(sample[0])) as picture:
        picture.load()
        assert picture.format == "JPEG"
    again = Dataset.generate(n_images=1000, image_kb=50, seed=3)
    assert again.original_bytes(again.images[0].id) == sample[0]


# ---------------------------------------------------------------------------------- listing
def test_cursor_paging_reaches_every_image_and_last_page_has_no_cursor(fake_civitai):
    dataset = fake_civitai.dataset
    expected = [i.id for i in dataset.select(model_id=BIG_MODEL)]
    assert len(expected) > 200
    items, metas = all_pages(fake_civitai, modelId=BIG_MODEL, limit=200, nsfw="X")
    assert len(metas) == 2
    assert sorted(i["id"] for i in items) == sorted(expected)
    assert "nextCursor" not in metas[-1] and "nextPage" not in metas[-1]
    assert isinstance(metas[0]["nextCursor"], int)  # the whole-model path pages by image id
    following = requests.get(metas[0]["nextPage"], timeout=10).json()
    assert [i["id"] for i in following["items"]] == [i["id"] for i in items[200:]]


def test_limit_bounds_and_bad_parameters_answer_400(fake_civitai):
    assert len(images(fake_civitai, nsfw="X").json()["items"]) == 100  # the default limit
    for params in ({"limit": 201}, {"limit": -1}, {"limit": "ten"}, {"modelId": "abc"}):
        response = images(fake_civitai, **params)
        assert response.status_code == 400
        assert response.json()["error"]
    for params in ({"sort": "Best"}, {"period": "Decade"}, {"nsfw": "none"}, {"cursor": "x"}):
        response = images(fake_civitai, **params)
        assert response.status_code == 400, params
        assert response.json()["error"]
    empty = images(fake_civitai, limit=0, nsfw="X").json()
    assert empty["items"] == [] and empty["metadata"]["nextCursor"]


def test_page_parameter_is_capped_at_1000_items(fake_civitai):
    capped = images(fake_civitai, page=11)
    assert capped.status_code == 429
    assert capped.json() == {"error": PAGE_CAP_MESSAGE}
    assert images(fake_civitai, page=6, limit=200).status_code == 429
    body = images(fake_civitai, page=1, limit=200, nsfw="X").json()
    assert body["metadata"]["currentPage"] == 1 and "nextCursor" not in body["metadata"]
    last = requests.get(body["metadata"]["nextPage"], timeout=10).json()
    assert last["metadata"]["currentPage"] == 2 and "nextPage" not in last["metadata"]
    served = [i for i in fake_civitai.dataset.images if i.nsfw_level != "Blocked"]
    assert len(body["items"]) + len(last["items"]) == len(served)


@pytest.mark.parametrize("nsfw", [None, "None", "Soft", "Mature", "X", "true", "false"])
def test_nsfw_parameter_becomes_the_browsing_level_mask(fake_civitai, nsfw):
    mask = NSFW_MASKS[nsfw] if nsfw else 1
    params = {"limit": 200, **({"nsfw": nsfw} if nsfw else {})}
    items, _ = all_pages(fake_civitai, **params)
    expected = {i.id for i in fake_civitai.dataset.images if (i.browsing_level or 1) & mask}
    assert {i["id"] for i in items} == expected
    assert all((i["browsingLevel"] or 1) & mask for i in items)
    assert {NSFW_MASKS[k] for k in ("None", "Soft", "Mature", "X", "true")} == {1, 3, 7, 31, 60}


def test_meta_needs_with_meta_and_hidden_meta_stays_null(fake_civitai):
    dataset = fake_civitai.dataset
    version = 128713
    without, _ = all_pages(fake_civitai, modelVersionId=version, nsfw="X", limit=200)
    assert without and all(i["meta"] is None for i in without)
    with_meta, _ = all_pages(fake_civitai, modelVersionId=version, nsfw="X", withMeta="true")
    by_id = {i["id"]: i for i in with_meta}
    for source in dataset.select(version_id=version):
        meta = by_id[source.id]["meta"]
        if source.meta_hidden or source.meta is None:
            assert meta is None
        else:
            assert meta == source.meta  # unwrapped on the modelVersionId path
    assert any(s.meta_hidden for s in dataset.select(version_id=version))


def test_meta_is_wrapped_on_model_and_image_paths(fake_civitai):
    dataset = fake_civitai.dataset
    items, _ = all_pages(fake_civitai, modelId=BIG_MODEL, nsfw="X", withMeta="true", limit=200)
    for item in items:
        source = dataset.image(item["id"])
        visible = None if source.meta_hidden else source.meta
        assert item["meta"] == {"id": source.id, "meta": visible}
    hidden = next(i for i in dataset.images if i.meta_hidden)
    body = images(fake_civitai, imageId=hidden.id, nsfw="X", withMeta="true").json()
    assert body["items"][0]["meta"] == {"id": hidden.id, "meta": None}
    both = images(fake_civitai, modelId=BIG_MODEL, modelVersionId=128713, withMeta="true")
    assert all("id" not in (i["meta"] or {}) for i in both.json()["items"])


def test_items_have_the_documented_fields(fake_civitai):
    items, _ = all_pages(fake_civitai, nsfw="X", limit=200)
    for item in items:
        assert ITEM_KEYS <= set(item), item
        assert item["url"].startswith(fake_civitai.image_base_url + "/xG1nkqKTMzGDvpLrqFT7WA/")
        source = fake_civitai.dataset.image(item["id"])
        name = f"{source.uuid}.jpeg" if source.uuid_url else f"{item['id']}.jpeg"
        assert item["url"].endswith("/" + name) or item["url"].endswith(".mp4")
        assert item["nsfw"] == (item["nsfwLevel"] != "None")
        assert set(item["stats"]) >= {"likeCount", "heartCount", "commentCount", "cryCount"}
    untyped = [i for i in items if "type" not in i]
    served = [i for i in fake_civitai.dataset.images if i.nsfw_level != "Blocked"]
    assert untyped and len(untyped) == sum(i.type is None for i in served)


def test_filters(fake_civitai):
    dataset = fake_civitai.dataset
    served = [i for i in dataset.images if i.nsfw_level != "Blocked"]  # nsfw=X: no bit 32

    def ids(**params):
        return {i["id"] for i in all_pages(fake_civitai, nsfw="X", limit=200, **params)[0]}

    for name in (HOSTILE_CREATOR, UNICODE_CREATOR):  # the real API: ^[A-Za-z0-9_]*$ or 400
        assert images(fake_civitai, username=name).status_code == 400
    listed = ids(username="20250101")
    assert listed and listed == {i.id for i in dataset.select(username="20250101")}
    sample = dataset.images[10]
    assert ids(userId=sample.user_id) == {i.id for i in served if i.user_id == sample.user_id}
    assert ids(postId=sample.post_id) == {i.id for i in served if i.post_id == sample.post_id}
    assert ids(type="video") == {i.id for i in served if i.type == "video"}
    assert ids(baseModels="Pony") == {i.id for i in served if i.base_model == "Pony"}
    assert ids(tags=4) == {i.id for i in served if 4 in i.tag_ids}
    newest = sorted(dataset.images, key=lambda i: i.created_ms)[-5:]
    assert ids(period="Day") == {i.id for i in newest}
    assert ids(imageId=sample.id) == {sample.id}
    assert ids(imageId=1) == set() and ids(modelId=999999) == set()
    double = next(i for i in served if len(i.model_version_ids) == 2)
    for version_id in double.model_version_ids:
        assert double.id in ids(modelVersionId=version_id)


def test_sort_orders_and_cursor_paging_agree(fake_civitai):
    def listed(sort, limit=50):
        return all_pages(fake_civitai, nsfw="X", limit=limit, sort=sort)[0]

    newest = listed("Newest")
    assert [i["createdAt"] for i in newest] == sorted(
        (i["createdAt"] for i in newest), reverse=True
    )
    oldest = listed("Oldest")
    assert [i["id"] for i in oldest] == [i["id"] for i in reversed(newest)]
    reactions = [
        sum(i["stats"][k] for k in ("likeCount", "heartCount", "laughCount", "cryCount"))
        for i in listed("Most Reactions")
    ]
    assert reactions == sorted(reactions, reverse=True)
    comments = [i["stats"]["commentCount"] for i in listed("Most Comments")]
    assert comments == sorted(comments, reverse=True)
    shuffled = [i["id"] for i in listed("Random", limit=200)]
    assert shuffled == [i["id"] for i in listed("Random", limit=30)]
    assert sorted(shuffled) == sorted(i["id"] for i in newest) and shuffled != sorted(shuffled)


def test_model_endpoint_shapes_and_errors(fake_civitai):
    dataset = fake_civitai.dataset
    response = requests.get(f"{fake_civitai.base_url}/api/v1/models/{BIG_MODEL}", timeout=10)
    body = response.json()
    assert response.status_code == 200
    assert {"id", "name", "type", "nsfw", "creator", "tags", "modelVersions"} <= set(body)
    assert body["creator"]["username"] == dataset.model(BIG_MODEL).creator
    assert [v["id"] for v in body["modelVersions"]] == [128713, 109123, 43888]
    for version in body["modelVersions"]:
        assert {"id", "name", "baseModel", "files", "images", "downloadUrl"} <= set(version)
        assert version["files"] and version["images"]
        for image in version["images"]:
            assert "id" not in image and "meta" not in image
            image_id = int(re.search(r"/(\d+)\.jpeg$", image["url"]).group(1))
            assert version["id"] in dataset.image(image_id).model_version_ids
            assert image["nsfwLevel"] == (dataset.image(image_id).browsing_level or 1)
    hostile = requests.get(f"{fake_civitai.base_url}/api/v1/models/66666", timeout=10).json()
    assert hostile["name"] == HOSTILE_MODEL_NAME
    missing = requests.get(f"{fake_civitai.base_url}/api/v1/models/999", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "No model with id 999"}
    malformed = requests.get(f"{fake_civitai.base_url}/api/v1/models/abc", timeout=10)
    assert malformed.status_code == 400 and malformed.json()["error"]


def test_model_version_endpoint_shapes_and_errors(fake_civitai):
    url = f"{fake_civitai.base_url}/api/v1/model-versions"
    body = requests.get(f"{url}/128713", timeout=10).json()
    assert body["id"] == 128713 and body["modelId"] == BIG_MODEL
    assert body["model"] == {
        "name": "DreamShaper",
        "type": "Checkpoint",
        "nsfw": False,
        "poi": False,
    }
    assert 1 <= len(body["images"]) <= 10 and all("meta" in i for i in body["images"])
    assert any(i["meta"] and i["meta"].get("prompt") for i in body["images"])
    missing = requests.get(f"{url}/1", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "Model not found"}
    assert requests.get(f"{url}/12x", timeout=10).status_code == 400
    unknown = requests.get(f"{fake_civitai.base_url}/api/v1/nothing", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]


# ---------------------------------------------------------------------------------- image host
def test_original_serves_real_bytes_and_content_types(fake_civitai):
    dataset = fake_civitai.dataset
    for kind, ctype in (
        ("png", "image/png"),
        ("jpeg", "image/jpeg"),
        ("webp", "image/webp"),
        ("mp4", "video/mp4"),
    ):
        source = next(i for i in dataset.images if i.media == kind)
        url = fake_civitai.image_url(source.id, original=True)
        assert url.endswith(".jpeg") or url.endswith(".mp4")
        response = requests.get(url, timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == ctype
        assert int(response.headers["Content-Length"]) == len(response.content)
        assert response.content == dataset.original_bytes(source.id)
        assert magic_kind(response.content) == kind


def test_width_serves_a_smaller_cached_jpeg(fake_civitai):
    source = next(i for i in fake_civitai.dataset.images if i.media == "png" and i.width >= 256)
    url = fake_civitai.image_url(source.id, width=100)
    first = requests.get(url, timeout=10)
    assert first.headers["Content-Type"] == "image/jpeg" and magic_kind(first.content) == "jpeg"
    with Image.open(io.BytesIO(first.content)) as picture:
        assert picture.width == 100
        assert "parameters" not in getattr(picture, "text", {})
    assert requests.get(url, timeout=10).content == first.content
    listed = requests.get(fake_civitai.image_url(source.id), timeout=10)
    with Image.open(io.BytesIO(listed.content)) as picture:
        assert picture.size == (source.width, source.height)
    bad = url.replace("width=100", "width=abc")
    assert requests.get(bad, timeout=10).status_code == 400
    gone = url.replace(source.uuid, "00000000-0000-4000-8000-000000000000")
    assert requests.get(gone, timeout=10).status_code == 404


def test_range_requests(fake_civitai):
    source = next(i for i in fake_civitai.dataset.images if i.media == "jpeg")
    url = fake_civitai.image_url(source.id, original=True)
    data = fake_civitai.dataset.original_bytes(source.id)
    size = len(data)
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{size}"
    assert part.headers["Content-Length"] == "10"
    tail = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[100:]
    suffix = requests.get(url, headers={"Range": "bytes=-5"}, timeout=10)
    assert suffix.content == data[-5:]
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"
    stale = requests.get(url, headers={"Range": "bytes=10-", "If-Range": '"old"'}, timeout=10)
    assert stale.status_code == 200 and stale.content == data
    etag = part.headers["ETag"]
    fresh = requests.get(url, headers={"Range": "bytes=10-", "If-Range": etag}, timeout=10)
    assert fresh.status_code == 206
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(size)
    assert head.content == b""


def test_blob_url_streams_generated_bytes_with_range(fake_civitai):
    url = fake_civitai.blob_url(3_000_000, kind="mp4")
    response = requests.get(url, timeout=10)
    assert response.headers["Content-Type"] == "video/mp4"
    assert len(response.content) == 3_000_000 and magic_kind(response.content) == "mp4"
    part = requests.get(url, headers={"Range": "bytes=2999990-"}, timeout=10)
    assert part.status_code == 206 and part.content == response.content[-10:]
    jpeg = requests.get(fake_civitai.blob_url(1000, kind="jpeg"), timeout=10)
    assert jpeg.headers["Content-Type"] == "image/jpeg" and magic_kind(jpeg.content) == "jpeg"


def test_redirect_url_answers_302_to_the_target(fake_civitai):
    target = fake_civitai.image_url(fake_civitai.dataset.images[0].id, original=True)
    url = fake_civitai.redirect_url(target)
    assert url.startswith(fake_civitai.base_url)
    raw = requests.get(url, allow_redirects=False, timeout=10)
    assert raw.status_code == 302 and raw.headers["Location"] == target
    followed = requests.get(url, timeout=10)
    assert followed.content == fake_civitai.dataset.original_bytes(
        fake_civitai.dataset.images[0].id
    )
    assert [r.server for r in fake_civitai.log] == ["api", "api", "image"]


def test_keep_alive_reuses_one_connection(fake_civitai):
    with requests.Session() as session:
        for _ in range(3):
            session.get(
                fake_civitai.base_url + "/api/v1/models/4201", timeout=10
            ).raise_for_status()
    assert len({r.connection_id for r in fake_civitai.api_requests()}) == 1


# ---------------------------------------------------------------------------------- knobs
def test_request_log_records_what_arrived(fake_civitai):
    images(fake_civitai, modelId=BIG_MODEL, limit=3)
    requests.get(
        fake_civitai.image_url(fake_civitai.dataset.images[0].id),
        headers={"authorization": "Bearer secret-key"},
        timeout=10,
    )
    api, image = fake_civitai.api_requests(), fake_civitai.image_requests()
    assert len(api) == 1 and len(image) == 1
    assert api[0].method == "GET" and api[0].path == "/api/v1/images" and api[0].status == 200
    assert api[0].query == {"modelId": str(BIG_MODEL), "limit": "3"}
    assert image[0].headers["Authorization"] == "Bearer secret-key"
    assert image[0].completed and image[0].bytes_sent > 0
    assert api[0].time <= image[0].time
    fake_civitai.reset()
    assert fake_civitai.log == [] and fake_civitai.max_concurrent_image_requests == 0


def test_queue_status_is_used_up_in_order(fake_civitai):
    faults = fake_civitai.faults
    faults.queue_status("/api/v1/images", 429, count=2)
    faults.queue_status("/api/v1/images", 503, headers={"Retry-After": "2"})
    first, second, third, fourth = (images(fake_civitai) for _ in range(4))
    assert (first.status_code, second.status_code) == (429, 429)
    assert first.json()["error"] and "Retry-After" not in first.headers
    assert third.status_code == 503 and third.headers["Retry-After"] == "2"
    assert third.json() == {"error": "Server busy, please retry shortly."}
    assert fourth.status_code == 200
    assert [r.status for r in fake_civitai.log] == [429, 429, 503, 200]


def test_queue_status_can_target_one_server(fake_civitai):
    fake_civitai.faults.queue_status("*", 500, body="<html>oops</html>", server="image")
    assert images(fake_civitai).status_code == 200
    url = fake_civitai.image_url(fake_civitai.dataset.images[0].id)
    broken = requests.get(url, timeout=10)
    assert broken.status_code == 500 and broken.headers["Content-Type"].startswith("text/html")
    assert requests.get(url, timeout=10).status_code == 200
    with pytest.raises(ValueError):
        fake_civitai.faults.queue_status("*", 500, server="cdn")


def test_cut_after_closes_the_socket_mid_body(fake_civitai):
    url = fake_civitai.blob_url(200_000)
    fake_civitai.faults.cut_after("*/original=true/*", 50_000, count=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10)
    record = fake_civitai.image_requests()[-1]
    assert record.status == 200 and record.bytes_sent == 50_000 and not record.completed
    assert len(requests.get(url, timeout=10).content) == 200_000


def test_html_instead_not_found_and_clear(fake_civitai):
    url = fake_civitai.image_url(fake_civitai.dataset.images[0].id, original=True)
    fake_civitai.faults.html_instead("*/original=true/*", count=1)
    html = requests.get(url, timeout=10)
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert html.text.startswith("<!DOCTYPE html>")
    fake_civitai.faults.not_found("/api/v1/models/*")
    for _ in range(3):
        missing = requests.get(fake_civitai.base_url + "/api/v1/models/4201", timeout=10)
        assert missing.status_code == 404 and missing.json()["error"]
    fake_civitai.faults.clear()
    assert requests.get(fake_civitai.base_url + "/api/v1/models/4201", timeout=10).ok
    assert magic_kind(requests.get(url, timeout=10).content) != "unknown"


def test_delay_and_latency_stall_before_the_headers(fake_civitai):
    fake_civitai.faults.delay("/api/v1/models/*", 0.4, count=1)
    url = fake_civitai.base_url + "/api/v1/models/4201"
    started = time.perf_counter()
    requests.get(url, timeout=10)
    slow = time.perf_counter() - started
    started = time.perf_counter()
    requests.get(url, timeout=10)
    fast = time.perf_counter() - started
    assert slow >= 0.4 and fast < 0.3
    fake_civitai.latency = 0.25
    started = time.perf_counter()
    requests.get(url, timeout=10)
    assert time.perf_counter() - started >= 0.25
    fake_civitai.faults.delay("/api/v1/models/*", 1.0, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url, timeout=0.5)


def test_hold_keeps_requests_waiting_until_released(fake_civitai):
    hold = fake_civitai.faults.hold("/api/v1/models/*")
    url = fake_civitai.base_url + "/api/v1/models/4201"
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(requests.get(url, timeout=30)))
    waiter.start()
    assert hold.wait_arrived(10)
    waiter.join(0.3)
    assert waiter.is_alive() and answers == []  # held: no headers yet
    assert requests.get(fake_civitai.base_url + "/api/v1/images", timeout=10).ok  # others pass
    hold.release()
    waiter.join(10)
    assert answers and answers[0].ok
    assert requests.get(url, timeout=10).ok  # the hold has ended


def test_ignore_range_answers_200_with_the_full_body(fake_civitai):
    source = fake_civitai.dataset.images[0]
    fake_civitai.faults.ignore_range = True
    url = fake_civitai.image_url(source.id, original=True)
    response = requests.get(url, headers={"Range": "bytes=10-"}, timeout=10)
    assert response.status_code == 200
    assert response.content == fake_civitai.dataset.original_bytes(source.id)


def _timed_parallel(urls):
    results = [None] * len(urls)

    def fetch(index, url):
        results[index] = len(requests.get(url, timeout=20).content)

    threads = [threading.Thread(target=fetch, args=(i, u)) for i, u in enumerate(urls)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, results


def test_bandwidth_is_per_response_and_total_bandwidth_is_shared(fake_civitai):
    size = 100_000
    urls = [fake_civitai.blob_url(size) for _ in range(4)]
    fake_civitai.bandwidth = 500_000  # 0.2 s per blob, for each response on its own
    alone, _ = _timed_parallel(urls[:1])
    four, sizes = _timed_parallel(urls)
    assert sizes == [size] * 4
    assert 0.19 <= alone < 0.6 and 0.19 <= four < 0.6
    fake_civitai.bandwidth = None
    fake_civitai.total_bandwidth = 500_000  # 0.8 s for the four together
    shared, _ = _timed_parallel(urls)
    assert 0.78 <= shared < 2.0


def test_max_concurrent_image_requests(fake_civitai):
    fake_civitai.latency = 0.3
    urls = [fake_civitai.image_url(i.id) for i in fake_civitai.dataset.images[:4]]
    _timed_parallel(urls)
    assert fake_civitai.max_concurrent_image_requests == 4
    assert fake_civitai.max_concurrent_api_requests == 0


def test_client_disconnects_are_logged_quietly(fake_civitai, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="scripts.civitai_manager_libs.fake_civitai")
    fake_civitai.bandwidth = 2_000_000
    url = fake_civitai.blob_url(5_000_000)
    path = url[len(fake_civitai.image_base_url) :]
    port = int(fake_civitai.image_base_url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /xG1nkqKTMzGDvpLrqFT7WA/")  # half a request line, then a reset
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    time.sleep(0.5)  # the throttled writers notice the closed sockets within a few chunks
    assert len(fake_civitai.log) == 3 and not any(r.completed for r in fake_civitai.log)
    assert requests.get(fake_civitai.base_url + "/api/v1/models/4201", timeout=10).ok
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err


def test_other_methods_are_refused(fake_civitai):
    response = requests.post(fake_civitai.base_url + "/api/v1/images", data=b"x" * 10, timeout=10)
    assert response.status_code == 405 and response.json()["error"]


def test_stop_frees_the_ports_and_closes_kept_alive_connections():
    threads_before = threading.active_count()
    fake = FakeCivitai(Dataset.generate(n_images=3, image_kb=1)).start()
    session = requests.Session()
    session.get(fake.base_url + "/api/v1/images", timeout=10).raise_for_status()
    port = int(fake.base_url.rsplit(":", 1)[1])
    fake.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/api/v1/images", timeout=5)
    with pytest.raises(RuntimeError):
        fake.base_url
    session.close()
    deadline = time.time() + 5
    while threading.active_count() > threads_before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= threads_before, [t.name for t in threading.enumerate()]
    again = FakeCivitai(Dataset.generate(n_images=3, image_kb=1), port=port).start()
    try:
        assert again.base_url.endswith(f":{port}")
    finally:
        again.stop()


def test_command_line_prints_the_urls_and_serves(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.civitai_manager_libs.fake_civitai", "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api_line = process.stdout.readline()
        image_line = process.stdout.readline()
        api = re.search(r"http://127\.0\.0\.1:\d+", api_line).group(0)
        image_host = re.search(r"http://127\.0\.0\.1:\d+", image_line).group(0)
        body = requests.get(api + "/api/v1/images", params={"limit": 1}, timeout=10).json()
        assert body["items"][0]["url"].startswith(image_host)
        assert requests.get(body["items"][0]["url"], timeout=10).status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
        process.stderr.close()


def test_kept_alive_requests_do_not_stall(fake_civitai):
    """Headers and body leave in separate writes: without TCP_NODELAY each request waits ~40 ms."""
    url = fake_civitai.base_url + "/api/v1/models/4201"
    with requests.Session() as session:
        session.get(url, timeout=10)
        started = time.perf_counter()
        for _ in range(40):
            session.get(url, timeout=10)
        elapsed = time.perf_counter() - started
    assert elapsed < 1.2, f"40 kept-alive requests took {elapsed:.2f} s"


def test_a_burst_of_parallel_connections_is_served(fake_civitai):
    ids = [i.id for i in fake_civitai.dataset.images[:32]]
    urls = [fake_civitai.image_url(i, original=True) for i in ids]
    _, sizes = _timed_parallel(urls)
    assert sizes == [len(fake_civitai.dataset.original_bytes(i)) for i in ids]
    assert all(r.status == 200 and r.completed for r in fake_civitai.image_requests())


def test_parallel_first_requests_for_one_image_get_identical_bytes():
    dataset = Dataset.default(seed=7)  # a fresh byte cache
    with FakeCivitai(dataset) as fake:
        source = next(i for i in dataset.images if i.embedded == "a1111")
        url = fake.image_url(source.id, width=200)
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(requests.get(url, timeout=10).content))
            for _ in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert results[0] == dataset.sized_bytes(source.id, 200)


def test_large_generated_listing_pages_in_order():
    dataset = Dataset.generate(n_images=3000, image_kb=1)
    with FakeCivitai(dataset) as fake:
        started = time.perf_counter()
        items, metas = all_pages(fake, modelId=dataset.models[0].id, limit=200, sort="Newest")
        elapsed = time.perf_counter() - started
    assert len(metas) == 15 and [i["id"] for i in items] == [i.id for i in reversed(dataset.images)]
    assert elapsed < 10


def test_command_line_reports_a_busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "scripts.civitai_manager_libs.fake_civitai",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2
    assert "cannot start the fake Civitai" in done.stderr and "Traceback" not in done.stderr
