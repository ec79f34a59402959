"""The collector's targets (issue 23): collections, posts, a user's posts/images/videos, tags,
gallery links and your reactions, listed through Civitai's web API (tRPC) on the fake, with the
generation data of each page in one REST request; the packed answer form and hostile ones."""

from __future__ import annotations

import io
import json
import os

import pytest

from scripts.civitai_manager_libs.civitai import trpc
from scripts.civitai_manager_libs.civitai.query import Target, parse_query
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.errors import (
    AuthError,
    InvalidQueryError,
    InvalidResponseError,
)
from scripts.civitai_manager_libs.fake_civitai.trpc import COLLECTIONS, post_title, reaction_of
from scripts.civitai_manager_libs.planning import downloader as downloader_mod
from scripts.civitai_manager_libs.records import NSFW_LEVELS

MEDIA_EXTS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
LISTED = ("None", "Soft", "Mature", "X")  # what --nsfw all keeps (Blocked never)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


def _run(fake, out_dir, *argv, key=None):
    args = [str(a) for a in argv] + ["--base-url", fake.base_url, "-o", str(out_dir), "-q"]
    if key:
        args += ["--api-key", key]
    buffer = io.StringIO()
    code = cli.main(args, out=buffer)
    return code, buffer.getvalue()


def _saved_ids(out_dir):
    ids = set()
    for _root, _dirs, files in os.walk(out_dir):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext in MEDIA_EXTS and stem.isdigit():
                ids.add(int(stem))
    return ids


def _requests(fake, path):
    return [r for r in fake.api_requests() if r.path == path]


def _inputs(fake, procedure):
    return [json.loads(r.query["input"]) for r in _requests(fake, "/api/trpc/" + procedure)]


def _listed(images):
    return {i.id for i in images if i.nsfw_level in LISTED}


# -- the packed form ------------------------------------------------------------------------


def test_unpack_reads_the_packed_form():
    packed = [
        {"items": 1, "nextCursor": 5},
        [2],
        {"id": 3, "createdAt": 4, "meta": -1},
        12,
        ["Date", "2026-01-02T03:04:05.000Z"],
        "c1",
    ]
    assert trpc.unpack(packed) == {
        "items": [{"id": 12, "createdAt": "2026-01-02T03:04:05.000Z", "meta": None}],
        "nextCursor": "c1",
    }


@pytest.mark.parametrize(
    "packed,why",
    [
        ([{"a": 1}, {"b": 0}], "cycle"),
        ([{"a": 7}], "reference to entry 7"),
        ([{"a": -9}], "negative"),
        ([{"a": "x"}], "not an index"),
        ([[i + 1] for i in range(200)] + [1], "nested more than"),
        # 40 levels of two references to the next entry: 2**40 values once expanded
        ([[i + 1, i + 1] for i in range(40)] + ["leaf"], "values once expanded"),
        ([], "without any entries"),
    ],
    ids=["cycle", "out-of-range", "bad-negative", "not-an-index", "deep", "fan-out", "empty"],
)
def test_unpack_refuses_hostile_lists_quickly(packed, why):
    with pytest.raises(InvalidResponseError, match=why):
        trpc.unpack(packed)


def test_read_data_takes_both_forms_and_refuses_others():
    assert trpc.read_data({"result": {"data": {"json": {"a": 1}}}}, "x") == {"a": 1}
    assert trpc.read_data({"result": {"data": json.dumps([{"a": 1}, 2])}}, "x") == {"a": 2}
    with pytest.raises(InvalidResponseError):
        trpc.read_data({"result": {"data": "[[[[not json"}}, "x")
    with pytest.raises(InvalidResponseError):
        trpc.read_data({"result": {}}, "x")


# -- the web API's calls --------------------------------------------------------------------


def test_paging_sends_an_undefined_cursor_first_then_next_cursor_and_the_referer(
    fake_civitai, tmp_path
):
    code, _ = _run(fake_civitai, tmp_path, "download", "collection", 7001, "--nsfw", "all")
    assert code == 0
    pages = _inputs(fake_civitai, "image.getInfinite")
    assert pages[0]["json"]["cursor"] is None
    assert pages[0]["meta"] == {"values": {"cursor": ["undefined"]}}
    assert pages[0]["json"]["collectionId"] == 7001
    assert pages[0]["json"]["browsingLevel"] == 31
    for record in _requests(fake_civitai, "/api/trpc/image.getInfinite"):
        assert record.headers["Referer"] == fake_civitai.base_url + "/"


def test_without_referer_or_key_the_web_api_refuses(fake_civitai):
    import requests

    answer = requests.get(
        fake_civitai.base_url + "/api/trpc/collection.getById",
        params={"input": json.dumps({"json": {"id": 7001}})},
        timeout=10,
    )
    assert answer.status_code == 401
    error = answer.json()["error"]["json"]
    assert error["data"]["code"] == "UNAUTHORIZED"
    assert "public API" in error["message"]


# -- collections ----------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_public_collection_over_several_pages_one_meta_request_per_page(
    fake_civitai, fake_dataset, tmp_path, monkeypatch, packed
):
    monkeypatch.setattr(downloader_mod.ImageDownloader, "page_size", 40)
    fake_civitai.trpc_packed = packed
    url = "https://civitai.com/collections/7001"
    code, text = _run(fake_civitai, tmp_path, "download", "url", url, "--nsfw", "all")
    assert code == 0, text
    members = set(COLLECTIONS[7001].select(fake_dataset))
    expected = _listed(i for i in fake_dataset.images if i.id in members)
    assert len(expected) > 80  # three pages of 40
    assert _saved_ids(tmp_path) == expected
    assert any(fake_dataset.image(i).type == "video" for i in expected)
    pages = _requests(fake_civitai, "/api/trpc/image.getInfinite")
    metas = _requests(fake_civitai, "/api/v1/images")
    assert len(pages) == 3
    assert len(metas) == len(pages)  # ONE REST request per page, never one per image
    for record in metas:
        assert record.query["withMeta"] == "true"
        assert len(record.query["ids"].split(",")) <= 40
    assert len(_requests(fake_civitai, "/api/trpc/collection.getById")) == 1
    # the generation data arrived: the json sidecars hold the prompts
    with_prompt = [i for i in expected if (fake_dataset.image(i).meta or {}).get("prompt")]
    sidecars = {}
    for root, _dirs, files in os.walk(tmp_path):
        for name in files:
            if name.endswith(".json") and name.split(".")[0].isdigit():
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    sidecars[int(name.split(".")[0])] = json.load(handle)
    hidden = {i for i in with_prompt if fake_dataset.image(i).meta_hidden}
    for image_id in set(with_prompt) - hidden:
        assert sidecars[image_id]["generation"]["prompt"]


def test_private_collection_needs_the_key(fake_civitai, fake_dataset, tmp_path):
    code, text = _run(fake_civitai, tmp_path / "nokey", "download", "collection", 7002)
    assert code == 1
    assert not _saved_ids(tmp_path / "nokey")
    code, text = _run(
        fake_civitai, tmp_path / "key", "download", "collection", 7002, "--nsfw", "all", key="k1"
    )
    assert code == 0, text
    members = set(COLLECTIONS[7002].select(fake_dataset))
    assert _saved_ids(tmp_path / "key") == _listed(
        i for i in fake_dataset.images if i.id in members
    )


def test_private_collection_message_without_key(fake_civitai):
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    with CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="") as client:
        with pytest.raises(AuthError, match="private.*API key"):
            CivitaiAPI(client).get_collection(7002)
    with CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="invalid-key") as client:
        with pytest.raises(AuthError, match="Invalid API key"):
            CivitaiAPI(client).get_collection(7001)


def test_post_collection_lists_the_images_of_its_posts(fake_civitai, fake_dataset, tmp_path):
    code, text = _run(fake_civitai, tmp_path, "download", "collection", 7003, "--nsfw", "all")
    assert code == 0, text
    posts = set(COLLECTIONS[7003].select(fake_dataset))
    assert _saved_ids(tmp_path) == _listed(i for i in fake_dataset.images if i.post_id in posts)


def test_a_model_collection_is_a_clear_error(fake_civitai, tmp_path):
    code, _ = _run(fake_civitai, tmp_path, "download", "collection", 7004)
    assert code == 2
    assert not _saved_ids(tmp_path)


def test_hostile_packed_answer_fails_the_run_with_a_sentence(fake_civitai, tmp_path, capsys):
    fan_out = [[i + 1, i + 1] for i in range(40)] + ["leaf"]
    body = json.dumps({"result": {"data": json.dumps(fan_out)}})
    fake_civitai.faults.queue_status(
        "/api/trpc/image.getInfinite",
        200,
        headers={"Content-Type": "application/json"},
        body=body,
    )
    code, _ = _run(fake_civitai, tmp_path, "download", "collection", 7001)
    assert code == 1
    assert "values once expanded" in capsys.readouterr().err
    assert not _saved_ids(tmp_path)


# -- posts, users, tags ---------------------------------------------------------------------


def test_a_post_all_its_images(fake_civitai, fake_dataset, tmp_path):
    post_id = max(
        {i.post_id for i in fake_dataset.images},
        key=lambda p: sum(1 for i in fake_dataset.images if i.post_id == p),
    )
    code, text = _run(fake_civitai, tmp_path, "download", "post", post_id, "--nsfw", "all")
    assert code == 0, text
    expected = _listed(i for i in fake_dataset.images if i.post_id == post_id)
    assert len(expected) >= 3
    assert _saved_ids(tmp_path) == expected
    assert _inputs(fake_civitai, "image.getInfinite")[0]["json"]["postId"] == post_id


def test_user_videos_are_videos_only_and_images_images_only(fake_civitai, fake_dataset, tmp_path):
    url = "https://civitai.com/user/pixel_witch/videos"
    code, text = _run(fake_civitai, tmp_path / "v", "download", "url", url, "--nsfw", "all")
    assert code == 0, text
    mine = [i for i in fake_dataset.images if i.username == "pixel_witch"]
    videos = _listed(i for i in mine if i.type == "video")
    assert videos and _saved_ids(tmp_path / "v") == videos
    url = "https://civitai.com/user/pixel_witch/images"
    code, text = _run(
        fake_civitai, tmp_path / "i", "download", "url", url, "--nsfw", "all", "--limit", 0
    )
    assert code == 0, text
    assert _saved_ids(tmp_path / "i") == _listed(i for i in mine if (i.type or "image") == "image")


def test_user_posts_with_limit(fake_civitai, fake_dataset, tmp_path):
    url = "https://civitai.com/user/pixel_witch/posts"
    code, text = _run(fake_civitai, tmp_path, "download", "url", url, "--nsfw", "all")
    assert code == 0, text
    saved = _saved_ids(tmp_path)
    assert len(saved) == 20  # the default limit of a user's listing
    assert all(fake_dataset.image(i).username == "pixel_witch" for i in saved)
    assert _inputs(fake_civitai, "post.getInfinite")[0]["json"]["username"] == "pixel_witch"
    pages = len(_requests(fake_civitai, "/api/trpc/image.getInfinite"))
    assert len(_requests(fake_civitai, "/api/v1/images")) == pages


def test_an_unknown_tag_is_not_found(fake_civitai, tmp_path):
    code, _ = _run(fake_civitai, tmp_path, "download", "tag", "no-such-tag")
    assert code == 2  # not found: nothing written
    assert not _saved_ids(tmp_path)


# -- reactions ------------------------------------------------------------------------------


def test_reactions_need_the_key_exit_2_and_no_request(fake_civitai, tmp_path, capsys):
    code, _ = _run(fake_civitai, tmp_path, "download", "reactions")
    assert code == 2
    assert "API key" in capsys.readouterr().err
    assert fake_civitai.api_requests() == []


def test_reactions_with_the_key_and_kinds(fake_civitai, fake_dataset, tmp_path):
    code, text = _run(
        fake_civitai,
        tmp_path,
        "download",
        "reactions",
        "--kind",
        "heart,Laugh",
        "--nsfw",
        "all",
        "--limit",
        0,
        key="k1",
    )
    assert code == 0, text
    expected = _listed(i for i in fake_dataset.images if reaction_of(i.id) in ("Heart", "Laugh"))
    assert expected and _saved_ids(tmp_path) == expected
    assert _inputs(fake_civitai, "image.getInfinite")[0]["json"]["reactions"] == ["Heart", "Laugh"]


def test_unknown_reaction_kind_is_a_usage_error(fake_civitai, tmp_path):
    code, _ = _run(fake_civitai, tmp_path, "download", "reactions", "--kind", "Wow", key="k")
    assert code == 2


# -- gallery links --------------------------------------------------------------------------


def _collection_videos(dataset):
    members = set(COLLECTIONS[7001].select(dataset))
    return [i for i in dataset.images if i.id in members and i.type == "video"]


@pytest.mark.parametrize(
    "argv,images,sent",
    [
        (
            ["url", "https://civitai.com/tag/sci-fi"],
            lambda ds: [i for i in ds.images if 3628 in i.tag_ids],
            {},
        ),
        (
            ["url", "https://civitai.com/videos?period=AllTime"],
            lambda ds: [i for i in ds.images if i.type == "video"],
            {"types": ["video"]},
        ),
        (  # a gallery link's filters become the listing's
            ["url", "https://civitai.com/images?sort=Oldest&baseModels=Pony&tags=5193&view=feed"],
            lambda ds: [
                i
                for i in ds.images
                if i.base_model == "Pony" and 5193 in i.tag_ids and (i.type or "image") == "image"
            ],
            {"sort": "Oldest", "baseModels": ["Pony"], "tags": [5193], "types": ["image"]},
        ),
        (  # download's filters apply to web listings
            ["collection", 7001, "--type", "video"],
            _collection_videos,
            {"types": ["video"]},
        ),
    ],
    ids=["tag", "videos-link", "images-link-filters", "collection-type-filter"],
)
def test_a_web_listing_saves_what_it_lists(
    fake_civitai, fake_dataset, tmp_path, argv, images, sent
):
    code, text = _run(fake_civitai, tmp_path, "download", *argv, "--nsfw", "all", "--limit", 0)
    assert code == 0, text
    expected = _listed(images(fake_dataset))
    assert expected and _saved_ids(tmp_path) == expected
    if sent:  # a tag is listed by the REST images endpoint
        first = _inputs(fake_civitai, "image.getInfinite")[0]["json"]
        assert {key: first[key] for key in sent} == sent


def test_gallery_link_with_an_unknown_filter_is_refused():
    with pytest.raises(InvalidQueryError, match="not one this downloader"):
        parse_query("https://civitai.com/images?colour=red")


def test_nsfw_levels_are_asked_and_kept(fake_civitai, fake_dataset, tmp_path):
    code, _ = _run(fake_civitai, tmp_path, "download", "collection", 7001, "--nsfw", "None")
    assert code == 0
    saved = _saved_ids(tmp_path)
    assert saved and all(fake_dataset.image(i).nsfw_level == "None" for i in saved)
    assert _inputs(fake_civitai, "image.getInfinite")[0]["json"]["browsingLevel"] == 1


# -- what a user types ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,kind,value",
    [
        ("https://civitai.com/collections/7001", "collection", 7001),
        ("collection 7001", "collection", 7001),
        ("https://civitai.com/posts/12", "post", 12),
        ("post 12", "post", 12),
        ("https://civitai.com/user/alice/posts", "user_posts", "alice"),
        ("https://civitai.com/tag/sci-fi", "tag", "sci-fi"),
        ("tag landscape", "tag", "landscape"),
    ],
)
def test_query_forms(text, kind, value):
    target = parse_query(text)
    assert (target.kind, target.value) == (kind, value)


def test_user_tabs_and_reactions_section():
    assert parse_query("/user/alice/videos") == Target(
        "filter", "username=alice&type=video", params={"username": "alice", "type": "video"}
    )
    target = parse_query("https://civitai.com/user/alice/images?section=reactions")
    assert target.kind == "reactions" and target.params["types"] == ["image"]


def test_titles_of_posts_reach_the_items(fake_civitai, fake_dataset):
    from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
    from scripts.civitai_manager_libs.civitai.web_listing import WebListing
    from scripts.civitai_manager_libs.http_client import CivitaiHttpClient

    image = next(i for i in fake_dataset.images if post_title(i.post_id))
    with CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="") as client:
        page = CivitaiAPI(client).get_image_page(
            {}, limit=50, nsfw_levels=list(NSFW_LEVELS), source=WebListing("post", image.post_id)
        )
    assert page.items
    assert all(item.raw["postTitle"] == post_title(image.post_id) for item in page.items)


def test_collection_fields_in_the_template_end_to_end(fake_civitai, fake_dataset, tmp_path):
    code, text = _run(
        fake_civitai,
        tmp_path,
        "download",
        "collection",
        7002,
        "--nsfw",
        "all",
        "--template",
        "{collection_id}-{collection_name}/{date:%Y-%m}/{post_title:.12}_{id:>010}",
        key="k1",
    )
    assert code == 0, text
    top = [n for n in os.listdir(tmp_path) if not n.startswith(".")]
    assert top == ["7002-.._Private stash"]  # '../Private stash': one folder, inside the root
    members = set(COLLECTIONS[7002].select(fake_dataset))
    expected = _listed(i for i in fake_dataset.images if i.id in members)
    found = {}
    for root, _dirs, files in os.walk(tmp_path / top[0]):
        for name in files:
            stem, ext = os.path.splitext(name)
            if ext in MEDIA_EXTS:
                found[int(stem[-10:])] = (os.path.relpath(root, tmp_path / top[0]), stem)
    assert set(found) == expected
    for image_id, (folder, stem) in found.items():
        image = fake_dataset.image(image_id)
        assert folder == image.created_at[:7]  # {date:%Y-%m}
        assert stem.endswith("_" + str(image_id).rjust(10, "0"))  # {id:>010}


# -- list: every target and every filter of download ----------------------------------------


def _list(fake, dest, *argv, key=None):
    args = ["list", *[str(a) for a in argv], "--to", str(dest), "--base-url", fake.base_url, "-q"]
    if key:
        args += ["--api-key", key]
    code = cli.main(args, out=io.StringIO())
    rows = []
    if os.path.exists(dest):
        with open(dest, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    return code, rows


def test_list_a_collection_with_the_download_filters(fake_civitai, fake_dataset, tmp_path):
    code, rows = _list(
        fake_civitai,
        tmp_path / "c.jsonl",
        "collection",
        7001,
        "--nsfw",
        "all",
        "--base-model",
        "Pony",
        "--with-generation-data",
    )
    assert code == 0
    members = set(COLLECTIONS[7001].select(fake_dataset))
    expected = {
        i.id
        for i in fake_dataset.images
        if i.id in members
        and i.nsfw_level in LISTED
        and i.base_model == "Pony"
        and i.type != "video"
        and (i.meta or {}).get("prompt")
        and not i.meta_hidden
    }
    assert expected and {r["id"] for r in rows} == expected
    assert all(r["generation"] for r in rows)
    assert _inputs(fake_civitai, "image.getInfinite")[0]["json"]["baseModels"] == ["Pony"]


def test_list_takes_links_tags_posts_and_video_type(fake_civitai, fake_dataset, tmp_path):
    code, rows = _list(
        fake_civitai,
        tmp_path / "t.jsonl",
        "url",
        "https://civitai.com/tag/car",
        "--limit",
        0,
        "--nsfw",
        "all",
        "--since",
        "2020-01-01",
        "--min-reactions",
        1,
    )
    assert code == 0
    expected = {
        i.id
        for i in fake_dataset.images
        if 111763 in i.tag_ids
        and i.nsfw_level in LISTED
        and i.type != "video"
        and sum(i.stats.get(k, 0) for k in ("likeCount", "heartCount", "laughCount", "cryCount"))
        + i.stats.get("dislikeCount", 0)
        >= 1
    }
    assert {r["id"] for r in rows} == expected
    code, rows = _list(
        fake_civitai,
        tmp_path / "v.jsonl",
        "url",
        "https://civitai.com/user/pixel_witch/videos",
        "--nsfw",
        "all",
        "--type",
        "video",
    )
    assert code == 0
    assert {r["id"] for r in rows} == _listed(
        i for i in fake_dataset.images if i.username == "pixel_witch" and i.type == "video"
    )


def test_list_reactions_without_key_exit_2(fake_civitai, tmp_path):
    code, rows = _list(fake_civitai, tmp_path / "r.jsonl", "reactions")
    assert code == 2 and rows == []
    assert fake_civitai.api_requests() == []


# -- the tab: the query box browses every target; the template box previews -----------------


@pytest.fixture
def tab_env(local_settings):
    return local_settings(
        {"http_backoff_factor": 0, "http_max_retries": 1, "gallery_page_size": 10}
    )


def test_tab_browses_a_collection_page_by_page(tab_env, fake_dataset):
    import gradio as gr

    from scripts.civitai_manager_libs.ui import actions as action

    out = action.load_gallery(
        "https://civitai.com/collections/7001",
        list(NSFW_LEVELS),
        "Newest",
        "AllTime",
        action.GalleryView(),
    )
    view = out[0]
    members = set(COLLECTIONS[7001].select(fake_dataset))
    assert view.items and {i.id for i in view.items} <= members
    second = action.next_page(view)[0]
    assert {i.id for i in second.items} <= members
    assert {i.id for i in second.items}.isdisjoint(i.id for i in view.items)
    pages = _requests(tab_env, "/api/trpc/image.getInfinite")
    assert len(_requests(tab_env, "/api/v1/images")) == len(pages) == 2
    chosen = action.select_image(second, gr.SelectData(None, {"index": 0, "value": None}))[0]
    text = action.template_preview("{collection_name}/{date:%Y}/{id:>010}", chosen)
    item = second.items[0]
    assert "{collection_name}" in text and "{date" in text  # the fields are listed
    expected = os.path.join("Landscapes & videos", item.created_at[:4], str(item.id).rjust(10, "0"))
    assert expected in text
    assert "does not fit a number" in action.template_preview("{id:zz}", chosen)
    assert "Select an image" in action.template_preview("{id}", action.GalleryView())


def test_tab_reactions_without_key_say_so(tab_env):
    from scripts.civitai_manager_libs.ui import actions as action
    from scripts.civitai_manager_libs.ui import download_job

    status = download_job.download_all(
        "https://civitai.com/user/me/images?section=reactions", ["None"], action.GalleryView()
    )
    assert "API key" in status
    assert _requests(tab_env, "/api/trpc/image.getInfinite") == []


def test_download_and_list_share_one_argument_definition():
    from scripts.civitai_manager_libs.cli import args as cli_args
    from scripts.civitai_manager_libs.cli import list_cmd

    def options(parser):
        found = set()
        for action in parser._actions:
            found.update(action.option_strings or [action.dest])
        return found

    download = next(
        a
        for a in cli_args.build_parser()._subparsers._group_actions[0].choices.items()
        if a[0] == "download"
    )[1]
    shared = {
        "kind",
        "values",
        "--limit",
        "--nsfw",
        "--kind",
        "--base-model",
        "--type",
        "--with-generation-data",
        "--since",
        "--until",
        "--min-reactions",
        "--used-with",
    }
    assert shared <= options(download)
    assert shared <= options(list_cmd.build_parser())
    kinds = [a for a in list_cmd.build_parser()._actions if a.dest == "kind"][0].choices
    assert tuple(kinds) == cli_args.TARGET_KINDS
