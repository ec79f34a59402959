"""CivitaiAPI against the local fake Civitai: paging, NSFW masks, limits, look-ups, URL helpers."""

import math
import threading
from itertools import combinations

import pytest
import requests

from scripts.civitai_manager_libs import http_client, setting
from scripts.civitai_manager_libs.civitai.api import (
    CivitaiAPI,
    image_id_from_url,
    item_level,
    nsfw_param,
    original_url,
    sized_url,
    to_image_item,
    unwrap_meta,
)
from scripts.civitai_manager_libs.errors import (
    InvalidQueryError,
    InvalidResponseError,
    NotFoundError,
    ServerError,
)
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.records import NSFW_LEVELS

N_BIG = 650  # 4 pages of 200


def _client(fake):
    return CivitaiHttpClient(base_url=fake.base_url, max_retries=0, timeout=10)


def _image_queries(fake):
    """The query (as a dict) of every request the API host received for /api/v1/images."""
    return [dict(r.query) for r in fake.api_requests() if r.path == "/api/v1/images"]


@pytest.fixture(scope="module")
def big_fake():
    with FakeCivitai(dataset=Dataset.generate(n_images=N_BIG, image_kb=1)) as fake:
        yield fake


@pytest.fixture
def big(big_fake):
    big_fake.reset()
    return big_fake


@pytest.fixture
def api(fake_civitai):
    return CivitaiAPI(_client(fake_civitai))


@pytest.fixture
def restore_settings():
    yield
    setting.reset()


# -- paging ----------------------------------------------------------------------------------


def test_pages_with_cursors_to_the_end(big):
    api = CivitaiAPI(_client(big))
    items = list(api.iter_images({"modelId": 500_000}, nsfw_levels=["None"]))

    assert sorted(item.id for item in items) == [img.id for img in big.dataset.images]
    assert len({item.id for item in items}) == N_BIG
    queries = _image_queries(big)
    assert len(queries) == math.ceil(N_BIG / 200)
    for index, query in enumerate(queries):
        assert query["limit"] == "200"
        assert query["withMeta"] == "true"
        assert query["nsfw"] == "None"
        assert query["modelId"] == "500000"
        assert "page" not in query
        assert ("cursor" in query) == (index > 0)
    cursors = [q["cursor"] for q in queries[1:]]
    assert len(set(cursors)) == len(cursors)


def test_items_are_yielded_before_the_next_page_is_fetched(big):
    api = CivitaiAPI(_client(big))
    events = []

    def on_page(cursor_used, next_cursor, count):
        events.append(("page", cursor_used, next_cursor, count, len(_image_queries(big))))

    stream = api.iter_images({"modelId": 500_000}, nsfw_levels=["None"], on_page=on_page)
    first = next(stream)
    assert first.id is not None
    assert len(_image_queries(big)) == 1  # only the first page has been asked for
    for _ in range(199):
        next(stream)
    assert len(_image_queries(big)) == 1
    next(stream)  # item 201 needs the second page
    assert len(_image_queries(big)) == 2
    rest = list(stream)
    assert len(rest) == N_BIG - 201

    counts = [event[3] for event in events]
    assert counts == [200, 200, 200, 50]
    assert events[0][1] is None
    for previous, current in zip(events, events[1:]):
        assert current[1] == previous[2]  # each page used the cursor the previous one announced
    assert events[-1][2] is None
    # on_page ran when its page had just been fetched (request count == page number)
    assert [event[4] for event in events] == [1, 2, 3, 4]


def test_on_page_runs_before_the_page_items_are_yielded(big):
    api = CivitaiAPI(_client(big))
    seen = []
    yielded = 0

    def on_page(cursor_used, next_cursor, count):
        seen.append(yielded)

    for _ in api.iter_images({"modelId": 500_000}, nsfw_levels=["None"], on_page=on_page):
        yielded += 1
    assert seen == [0, 200, 400, 600]


def test_start_cursor_resumes_where_a_crawl_stopped(big):
    api = CivitaiAPI(_client(big))
    cursors = []
    first_two_pages = []
    stream = api.iter_images(
        {"modelId": 500_000}, nsfw_levels=["None"], on_page=lambda c, n, k: cursors.append(n)
    )
    for item in stream:
        first_two_pages.append(item.id)
        if len(first_two_pages) == 400:
            break
    stream.close()
    big.reset()
    rest = [item.id for item in api.iter_images({"modelId": 500_000}, ["None"], 0, cursors[1])]
    assert len(_image_queries(big)) == 2
    assert _image_queries(big)[0]["cursor"] == cursors[1]
    assert sorted(first_two_pages + rest) == [img.id for img in big.dataset.images]


def test_limit_counts_items_and_shrinks_the_page(big):
    api = CivitaiAPI(_client(big))
    five = list(api.iter_images({"modelId": 500_000}, nsfw_levels=["None"], limit=5))
    assert len(five) == 5
    assert [q["limit"] for q in _image_queries(big)] == ["5"]

    big.reset()
    many = list(api.iter_images({"modelId": 500_000}, nsfw_levels=["None"], limit=250))
    assert len(many) == 250 and len({i.id for i in many}) == 250
    assert [q["limit"] for q in _image_queries(big)] == ["200", "200"]

    big.reset()
    exact = list(api.iter_images({"modelId": 500_000}, nsfw_levels=["None"], limit=200))
    assert len(exact) == 200
    assert len(_image_queries(big)) == 1  # no request for a page nobody will read


def test_limit_counts_after_nsfw_filtering(fake_civitai, api):
    dataset = fake_civitai.dataset
    expected = [img.id for img in dataset.select(levels=["Mature"])]
    assert len(expected) >= 3, "the default dataset needs a few Mature images"
    items = list(api.iter_images({}, nsfw_levels=["Mature"], limit=3))
    assert len(items) == 3
    assert all(item.nsfw_level == "Mature" for item in items)
    assert {item.id for item in items} <= set(expected)


def test_bad_limit_is_refused_before_any_request(fake_civitai, api):
    with pytest.raises(InvalidQueryError, match="limit"):
        api.iter_images({"modelId": 1}, limit=-1)
    assert fake_civitai.api_requests() == []


# -- NSFW ------------------------------------------------------------------------------------

EXPECTED_MASK = {
    ("None",): "None",
    ("Soft",): "Soft",
    ("Mature",): "true",
    ("X",): "true",
    ("None", "Soft"): "Soft",
    ("None", "Mature"): "Mature",
    ("None", "X"): "X",
    ("Soft", "Mature"): "Mature",
    ("Soft", "X"): "X",
    ("Mature", "X"): "true",
    ("None", "Soft", "Mature"): "Mature",
    ("None", "Soft", "X"): "X",
    ("None", "Mature", "X"): "X",
    ("Soft", "Mature", "X"): "X",
    ("None", "Soft", "Mature", "X"): "X",
}
SUBSETS = [c for n in range(1, 5) for c in combinations(NSFW_LEVELS, n)]
_BITS = {"None": 1, "Soft": 2, "Mature": 4, "X": 8 | 16}
EXPECTED_BITS = {levels: sum(_BITS[level] for level in levels) for levels in SUBSETS}


def test_nsfw_param_table_is_complete():
    assert sorted(EXPECTED_MASK) == sorted(SUBSETS)
    for levels, mask in EXPECTED_MASK.items():
        assert nsfw_param(levels) == mask
        assert nsfw_param(list(reversed(levels))) == mask
        assert nsfw_param(",".join(level.lower() for level in levels)) == mask


@pytest.mark.parametrize("bad", [[], ["PG"], "", ["None", "Extreme"]])
def test_nsfw_param_refuses_unknown_or_empty_levels(bad):
    with pytest.raises(InvalidQueryError):
        nsfw_param(bad)


def test_each_nsfw_combination_asks_the_smallest_mask_and_returns_exact_levels(fake_civitai, api):
    dataset = fake_civitai.dataset
    assert {img.nsfw_level for img in dataset.images} >= set(NSFW_LEVELS)
    for levels in SUBSETS:
        fake_civitai.reset()
        items = list(api.iter_images({}, nsfw_levels=levels))
        expected = {img.id for img in dataset.select(levels=levels)}
        assert {item.id for item in items} == expected, levels
        assert len(items) == len(expected), levels
        assert {item.nsfw_level for item in items} == set(levels), levels
        masks = {q["nsfw"] for q in _image_queries(fake_civitai)}
        assert masks == {EXPECTED_MASK[levels]}, levels
        exact = {q["browsingLevel"] for q in _image_queries(fake_civitai)}
        assert exact == {str(EXPECTED_BITS[levels])}, levels


def test_default_levels_are_the_ones_given_to_the_api(fake_civitai, api):
    """The shell passes the setting ``images.default_nsfw_filter`` (settings read at the edges)."""
    api = CivitaiAPI(client=api.client, default_levels=["Soft"])
    items = list(api.iter_images({}))
    assert items and {item.nsfw_level for item in items} == {"Soft"}
    assert {q["nsfw"] for q in _image_queries(fake_civitai)} == {"Soft"}


def test_nsfw_in_params_is_used_when_no_levels_are_given(fake_civitai, api):
    items = list(api.iter_images({"nsfw": "Mature"}))
    assert {item.nsfw_level for item in items} == {"None", "Soft", "Mature"}
    items = list(api.iter_images({"nsfw": "true"}))
    assert {item.nsfw_level for item in items} == {"Mature", "X"}
    # explicit levels win over the params' nsfw value
    fake_civitai.reset()
    items = list(api.iter_images({"nsfw": "X"}, nsfw_levels=["None"]))
    assert {item.nsfw_level for item in items} == {"None"}
    assert {q["nsfw"] for q in _image_queries(fake_civitai)} == {"None"}


def test_an_exact_level_list_in_params_is_kept_exactly(fake_civitai, api):
    for value in (["None", "Mature"], "none,mature", ("Mature", "None")):
        fake_civitai.reset()
        items = list(api.iter_images({"nsfw": value}))
        assert {item.nsfw_level for item in items} == {"None", "Mature"}, value
        assert {q["nsfw"] for q in _image_queries(fake_civitai)} == {"Mature"}
    with pytest.raises(InvalidQueryError, match="Unknown nsfw filter"):
        api.iter_images({"nsfw": "maybe"})


def test_item_level_reads_names_numbers_and_flags():
    assert item_level({"nsfwLevel": "Mature"}) == "Mature"
    assert item_level({"nsfwLevel": "soft"}) == "Soft"
    assert item_level({"nsfwLevel": 1}) == "None"
    assert item_level({"nsfwLevel": 2}) == "Soft"
    assert item_level({"nsfwLevel": 4}) == "Mature"
    assert item_level({"nsfwLevel": 16}) == "X"
    assert item_level({"browsingLevel": 8}) == "X"
    assert item_level({"nsfw": False}) == "None"
    assert item_level({}) == "X"  # unknown rating is never shown as safe


# -- listing contents ------------------------------------------------------------------------


def test_items_carry_the_listing_context_and_fields(fake_civitai, api):
    dataset = fake_civitai.dataset
    model = next(m for m in dataset.models if len(dataset.select(model_id=m.id)) > 3)
    version = model.versions[0]
    items = list(api.iter_images({"modelVersionId": version.id}, nsfw_levels=NSFW_LEVELS))
    expected = {img.id: img for img in dataset.select(version_id=version.id)}
    assert {item.id for item in items} == set(expected)
    for item in items:
        source = expected[item.id]
        assert item.version_id == version.id
        assert item.url.endswith(source.listed_path)
        assert item.creator == source.username
        assert item.post_id == source.post_id
        assert item.nsfw_level == source.nsfw_level
        assert item.width == source.width and item.height == source.height
        assert item.type == (source.type or "image")
        assert item.created_at == source.created_at
        assert item.raw["url"] == item.url
        if source.meta is not None and not source.meta_hidden:
            assert item.meta == source.meta


def test_items_without_type_default_to_image(fake_civitai, api):
    untyped = [img for img in fake_civitai.dataset.images if img.type is None]
    assert untyped, "the default dataset has a few old items without 'type'"
    item = api.get_image(untyped[0].id)
    assert "type" not in item.raw
    assert item.type == "image"


def test_wrapped_meta_is_unwrapped(fake_civitai, api):
    dataset = fake_civitai.dataset
    model = next(m for m in dataset.models if any(i.meta for i in dataset.select(model_id=m.id)))
    items = list(api.iter_images({"modelId": model.id}, nsfw_levels=NSFW_LEVELS))
    with_meta = [item for item in items if item.meta]
    assert with_meta
    for item in with_meta:
        source = dataset.image(item.id)
        assert item.meta == source.meta
        assert item.raw["meta"] == source.meta
        assert set(item.meta) != {"id", "meta"}
        assert item.model_id == model.id


def test_unwrap_meta_shapes():
    assert unwrap_meta({"id": 5, "meta": {"prompt": "a"}}) == {"prompt": "a"}
    assert unwrap_meta({"id": 5, "meta": None}) is None
    assert unwrap_meta({"prompt": "a", "meta": "x"}) == {"prompt": "a", "meta": "x"}
    assert unwrap_meta(None) is None
    assert unwrap_meta("not a dict") is None


def test_to_image_item_takes_the_id_from_the_url_and_refuses_items_without_url():
    item = to_image_item({"url": "https://h/x/uuid/width=450/12345.jpeg", "nsfwLevel": 1})
    assert item.id == 12345 and item.nsfw_level == "None" and item.type == "image"
    assert image_id_from_url("https://h/x/uuid/width=450/name.jpeg") is None
    with pytest.raises(InvalidResponseError, match="without a URL"):
        to_image_item({"id": 3})


def test_unknown_creator_lists_nothing(fake_civitai, api):
    assert list(api.iter_images({"username": "nobody_by_that_name"}, NSFW_LEVELS)) == []
    assert len(_image_queries(fake_civitai)) == 1


def test_creator_images(fake_civitai, api):
    creator = fake_civitai.dataset.creators[0].username
    items = list(api.iter_images({"username": creator}, nsfw_levels=NSFW_LEVELS))
    assert {i.id for i in items} == {i.id for i in fake_civitai.dataset.select(username=creator)}
    assert {i.creator for i in items} == {creator}


def test_server_errors_pass_through_typed(fake_civitai, api):
    fake_civitai.faults.queue_status("/api/v1/images", 500, count=10)
    with pytest.raises(ServerError):
        list(api.iter_images({}, nsfw_levels=["None"]))


def test_html_instead_of_json_is_an_invalid_response(fake_civitai, api):
    fake_civitai.faults.html_instead("/api/v1/images", count=10)
    with pytest.raises(InvalidResponseError):
        list(api.iter_images({}, nsfw_levels=["None"]))


# -- the gallery's page ----------------------------------------------------------------------


def test_get_image_page_walks_forward_with_cursors(fake_civitai, api):
    dataset = fake_civitai.dataset
    expected = {img.id for img in dataset.select(levels=["None", "Soft"])}
    seen = []
    cursor = None
    pages = 0
    while True:
        page = api.get_image_page({}, cursor=cursor, limit=50, nsfw_levels=["None", "Soft"])
        pages += 1
        assert page.cursor == cursor
        assert len(page.items) <= 50
        seen.extend(item.id for item in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    assert pages == math.ceil(len(expected) / 50)
    assert {q["limit"] for q in _image_queries(fake_civitai)} == {"50"}


def test_get_image_page_default_size_is_the_one_given_to_the_api(fake_civitai, api):
    """The shell passes the setting ``gallery_page_size`` (settings read at the edges)."""
    page = CivitaiAPI(client=api.client, page_size=7).get_image_page({}, nsfw_levels=NSFW_LEVELS)
    assert len(page.items) == 7
    assert page.cursor is None and page.next_cursor
    assert _image_queries(fake_civitai)[0]["limit"] == "7"


def test_get_image_page_refuses_a_bad_size(api):
    with pytest.raises(InvalidQueryError, match="between 1 and 200"):
        api.get_image_page({}, limit=500)


# -- look-ups --------------------------------------------------------------------------------


def test_get_model_lists_versions_and_their_images_without_ids(fake_civitai, api):
    dataset = fake_civitai.dataset
    fake_model = dataset.models[0]
    model = api.get_model(fake_model.id)
    assert model.id == fake_model.id and model.name == fake_model.name
    assert model.type == fake_model.type and model.nsfw == fake_model.nsfw
    assert model.creator == fake_model.creator
    assert [v.id for v in model.versions] == [v.id for v in fake_model.versions]
    shown = [image for version in model.versions for image in version.images]
    assert shown, "the fake lists showcase images under each version"
    for version in model.versions:
        assert version.model_id == fake_model.id and version.model_name == fake_model.name
        for image in version.images:
            assert "id" not in image.raw
            assert image.id is not None and image.id == image_id_from_url(image.url)
            assert version.id in dataset.image(image.id).model_version_ids
            assert image.version_id == version.id and image.model_id == fake_model.id


def test_get_model_version(fake_civitai, api):
    dataset = fake_civitai.dataset
    fake_model = dataset.models[1]
    fake_version = fake_model.versions[-1]
    version = api.get_model_version(fake_version.id)
    assert version.id == fake_version.id and version.name == fake_version.name
    assert version.model_id == fake_model.id and version.model_name == fake_model.name
    assert version.base_model == fake_version.base_model
    for image in version.images:
        assert version.id in dataset.image(image.id).model_version_ids


def test_get_image_returns_meta_at_any_level(fake_civitai, api):
    dataset = fake_civitai.dataset
    source = next(i for i in dataset.images if i.nsfw_level == "X" and i.meta and not i.meta_hidden)
    image = api.get_image(source.id)
    assert image.id == source.id and image.nsfw_level == "X"
    assert image.meta == source.meta
    query = _image_queries(fake_civitai)[0]
    assert query["imageId"] == str(source.id)
    assert query["withMeta"] == "true" and query["nsfw"] == "X"


def test_default_client_follows_the_base_url_setting(fake_civitai, restore_settings):
    setting.set("civitai_base_url", fake_civitai.base_url)
    http_client.reset_http_client()
    try:
        model = CivitaiAPI().get_model(fake_civitai.dataset.models[0].id)
    finally:
        http_client.reset_http_client()
    assert model.name == fake_civitai.dataset.models[0].name
    assert [r.path for r in fake_civitai.api_requests()] == [f"/api/v1/models/{model.id}"]


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda api: api.get_model(987654321), "model 987654321 was not found on Civitai"),
        (
            lambda api: api.get_model_version(987654321),
            "model version 987654321 was not found on Civitai",
        ),
        (lambda api: api.get_image(987654321), "image 987654321 was not found on Civitai"),
    ],
    ids=["model", "version", "image"],
)
def test_not_found_names_what_was_asked(fake_civitai, api, call, message):
    with pytest.raises(NotFoundError) as info:
        call(api)
    assert message in str(info.value)


@pytest.mark.parametrize("bad", [0, -3, "abc", None, 1.5])
def test_look_ups_refuse_bad_ids_before_any_request(fake_civitai, api, bad):
    with pytest.raises(InvalidQueryError, match="positive number"):
        api.get_model(bad)
    assert fake_civitai.api_requests() == []


# -- loop guard and odd bodies (requests-mock) -----------------------------------------------

MOCK_BASE = "https://api.mock.test"


def _mock_item(image_id, level="None"):
    return {
        "id": image_id,
        "url": f"https://img.mock.test/a/u/width=1/{image_id}.jpeg",
        "nsfwLevel": level,
    }


def _mock_pages(requests_mock, pages):
    """pages: {cursor_or_None: (ids, next_cursor)} served on /api/v1/images."""

    calls = []

    def respond(request, context):
        calls.append(request.url)
        assert len(calls) <= 10, "the crawl did not stop on a repeated cursor"
        cursor = request.qs.get("cursor", [None])[0]
        ids, next_cursor = pages[cursor]
        metadata = {"nextCursor": next_cursor} if next_cursor else {}
        return {"items": [_mock_item(i) for i in ids], "metadata": metadata}

    return requests_mock.get(f"{MOCK_BASE}/api/v1/images", json=respond)


def test_a_repeated_cursor_stops_the_crawl(requests_mock):
    matcher = _mock_pages(requests_mock, {None: ([1, 2], "c1"), "c1": ([3, 4], "c1")})
    api = CivitaiAPI(CivitaiHttpClient(base_url=MOCK_BASE, max_retries=0))
    got = []
    with pytest.raises(InvalidResponseError, match=r"already gave \('c1'\)"):
        for item in api.iter_images({"modelId": 1}, nsfw_levels=["None"]):
            got.append(item.id)
    assert got == [1, 2, 3, 4]
    assert matcher.call_count == 2


def test_a_cursor_cycle_stops_the_crawl(requests_mock):
    matcher = _mock_pages(requests_mock, {None: ([1], "a"), "a": ([2], "b"), "b": ([3], "a")})
    api = CivitaiAPI(CivitaiHttpClient(base_url=MOCK_BASE, max_retries=0))
    with pytest.raises(InvalidResponseError, match="endless loop"):
        list(api.iter_images({"modelId": 1}, nsfw_levels=["None"]))
    assert matcher.call_count == 3


def test_next_page_url_is_used_when_next_cursor_is_missing(requests_mock):
    def respond(request, context):
        if "cursor" not in request.qs:
            return {
                "items": [_mock_item(1)],
                "metadata": {"nextPage": f"{MOCK_BASE}/api/v1/images?limit=200&cursor=77"},
            }
        assert request.qs["cursor"] == ["77"]
        return {"items": [_mock_item(2)], "metadata": {}}

    matcher = requests_mock.get(f"{MOCK_BASE}/api/v1/images", json=respond)
    api = CivitaiAPI(CivitaiHttpClient(base_url=MOCK_BASE, max_retries=0))
    assert [i.id for i in api.iter_images({}, nsfw_levels=["None"])] == [1, 2]
    assert matcher.call_count == 2


def test_a_body_without_items_is_an_invalid_response(requests_mock):
    requests_mock.get(f"{MOCK_BASE}/api/v1/images", json={"error": None, "data": []})
    api = CivitaiAPI(CivitaiHttpClient(base_url=MOCK_BASE, max_retries=0))
    with pytest.raises(InvalidResponseError, match="without an 'items' list"):
        list(api.iter_images({"modelId": 3}, nsfw_levels=["None"]))


def test_unusable_items_are_skipped_not_fatal(requests_mock, caplog):
    requests_mock.get(
        f"{MOCK_BASE}/api/v1/images",
        json={"items": [{"id": 1}, "junk", _mock_item(2)], "metadata": {}},
    )
    api = CivitaiAPI(CivitaiHttpClient(base_url=MOCK_BASE, max_retries=0))
    assert [i.id for i in api.iter_images({}, nsfw_levels=["None"])] == [2]
    assert "skipping an unusable listed image" in caplog.text


# -- image URLs ------------------------------------------------------------------------------

REAL = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/3f2e-uuid/width=450/123.jpeg"


@pytest.mark.parametrize(
    "url,original,sized",
    [
        (
            REAL,
            "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/3f2e-uuid/original=true/123.jpeg",
            "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/3f2e-uuid/width=300/123.jpeg",
        ),
        (
            "https://image.civitai.com/x/u/original=true,quality=90,optimized=true/5.jpeg",
            "https://image.civitai.com/x/u/original=true/5.jpeg",
            "https://image.civitai.com/x/u/width=300/5.jpeg",
        ),
        (
            "https://image.civitai.com/x/u/5.jpeg",
            "https://image.civitai.com/x/u/original=true/5.jpeg",
            "https://image.civitai.com/x/u/width=300/5.jpeg",
        ),
        (
            "https://image.civitai.com/x/u/width=450/5.jpeg?token=abc&v=2#frag",
            "https://image.civitai.com/x/u/original=true/5.jpeg?token=abc&v=2#frag",
            "https://image.civitai.com/x/u/width=300/5.jpeg?token=abc&v=2#frag",
        ),
        (
            "http://127.0.0.1:9999/x/u/transcode=true,width=450/7.mp4",
            "http://127.0.0.1:9999/x/u/original=true/7.mp4",
            "http://127.0.0.1:9999/x/u/width=300/7.mp4",
        ),
    ],
)
def test_original_and_sized_urls(url, original, sized):
    assert original_url(url) == original
    assert sized_url(url, 300) == sized
    assert original_url(original_url(url)) == original


@pytest.mark.parametrize("bad", ["", "https://image.civitai.com/", None])
def test_url_helpers_refuse_non_image_urls(bad):
    with pytest.raises(InvalidQueryError):
        original_url(bad)


def test_sized_url_refuses_bad_width():
    for width in (0, -1, "300", True):
        with pytest.raises(InvalidQueryError, match="positive"):
            sized_url(REAL, width)


def test_original_url_serves_the_original_bytes(fake_civitai, api):
    dataset = fake_civitai.dataset
    source = next(i for i in dataset.images if i.media == "png")
    listed = api.get_image(source.id)
    response = requests.get(original_url(listed.url), timeout=10)
    assert response.status_code == 200
    assert response.content == dataset.original_bytes(source.id)
    small = requests.get(sized_url(listed.url, 64), timeout=10)
    assert small.status_code == 200
    assert small.content == dataset.sized_bytes(source.id, 64)


def test_url_errors_do_not_carry_tokens():
    with pytest.raises(InvalidQueryError) as info:
        original_url("https://image.civitai.com/?token=s3cr3tvalue")
    assert "s3cr3tvalue" not in str(info.value)


# -- the helper modules behind civitai_api ---------------------------------------------------


def test_civitai_api_re_exports_the_helpers_themselves():
    from scripts.civitai_manager_libs.civitai import (
        api as civitai_api,
        image_items,
        image_urls,
        nsfw,
    )

    owners = {
        "image_id_from_url": image_urls,
        "original_url": image_urls,
        "sized_url": image_urls,
        "item_level": image_items,
        "to_image_item": image_items,
        "unwrap_meta": image_items,
        "nsfw_param": nsfw,
        "normalize_levels": nsfw,
        "levels_of_param": nsfw,
    }
    for name, module in owners.items():
        assert getattr(civitai_api, name) is getattr(module, name), name
        assert name in civitai_api.__all__, name
    for name in civitai_api.__all__:
        assert hasattr(civitai_api, name), name
    assert civitai_api.MAX_PAGE_SIZE == 200


def test_keep_levels_keeps_exactly_the_chosen_levels_in_order_and_lazily():
    from itertools import count, islice

    from scripts.civitai_manager_libs.civitai.nsfw import keep_levels

    def endless():
        for n in count(1):
            yield to_image_item(_mock_item(n, NSFW_LEVELS[n % len(NSFW_LEVELS)]))

    kept = list(islice(keep_levels(endless(), ["Soft", "X"]), 6))
    assert [item.id for item in kept] == [1, 3, 5, 7, 9, 11]
    assert [item.nsfw_level for item in kept] == ["Soft", "X"] * 3
    assert list(keep_levels([to_image_item(_mock_item(1, "Mature"))], ["None"])) == []


def test_to_image_items_skips_unusable_items_naming_where(caplog):
    from scripts.civitai_manager_libs.civitai.image_items import to_image_items

    raw = [_mock_item(1), {"id": 2}, "junk", _mock_item(3)]
    with caplog.at_level("WARNING"):
        items = list(to_image_items(raw, {"model_id": "7"}, where="model 7: skipping"))
    assert [item.id for item in items] == [1, 3]
    assert {item.model_id for item in items} == {7}
    assert caplog.text.count("model 7: skipping") == 2
    assert "image 2 without a URL" in caplog.text
    assert "str instead of an object" in caplog.text


def test_int_or_none_takes_ints_and_ascii_digit_strings_only():
    from scripts.civitai_manager_libs.civitai.image_items import int_or_none

    assert int_or_none(12) == 12
    assert int_or_none(" 34 ") == 34
    for value in (True, False, None, 1.5, "", "12a", "-3", "\u0663", [1]):
        assert int_or_none(value) is None, value


def test_build_request_owns_paging_meta_and_mask(restore_settings):
    from scripts.civitai_manager_libs.civitai.image_query import build_request

    given = {
        "modelId": 5,
        "username": None,
        "limit": 3,
        "page": 9,
        "withMeta": "false",
        "nsfw": "true",
        "cursor": 77,
    }
    request, levels, cursor = build_request(given, None)
    assert request == {"modelId": 5, "withMeta": "true", "nsfw": "true", "browsingLevel": 28}
    assert levels == ("Mature", "X")
    assert cursor == "77"
    assert given["limit"] == 3  # the caller's dict is left alone

    request, levels, cursor = build_request({"nsfw": "X", "cursor": ""}, ["soft", "none"])
    assert (request["nsfw"], levels, cursor) == ("Soft", ("None", "Soft"), None)

    request, levels, cursor = build_request(None, None, ["Mature"])
    assert request == {"withMeta": "true", "nsfw": "true", "browsingLevel": 4}
    assert levels == ("Mature",)


def test_read_next_cursor_from_next_cursor_or_next_page():
    from scripts.civitai_manager_libs.civitai.image_query import read_next_cursor

    assert read_next_cursor({"nextCursor": 123}) == "123"
    assert read_next_cursor({"nextCursor": "", "nextPage": "https://x/api?limit=2&cursor=9|8"}) == (
        "9|8"
    )
    assert read_next_cursor({"nextPage": "https://x/api?limit=2"}) is None
    assert read_next_cursor({"nextCursor": None}) is None
    assert read_next_cursor(None) is None
    assert read_next_cursor(["nextCursor"]) is None


def test_describe_params_names_what_is_listed():
    from scripts.civitai_manager_libs.civitai.image_query import describe_params

    assert describe_params({"modelId": 1, "modelVersionId": 2}) == "model version 2"
    assert describe_params({"modelId": 1}) == "model 1"
    assert describe_params({"username": "ann"}) == "creator 'ann'"
    assert describe_params({"postId": 4}) == "post 4"
    assert describe_params({"imageId": 3, "modelId": 1}) == "image 3"
    assert describe_params({"sort": "Newest", "nsfw": "X", "limit": 5}) == (
        "images matching sort=Newest"
    )
    assert describe_params({"withMeta": "true", "cursor": "c"}) == "all images"


def test_list_fields_of_another_shape_hold_no_entries(fake_civitai):
    """A model answer whose lists are ``true`` / a number (hostile or broken server) is a model
    without tags, versions or images, not a TypeError."""
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    body = {"id": 4201, "name": "Odd", "tags": True, "modelVersions": 7, "creator": {}}
    fake_civitai.faults.queue_status("/api/v1/models/4201", 200, body=body, server="api")
    with CivitaiHttpClient(api_key="", base_url=fake_civitai.base_url) as client:
        model = CivitaiAPI(client=client).get_model(4201)
    assert (model.name, model.tags, model.versions) == ("Odd", [], [])


# -- a page asked ahead (beside a look-up) -----------------------------------------------------


def test_a_page_asked_ahead_is_the_page_the_listing_gets(api, fake_civitai):
    model_id = fake_civitai.dataset.models[0].id
    params = {"modelId": model_id}
    api.prefetch_page(params, limit=7, nsfw_levels=list(NSFW_LEVELS))
    page = api.get_image_page(params, limit=7, nsfw_levels=list(NSFW_LEVELS))
    assert len(_image_queries(fake_civitai)) == 1 and len(page.items) == 7
    again = api.get_image_page(params, limit=7, nsfw_levels=list(NSFW_LEVELS))  # taken once
    assert len(_image_queries(fake_civitai)) == 2
    assert [i.id for i in again.items] == [i.id for i in page.items]


def test_iter_images_takes_the_page_asked_ahead(api, fake_civitai):
    params = {"modelId": fake_civitai.dataset.models[0].id}
    api.prefetch_page(params, limit=200, nsfw_levels=["None"])
    listed = list(api.iter_images(params, nsfw_levels=["None"]))
    assert listed and len(_image_queries(fake_civitai)) == 1


def test_a_page_asked_ahead_for_other_arguments_is_not_taken(api, fake_civitai):
    params = {"modelId": fake_civitai.dataset.models[0].id}
    api.prefetch_page(params, limit=5, nsfw_levels=["None"])
    api.get_image_page(params, limit=6, nsfw_levels=["None"])
    api.settle_prefetches()
    assert sorted(q["limit"] for q in _image_queries(fake_civitai)) == ["5", "6"]


def test_the_error_of_a_page_asked_ahead_is_raised_by_its_reader(api, fake_civitai):
    fake_civitai.faults.not_found("/api/v1/images")
    api.prefetch_page({"modelId": 1}, limit=3)
    with pytest.raises(NotFoundError, match="was not found on Civitai"):
        api.get_image_page({"modelId": 1}, limit=3)
    assert len(_image_queries(fake_civitai)) == 1


def test_a_page_asked_ahead_too_long_ago_is_asked_again(api, fake_civitai, monkeypatch):
    params = {"modelId": fake_civitai.dataset.models[0].id}
    api.prefetch_page(params, limit=4, nsfw_levels=["None"])
    api.settle_prefetches()  # forgets what nobody took
    api.get_image_page(params, limit=4, nsfw_levels=["None"])
    assert len(_image_queries(fake_civitai)) == 2
    clock = [1000.0]
    monkeypatch.setattr(api._ahead, "clock", lambda: clock[0])
    api.prefetch_page(params, limit=4, nsfw_levels=["None"])
    for _ in range(200):  # the request asked ahead is answered
        if len([r for r in fake_civitai.api_requests() if r.completed]) == 3:
            break
        threading.Event().wait(0.02)
    clock[0] += 61
    api.get_image_page(params, limit=4, nsfw_levels=["None"])
    assert len(_image_queries(fake_civitai)) == 4


def test_bad_page_arguments_raise_where_the_page_is_asked_ahead(api, fake_civitai):
    with pytest.raises(InvalidQueryError):
        api.prefetch_page({"modelId": 1}, limit=0)
    assert fake_civitai.api_requests() == []


def test_asking_ahead_again_replaces_an_answer_nobody_took(api, fake_civitai):
    """A look-up failed, so the page asked beside it was never taken; when the user tries again
    the page is asked again, and the listing gets the new answer, not the old error."""
    params = {"modelId": fake_civitai.dataset.models[0].id}
    fake_civitai.faults.queue_status("/api/v1/images", 500)
    api.prefetch_page(params, limit=4, nsfw_levels=["None"])
    for _, answer in list(api._ahead._entries.values()):  # the failed answer arrived
        assert answer.wait(10)
    api.prefetch_page(params, limit=4, nsfw_levels=["None"])
    page = api.get_image_page(params, limit=4, nsfw_levels=["None"])
    assert len(page.items) == 4 and len(_image_queries(fake_civitai)) == 2
