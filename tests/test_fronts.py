"""Issue 20 part 1: Civitai's two fronts (civitai.com for None/Soft, civitai.red for every level),
against a fake that serves both on two ports and clamps its com front as civitai.com does; cached
look-ups that follow the service; Civitai's bulkhead 503 as a pause."""

from __future__ import annotations

import io
import json
import os
import time

import pytest
import requests

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.civitai.fronts import SFW_ONLY_WARNING, Fronts
from scripts.civitai_manager_libs.civitai.query import parse_query
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.cli.target import parse_target
from scripts.civitai_manager_libs.errors import InvalidQueryError, NotFoundError
from scripts.civitai_manager_libs.fake_civitai import FakeCivitai
from scripts.civitai_manager_libs.fake_civitai import models_api as M
from scripts.civitai_manager_libs.resources.fetch import fetch_missing
from scripts.civitai_manager_libs.resources.resolve import ResourceResolver
from scripts.civitai_manager_libs.resources.service import open_cache, reproduce
from scripts.civitai_manager_libs.transport.client import CivitaiHttpClient, front_urls

MODEL = 4384  # 34 images in the default dataset: 24 None/Soft, 10 Mature/X
MATURE = ("Mature", "X", "XXX")
MEDIA_EXTS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    for name in ("CIVITAI_API_KEY", "CIVITAI_BASE_URL", "CIVITAI_RED_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    # the defaults, whatever an earlier test left set in-process (conftest restores it after)
    setting.reset()


@pytest.fixture
def fronts_fake(fake_dataset):
    """The fake with both fronts as Civitai runs them: com clamps to None/Soft, red serves all."""
    with FakeCivitai(fake_dataset, split_fronts=True) as fake:
        yield fake


def _run(argv, capsys):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def _records(root):
    records = []
    for folder, dirs, names in os.walk(str(root)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), encoding="utf-8") as fh:
                    records.append(json.load(fh))
    return records


def _saved_levels(root):
    return [record["nsfw_level"] for record in _records(root)]


def _media(root):
    found = []
    for folder, dirs, names in os.walk(str(root)):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [n for n in names if n.lower().endswith(MEDIA_EXTS)]
    return found


def _mature_ids(fake, model_id=MODEL):
    return {i.id for i in fake.dataset.images if i.model_id == model_id and i.nsfw_level in MATURE}


# ------------------------------------------------------------------------ the fake's two fronts


def test_the_fake_com_front_leaves_out_every_mature_item_the_red_front_serves_all(fronts_fake):
    mature_id = min(_mature_ids(fronts_fake))
    query = {"modelId": MODEL, "nsfw": "X", "limit": 200}

    def levels(base):
        body = requests.get(base + "/api/v1/images", params=query, timeout=10).json()
        return {item["nsfwLevel"] for item in body["items"]}

    assert levels(fronts_fake.base_url) <= {"None", "Soft"}
    assert levels(fronts_fake.red_base_url) >= {"None", "Soft", "Mature", "X"}
    by_id = {"imageId": mature_id, "nsfw": "X"}
    com = requests.get(fronts_fake.base_url + "/api/v1/images", params=by_id, timeout=10).json()
    red = requests.get(fronts_fake.red_base_url + "/api/v1/images", params=by_id, timeout=10)
    assert com["items"] == [] and [i["id"] for i in red.json()["items"]] == [mature_id]
    version = fronts_fake.dataset.image(mature_id).model_version_ids[0]
    on_com = requests.get(f"{fronts_fake.base_url}/api/v1/model-versions/{version}", timeout=10)
    on_red = requests.get(f"{fronts_fake.red_base_url}/api/v1/model-versions/{version}", timeout=10)
    assert all(i["nsfwLevel"] & 3 for i in on_com.json()["images"])
    assert any(not i["nsfwLevel"] & 3 for i in on_red.json()["images"])
    assert {r.front for r in fronts_fake.api_requests()} == {"com", "red"}


# ------------------------------------------------------------------------ which front is asked


def test_a_mature_cli_download_lists_on_the_red_front_and_gets_the_mature_images(
    fronts_fake, tmp_path, capsys
):
    output = tmp_path / "out"
    argv = ["download", "model", MODEL, "--nsfw", "Mature,X", "--output", output, "-q"]
    argv += ["--base-url", fronts_fake.base_url, "--red-base-url", fronts_fake.red_base_url]

    code, out, err = _run(argv, capsys)

    assert code == 0, err
    assert len(_media(output)) == len(_mature_ids(fronts_fake)) == 10
    assert set(_saved_levels(output)) == {"Mature", "X"}
    # the sidecars link each image's page on the front that shows it
    assert {r["page_url"] for r in _records(output)} == {
        f"{fronts_fake.red_base_url}/images/{i}" for i in _mature_ids(fronts_fake)
    }
    listings = [r for r in fronts_fake.api_requests() if r.path == "/api/v1/images"]
    assert listings and {r.front for r in listings} == {"red"}
    # the model look-up (names for the files) follows the levels of the command too
    assert not [r for r in fronts_fake.api_requests("com")]
    assert SFW_ONLY_WARNING not in err


def test_the_environment_names_the_red_front_too(fronts_fake, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVITAI_BASE_URL", fronts_fake.base_url)
    monkeypatch.setenv("CIVITAI_RED_BASE_URL", fronts_fake.red_base_url)
    output = tmp_path / "out"
    code, _out, err = _run(
        ["download", "model", MODEL, "--nsfw", "all", "--output", output, "-q"], capsys
    )
    assert code == 0, err
    assert len(_media(output)) == 34  # every level: the red front
    assert {r.front for r in fronts_fake.api_requests() if r.path == "/api/v1/images"} == {"red"}


def test_a_safe_for_work_download_stays_on_civitai_com(fronts_fake, tmp_path, capsys):
    output = tmp_path / "out"
    argv = ["download", "model", MODEL, "--nsfw", "None,Soft", "--output", output, "-q"]
    argv += ["--base-url", fronts_fake.base_url, "--red-base-url", fronts_fake.red_base_url]
    code, _out, err = _run(argv, capsys)
    assert code == 0, err
    assert len(_media(output)) == 24
    assert fronts_fake.api_requests("red") == []
    pages = [r["page_url"] for r in _records(output)]
    assert len(pages) == 24 and all(p.startswith(fronts_fake.base_url + "/images/") for p in pages)
    assert [r for r in fronts_fake.api_requests("com") if r.path == "/api/v1/images"]


def test_an_image_civitai_com_does_not_show_is_asked_of_the_red_front(
    fronts_fake, tmp_path, capsys
):
    mature_id = min(_mature_ids(fronts_fake))
    output = tmp_path / "out"
    argv = ["download", "image", mature_id, "--output", output, "-q"]
    argv += ["--base-url", fronts_fake.base_url, "--red-base-url", fronts_fake.red_base_url]

    code, _out, err = _run(argv, capsys)

    assert code == 0, err
    assert len(_media(output)) == 1
    asked = [r.front for r in fronts_fake.api_requests() if r.query.get("imageId")]
    # com first (the levels in force are None/Soft), then red; asked again (the target check,
    # then the download), it goes straight to the front that showed it
    assert asked[:2] == ["com", "red"] and set(asked[2:]) == {"red"}


def test_an_image_missing_on_both_fronts_is_not_found(fronts_fake):
    with CivitaiHttpClient(
        base_url=fronts_fake.base_url, red_base_url=fronts_fake.red_base_url, max_retries=0
    ) as client:
        with pytest.raises(NotFoundError, match="image 999999999 was not found"):
            CivitaiAPI(client=client).get_image(999_999_999)
    assert [r.front for r in fronts_fake.api_requests()] == ["com", "red"]


def test_look_ups_follow_the_levels_in_force(fronts_fake):
    with CivitaiHttpClient(
        base_url=fronts_fake.base_url, red_base_url=fronts_fake.red_base_url, max_retries=0
    ) as client:
        sfw = CivitaiAPI(client=client, levels=["None", "Soft"])
        red = CivitaiAPI(client=client, levels=["Mature"])
        version = fronts_fake.dataset.image(min(_mature_ids(fronts_fake))).model_version_ids[0]
        sfw_images = sfw.get_model_version(version).images
        red_images = red.get_model_version(version).images
    assert {i.nsfw_level for i in sfw_images} <= {"None", "Soft"}
    assert {i.nsfw_level for i in red_images} & {"Mature", "X"}
    assert [r.front for r in fronts_fake.api_requests()] == ["com", "red"]


def test_the_addresses_of_the_two_fronts(monkeypatch):
    assert front_urls() == ("https://civitai.com", "https://civitai.red")
    # one address given alone (a mirror, the demo, a test fake) serves both fronts, as before
    assert front_urls("http://127.0.0.1:9") == ("http://127.0.0.1:9",) * 2
    monkeypatch.setenv("CIVITAI_BASE_URL", "https://mirror.example")
    assert front_urls() == ("https://mirror.example",) * 2
    monkeypatch.setenv("CIVITAI_RED_BASE_URL", "https://red.example/")
    assert front_urls() == ("https://mirror.example", "https://red.example")
    assert front_urls(None, "https://other.example") == (
        "https://mirror.example",
        "https://other.example",
    )
    monkeypatch.setenv("CIVITAI_RED_BASE_URL", "https://user:pw@red.example")
    with pytest.raises(Exception, match="CIVITAI_RED_BASE_URL"):
        front_urls()
    fronts = Fronts("https://civitai.com", "https://civitai.red")
    assert fronts.base_for(["None", "Soft"]) == "https://civitai.com"
    assert fronts.base_for(["Soft", "X"]) == "https://civitai.red"
    assert fronts.page_url("images", 5, "Mature") == "https://civitai.red/images/5"
    assert fronts.page_url("images", 5, "Soft") == "https://civitai.com/images/5"


def test_a_bad_red_base_url_flag_is_a_usage_error(fronts_fake, tmp_path, capsys):
    argv = ["download", "model", MODEL, "--output", tmp_path / "out"]
    argv += ["--red-base-url", "https://user:pw@red.example"]
    code, _out, err = _run(argv, capsys)
    assert code == 2 and "pw" not in err
    assert fronts_fake.log == [] and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------ civitai.red links


@pytest.mark.parametrize(
    "link, kind, value",
    [
        ("https://civitai.red/models/4384?modelVersionId=1", "model", 4384),
        ("https://www.civitai.red/images/12000294", "image", 12000294),
        ("civitai.red/user/some_one/images", "filter", "username=some_one&type=image"),
        ("https://civitai.red/images?modelId=4384&nsfw=X", "filter", "modelId=4384&nsfw=X"),
        ("https://civitai.green/models/1", "model", 1),
    ],
)
def test_civitai_red_links_are_civitai_links(link, kind, value):
    target = parse_query(link)
    assert (target.kind, target.value) == (kind, value)
    cli_target = parse_target("url", [link])
    assert cli_target.kind in (kind, "filter")


def test_the_configured_red_front_host_is_a_civitai_link(monkeypatch):
    from scripts.civitai_manager_libs.transport.client_options import configured_fronts

    with pytest.raises(InvalidQueryError):
        parse_target("url", ["https://red.mirror.example/images/3"])
    monkeypatch.setenv("CIVITAI_RED_BASE_URL", "https://red.mirror.example")
    assert parse_target("url", ["https://red.mirror.example/images/3"]).value == 3
    assert parse_query("https://red.mirror.example/images/3", configured_fronts()).value == 3
    monkeypatch.delenv("CIVITAI_RED_BASE_URL")
    assert parse_target(
        "url", ["https://red2.example/images/4"], red_base_url="https://red2.example"
    )


# ------------------------------------------------------------------------ the key


def test_the_key_reaches_both_api_fronts_api_paths_and_nothing_else(fronts_fake):
    key = "sekrit-fronts-key"
    with CivitaiHttpClient(
        base_url=fronts_fake.base_url,
        red_base_url=fronts_fake.red_base_url,
        api_key=key,
        max_retries=0,
    ) as client:
        client.get_json(fronts_fake.base_url + "/api/v1/images", {"limit": 1})
        client.get_json(fronts_fake.red_base_url + "/api/v1/images", {"limit": 1})
        for other in (fronts_fake.base_url + "/images/1", fronts_fake.red_base_url + "/user/x"):
            with client.session.get(other, timeout=10):
                pass
        with client.session.get(fronts_fake.image_url(12000294), timeout=10):
            pass
        # a redirect from one front into the other's API: a hop never carries the key
        hop = fronts_fake.redirect_url(fronts_fake.red_base_url + "/api/v1/images?limit=1")
        client.get_json(hop)
    bearer = f"Bearer {key}"
    by_path = [(r.front, r.path, r.headers.get("Authorization")) for r in fronts_fake.log]
    assert by_path[:2] == [
        ("com", "/api/v1/images", bearer),
        ("red", "/api/v1/images", bearer),
    ]
    assert by_path[2:4] == [("com", "/images/1", None), ("red", "/user/x", None)]
    assert by_path[4][0] == "" and by_path[4][2] is None  # the image host
    assert by_path[5][:2] == ("com", "/api/download/redirect/1") and by_path[5][2] == bearer
    assert by_path[6] == ("red", "/api/v1/images", None)


# ------------------------------------------------------------------------ the explicit com warning


def test_a_mature_listing_sent_to_civitai_com_alone_says_so(
    fronts_fake, tmp_path, capsys, caplog, monkeypatch
):
    from scripts.civitai_manager_libs.civitai import fronts

    # the fake's "com" front stands for civitai.com (a mirror at one address says nothing)
    monkeypatch.setattr(fronts, "SFW_HOSTS", fronts.SFW_HOSTS + ("127.0.0.1",))
    output = tmp_path / "out"
    argv = ["download", "model", MODEL, "--nsfw", "None,Mature,X", "--output", output, "-q"]
    argv += ["--base-url", fronts_fake.base_url]  # no red front: everything goes to "com"

    code, _out, err = _run(argv, capsys)

    assert code == 0, err
    assert set(_saved_levels(output)) == {"None"}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([w for w in warnings if SFW_ONLY_WARNING in w]) == 1, warnings
    assert fronts_fake.api_requests("red") == []


def test_no_warning_when_the_one_address_serves_mature_images(
    fake_civitai, tmp_path, capsys, caplog
):
    output = tmp_path / "out"
    argv = ["download", "model", MODEL, "--nsfw", "Mature,X", "--output", output, "-q"]
    argv += ["--base-url", fake_civitai.base_url]  # the older one-front fake: a mirror
    code, _out, err = _run(argv, capsys)
    assert code == 0, err
    assert set(_saved_levels(output)) == {"Mature", "X"}
    assert SFW_ONLY_WARNING not in caplog.text


# ------------------------------------------------------------------------ cached look-ups


def test_resource_look_ups_are_cached_per_front_and_age(fronts_fake, tmp_path):
    version = M.CHECKPOINT.version_id
    with CivitaiHttpClient(
        base_url=fronts_fake.base_url, red_base_url=fronts_fake.red_base_url, max_retries=0
    ) as client, open_cache(str(tmp_path)) as cache:
        com = ResourceResolver(client, cache, base=fronts_fake.base_url)
        red = ResourceResolver(client, cache, base=fronts_fake.red_base_url)
        assert com.version(version)["id"] == version
        assert com.version(version)["id"] == version  # cached
        assert red.version(version)["id"] == version  # another front: asked
        assert [r.front for r in fronts_fake.api_requests()] == ["com", "red"]
        # an answer older than its age is asked again; a young one is not
        cache._conn.execute("UPDATE civitai_lookups SET fetched_at = ?", (time.time() - 7200,))
        assert ResourceResolver(client, cache, base=fronts_fake.base_url).version(version)
        assert len(fronts_fake.api_requests()) == 2  # default age: a day
        aged = ResourceResolver(client, cache, base=fronts_fake.base_url, max_age=3600)
        assert aged.version(version)["id"] == version
        assert [r.front for r in fronts_fake.api_requests()] == ["com", "red", "com"]


def test_download_links_follow_the_current_address(fake_dataset, tmp_path):
    """The tab's Download missing after the Civitai address changed: the plan was resolved on
    one address (its cached downloadUrl points there); the files come from the new one."""
    models = tmp_path / "models"
    for folder in ("Stable-diffusion", "Lora", "embeddings", "VAE"):
        (models / folder).mkdir(parents=True)
    with FakeCivitai(fake_dataset) as old:
        old_origin = old.base_url
        with CivitaiHttpClient(base_url=old.base_url, max_retries=0) as client, open_cache(
            str(tmp_path / "out")
        ) as cache:
            item = CivitaiAPI(client=client).get_image(M.DEMO_IMAGE_ID)
            plan = reproduce(item, client, cache, str(models))
    ckpt = [r for r in plan.missing() if r.type == "checkpoint"]
    assert ckpt and ckpt[0].download_url.startswith(old_origin)  # as Civitai gave it
    with FakeCivitai(fake_dataset) as new:
        assert new.base_url != old_origin
        with CivitaiHttpClient(base_url=new.base_url, max_retries=0) as client:
            (outcome,) = fetch_missing(ckpt, plan.folders, client)
            assert outcome.status == "downloaded", outcome.message
            # and a fresh look-up on the new address is not answered by the old one's cache
            with open_cache(str(tmp_path / "out")) as cache:
                reproduce(item, client, cache, str(models))
        assert [r.path for r in new.api_requests() if r.path.startswith("/api/download/")]
        assert [r for r in new.api_requests() if "model-versions" in r.path]


# ------------------------------------------------------------------------ Civitai's bulkhead


@pytest.mark.parametrize(
    "message",
    [
        "Server busy, please retry shortly.",
        "Image search is temporarily overloaded — please retry.",
    ],
)
def test_a_bulkhead_503_is_a_pause_never_a_failed_task(
    fake_civitai, tmp_path, capsys, caplog, message
):
    (tmp_path / "settings.json").write_text(json.dumps({"http_retry_after_cap": 0.05}))
    fake_civitai.faults.queue_status(
        "/api/v1/images", 503, headers={"Retry-After": "2"}, body={"error": message}, count=3
    )
    output = tmp_path / "out"
    argv = ["download", "model", MODEL, "--nsfw", "all", "--output", output, "-q"]
    argv += ["--base-url", fake_civitai.base_url, "--report", tmp_path / "report.json"]

    code, out, err = _run(argv, capsys)

    assert code == 0, err
    assert len(_media(output)) == 34
    statuses = [r.status for r in fake_civitai.api_requests() if r.path == "/api/v1/images"]
    assert statuses[:4] == [503, 503, 503, 200]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["failed"] == 0, report
    pauses = [r.getMessage() for r in caplog.records if "HTTP 503" in r.getMessage()]
    assert len(pauses) == 3 and all("asked us to wait" in p for p in pauses)


def test_civitai_com_alone_answering_nothing_to_a_mature_listing_says_so(caplog):
    import requests_mock

    with requests_mock.Mocker() as mock, CivitaiHttpClient(
        base_url="https://civitai.com", max_retries=0
    ) as client:
        mock.get("https://civitai.com/api/v1/images", json={"items": [], "metadata": {}})
        api = CivitaiAPI(client=client)
        assert list(api.iter_images({"modelId": 1}, nsfw_levels=["Mature", "X"])) == []
        assert SFW_ONLY_WARNING in caplog.text
        caplog.clear()
        assert list(api.iter_images({"modelId": 1}, nsfw_levels=["None"])) == []
        assert SFW_ONLY_WARNING not in caplog.text
    # the default configuration asks civitai.red for it: no warning, the right front
    with requests_mock.Mocker() as mock, CivitaiHttpClient(max_retries=0) as client:
        mock.get("https://civitai.red/api/v1/images", json={"items": [], "metadata": {}})
        assert list(CivitaiAPI(client=client).iter_images({"modelId": 1}, nsfw_levels="X")) == []
        assert [r.hostname for r in mock.request_history] == ["civitai.red"]
    assert SFW_ONLY_WARNING not in caplog.text


def test_a_bulkhead_storm_does_not_spend_the_retry_budget(fake_civitai):
    """More bulkhead answers than http_max_retries: still a pause (a plain 503 without
    Retry-After, or a 500, still fails after the budget)."""
    busy = {"error": "Server busy, please retry shortly."}
    fake_civitai.faults.queue_status(
        "/api/v1/images", 503, headers={"Retry-After": "2"}, body=busy, count=4
    )
    with CivitaiHttpClient(
        base_url=fake_civitai.base_url, max_retries=1, retry_after_cap=0.01, backoff_factor=0.01
    ) as client:
        assert client.get_json("/api/v1/images", {"limit": 1})["items"]
        assert [r.status for r in fake_civitai.api_requests()] == [503] * 4 + [200]
        fake_civitai.reset()
        fake_civitai.faults.queue_status("/api/v1/images", 503, body=busy, count=4)
        with pytest.raises(Exception, match="503|busy"):
            client.get_json("/api/v1/images", {"limit": 1})
        assert len(fake_civitai.api_requests()) == 2


def test_the_list_command_lists_mature_levels_on_the_red_front(fronts_fake, tmp_path, capsys):
    dest = tmp_path / "listing.jsonl"
    argv = ["list", "model", MODEL, "--nsfw", "X", "--to", dest]
    argv += ["--base-url", fronts_fake.base_url, "--red-base-url", fronts_fake.red_base_url]
    code, _out, err = _run(argv, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert len(rows) == 3 and {r["nsfw_level"] for r in rows} == {"X"}
    assert {r.front for r in fronts_fake.api_requests()} == {"red"}


def test_civitai_own_hosts_in_the_settings_keep_the_red_front(monkeypatch):
    for value in ("https://www.civitai.com", "https://civitai.green", "https://civitai.com/"):
        monkeypatch.setenv("CIVITAI_BASE_URL", value)
        assert front_urls()[1] == "https://civitai.red"
    # given as an argument (--base-url), it is the one address: the warning case
    assert front_urls("https://civitai.com") == ("https://civitai.com",) * 2


def test_the_tabs_download_all_looks_up_on_the_front_of_the_ticked_levels(fronts_fake, tmp_path):
    from scripts.civitai_manager_libs.civitai.query import Target
    from scripts.civitai_manager_libs.engine.pool import DownloadEngine
    from scripts.civitai_manager_libs.image_downloader import ImageDownloader
    from scripts.civitai_manager_libs.ui import jobs

    client = CivitaiHttpClient(
        base_url=fronts_fake.base_url, red_base_url=fronts_fake.red_base_url, max_retries=0
    )
    downloader = ImageDownloader(
        api_client=CivitaiAPI(client=client),
        download_engine=DownloadEngine(client=client, max_workers=2),
        output_path=str(tmp_path / "out"),
    )
    try:
        task_ids = jobs._start(downloader, Target("model", MODEL), ["X"])
        assert downloader.wait(task_ids, timeout=60)
    finally:
        downloader.close()
        client.close()
    assert len(task_ids) == 3 and len(_media(tmp_path / "out")) == 3
    assert {r.front for r in fronts_fake.api_requests()} == {"red"}


def test_the_tab_loads_a_mature_gallery_from_the_red_front(fronts_fake, tmp_path):
    from scripts.civitai_manager_libs import http_client
    from scripts.civitai_manager_libs.ui import actions

    setting.update(
        {
            "civitai_base_url": fronts_fake.base_url,
            "civitai_red_base_url": fronts_fake.red_base_url,
            "gallery_cache_path": str(tmp_path / "cache"),
            "images.output_path": str(tmp_path / "images"),
            "http_max_retries": 0,
        }
    )
    http_client.reset_http_client()
    try:
        out = actions.load_gallery(
            f"https://civitai.red/models/{MODEL}", ["X"], "Newest", "AllTime", actions.GalleryView()
        )
        view = out[0]
        assert len(view.items) == 3 and {i.nsfw_level for i in view.items} == {"X"}
        assert all(i.page_url.startswith(fronts_fake.red_base_url + "/images/") for i in view.items)
        assert {r.front for r in fronts_fake.api_requests()} == {"red"}
    finally:
        http_client.reset_http_client()


def test_an_ids_batch_asks_the_front_that_serves_every_level(fronts_fake, tmp_path, capsys):
    mature = min(_mature_ids(fronts_fake))
    safe = min(i.id for i in fronts_fake.dataset.images if i.nsfw_level == "None")
    output = tmp_path / "out"
    argv = ["download", "image", mature, safe, "--output", output, "-q"]
    argv += ["--base-url", fronts_fake.base_url, "--red-base-url", fronts_fake.red_base_url]
    code, _out, err = _run(argv, capsys)
    assert code == 0, err
    assert len(_media(output)) == 2
    batches = [r for r in fronts_fake.api_requests() if r.query.get("ids")]
    assert batches and {r.front for r in batches} == {"red"}


def test_web_api_listings_follow_the_levels_to_the_red_front_too(fronts_fake, tmp_path, capsys):
    """A collection (the web API, tRPC) asked with Mature/X goes to civitai.red like a REST
    listing; safe-for-work levels stay on civitai.com (its pages went to civitai.com whatever
    the levels; test fails without the routing)."""
    for levels, front in (("Mature,X", "red"), ("None,Soft", "com")):
        fronts_fake.reset()
        output = tmp_path / front
        argv = ["download", "collection", 7001, "--nsfw", levels, "--output", output, "-q"]
        argv += ["--base-url", fronts_fake.base_url, "--red-base-url", fronts_fake.red_base_url]
        code, _out, err = _run(argv, capsys)
        assert code == 0, err
        web = [r for r in fronts_fake.api_requests() if r.path.startswith("/api/trpc/")]
        assert web and {r.front for r in web} == {front}, [(r.path, r.front) for r in web]
