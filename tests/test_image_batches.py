"""Images by id in batches (``ids=``), tags (``withTags``) and captions from tags: the fake's
answers as Civitai's schema shows them, the request counts, the fallback, the CLI and export."""

from __future__ import annotations

import io
import json
import math
import os

import pytest
import requests

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.export.captions import build_caption
from scripts.civitai_manager_libs.fake_civitai.builders import TAGS
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata

MISSING = [990000011, 990000012, 990000013]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)
    setting.reset()
    yield
    setting.reset()


@pytest.fixture
def api(fake_civitai):
    client = CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="", max_retries=0)
    yield CivitaiAPI(client=client)
    client.close()


def listing_requests(fake):
    return [r for r in fake.api_requests() if r.path == "/api/v1/images"]


def run_cli(argv, capsys):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue(), capsys.readouterr().err


def stills(fake, n, levels=("None", "Soft")):
    chosen = [
        i
        for i in fake.dataset.images
        if i.nsfw_level in levels and i.media != "mp4" and i.browsing_level
    ]
    return chosen[:n]


# -- the fake answers as Civitai does --------------------------------------------------------


def get(fake, **params):
    return requests.get(fake.base_url + "/api/v1/images", params=params, timeout=10)


def test_ids_is_a_filter_in_the_sorts_order_hidden_and_missing_ids_absent(fake_civitai):
    fake = fake_civitai
    safe = stills(fake, 4, ("None",))
    mature = next(i for i in fake.dataset.images if i.nsfw_level == "Mature")
    asked = [safe[3].id, MISSING[0], mature.id, safe[0].id, safe[2].id, safe[1].id]
    body = get(fake, ids=",".join(map(str, asked)), nsfw="None", sort="Newest").json()
    got = [item["id"] for item in body["items"]]
    assert sorted(got) == sorted(i.id for i in safe)  # mature (hidden) and missing: absent
    newest_first = sorted(safe, key=lambda i: -i.created_ms)
    assert got == [i.id for i in newest_first]  # the sort's order, not the request's
    assert "tags" not in body["items"][0]
    limited = get(fake, ids=",".join(map(str, asked)), nsfw="None", limit=2).json()
    assert len(limited["items"]) == 2 and limited["metadata"].get("nextCursor")
    with_mature = get(fake, ids=f"{mature.id}", nsfw="X").json()
    assert [item["id"] for item in with_mature["items"]] == [mature.id]


@pytest.mark.parametrize("bad", ["1,abc", "12;13", "0x1g"])
def test_a_malformed_ids_list_is_a_400(fake_civitai, bad):
    answer = get(fake_civitai, ids=bad)
    assert answer.status_code == 400 and "expected number" in answer.json()["error"]


def test_with_tags_and_flat_meta(fake_civitai):
    fake = fake_civitai
    image = next(i for i in fake.dataset.images if len(i.tag_ids) >= 2 and i.meta)
    item = get(fake, ids=image.id, nsfw="X", withTags="true", withMeta="true").json()["items"][0]
    assert item["tags"] == [{"id": t, "name": TAGS[t]} for t in image.tag_ids]
    assert item["meta"] == image.meta  # flat on the search path
    wrapped = get(fake, imageId=image.id, nsfw="X", withMeta="true").json()["items"][0]
    assert wrapped["meta"] == {"id": image.id, "meta": image.meta}
    flat = get(fake, imageId=image.id, nsfw="X", withMeta="true", flatMeta="true").json()
    assert flat["items"][0]["meta"] == image.meta
    assert get(fake, ids=image.id, withTags="maybe").status_code == 400


# -- CivitaiAPI.get_images: exact request counts, fallback -------------------------------------


@pytest.mark.parametrize("count", [1, 200, 201, 450])
def test_n_ids_take_ceil_n_over_200_requests(fake_civitai, api, count):
    shown = [i.id for i in fake_civitai.dataset.images if i.browsing_level in (1, 2, 4, 8, 16)]
    real = shown[: max(0, count - 3)]
    fake_ids = list(range(990000001, 990000001 + count - len(real)))
    ids = real + fake_ids
    assert len(ids) == count
    batch = api.get_images(ids)
    sent = listing_requests(fake_civitai)
    assert len(sent) == math.ceil(count / 200) == batch.requests
    assert all("ids" in r.query and "imageId" not in r.query for r in sent)
    assert sum(len(r.query["ids"].split(",")) for r in sent) == count
    assert [item.id for item in batch.items] == real  # the order given
    assert batch.missing == fake_ids and not batch.one_by_one


@pytest.mark.parametrize("mode", ["refused", "ignored"])
def test_a_server_without_ids_is_asked_one_by_one(fake_civitai, api, mode):
    fake_civitai.ids_param = mode
    real = [i.id for i in stills(fake_civitai, 5)]
    batch = api.get_images(real + MISSING[:1])
    sent = listing_requests(fake_civitai)
    assert [("ids" in r.query) for r in sent] == [True] + [False] * 6
    assert [r.query.get("imageId") for r in sent[1:]] == [str(i) for i in real + MISSING[:1]]
    assert [item.id for item in batch.items] == real
    assert batch.missing == MISSING[:1] and batch.one_by_one and batch.requests == 7


def test_the_fallback_holds_for_every_later_batch(fake_civitai, api):
    fake_civitai.ids_param = "refused"
    ids = [i.id for i in fake_civitai.dataset.images][:201]
    api.get_images(ids)
    sent = listing_requests(fake_civitai)
    assert sum("ids" in r.query for r in sent) == 1  # refused once, not asked again
    assert len(sent) == 1 + 201


# -- the CLI ---------------------------------------------------------------------------------


def test_download_several_images_in_one_request_and_report_the_missing(
    fake_civitai, tmp_path, capsys, caplog
):
    fake = fake_civitai
    wanted = stills(fake, 4)
    out = tmp_path / "out"
    argv = ["download", "image", *[i.id for i in wanted], *MISSING]
    code, text, err = run_cli([*argv, "--base-url", fake.base_url, "--output", out, "-q"], capsys)
    assert code == cli.EXIT_FAILED  # missing images are failed tasks
    line = f"3 of 7 ids are not on Civitai or hidden: {', '.join(map(str, MISSING))}"
    assert [r.levelname for r in caplog.records if r.getMessage() == line] == ["WARNING"]
    grouped = [ln for ln in text.splitlines() if "not on Civitai, or hidden" in ln]
    assert len(grouped) == 1 and grouped[0].startswith("3 images failed")  # one line per reason
    assert all(str(image_id) in grouped[0] for image_id in MISSING)
    sent = listing_requests(fake)
    assert len(sent) == 1 and "withTags" not in sent[0].query
    assert sorted(int(x) for x in sent[0].query["ids"].split(",")) == sorted(
        [i.id for i in wanted] + MISSING
    )
    assert len([r for r in fake.image_requests() if "original=true" in r.path]) == 4
    assert "saved 4" in text and "failed 3" in text
    for image in wanted:
        sidecars = list(out.rglob(f"{image.id}.json"))
        assert len(sidecars) == 1
        assert json.loads(sidecars[0].read_text())["tags"] is None  # not asked for


def test_download_from_a_file_of_ids_and_links(fake_civitai, tmp_path, capsys):
    fake = fake_civitai
    wanted = stills(fake, 3)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(
        "# favourites\n"
        f"{wanted[0].id}\n"
        "\n"
        f"https://civitai.com/images/{wanted[1].id}  # a link\n"
        f"{wanted[2].id}\n"
        f"{wanted[0].id}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    argv = ["download", "image", "--from-file", ids_file, "--base-url", fake.base_url]
    code, text, err = run_cli([*argv, "--output", out, "-q"], capsys)
    assert code == cli.EXIT_OK, err
    assert len(listing_requests(fake)) == 1
    assert "saved 3" in text


def test_a_bad_line_in_the_id_file_is_a_usage_error(fake_civitai, tmp_path, capsys):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("123\nhttps://civitai.com/models/5\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = ["download", "image", "--from-file", ids_file, "--base-url", fake_civitai.base_url]
    code, _text, err = run_cli([*argv, "--output", out], capsys)
    assert code == cli.EXIT_USAGE and "line 2" in err
    assert not out.exists() and fake_civitai.api_requests() == []


def test_when_no_id_is_on_civitai_nothing_is_written(fake_civitai, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["download", "image", *MISSING, "--base-url", fake_civitai.base_url, "--output", out]
    code, _text, err = run_cli(argv, capsys)
    assert code == cli.EXIT_USAGE and "none of the 3 image ids" in err
    assert not out.exists()


def test_the_cli_falls_back_one_by_one_when_the_batch_is_refused(
    fake_civitai, tmp_path, capsys, caplog
):
    fake = fake_civitai
    fake.ids_param = "refused"
    wanted = stills(fake, 3)
    out = tmp_path / "out"
    argv = ["download", "image", *[i.id for i in wanted], MISSING[0], "--output", out, "-q"]
    code, text, err = run_cli([*argv, "--base-url", fake.base_url], capsys)
    assert code == cli.EXIT_FAILED
    line = f"1 of 4 ids is not on Civitai or hidden: {MISSING[0]}"
    assert any(r.getMessage() == line for r in caplog.records)
    sent = listing_requests(fake)
    assert len(sent) == 1 + 4 and sent[0].status == 400
    assert "saved 3" in text


# -- tags ------------------------------------------------------------------------------------


def test_with_tags_is_sent_only_when_asked_and_lands_in_the_record(fake_civitai, tmp_path, capsys):
    fake = fake_civitai
    model = 4201
    base = ["download", "model", model, "--limit", 5, "--base-url", fake.base_url, "-q"]
    code, _text, err = run_cli([*base, "--output", tmp_path / "plain"], capsys)
    assert code == cli.EXIT_OK, err
    assert listing_requests(fake) and all("withTags" not in r.query for r in fake.api_requests())
    fake.reset()
    code, _text, err = run_cli([*base, "--output", tmp_path / "tagged", "--with-tags"], capsys)
    assert code == cli.EXIT_OK, err
    assert listing_requests(fake)
    assert all(r.query.get("withTags") == "true" for r in listing_requests(fake))
    sidecars = list((tmp_path / "tagged").rglob("*.json"))
    assert len(sidecars) == 5
    for path in sidecars:
        record = json.loads(path.read_text())
        image = fake.dataset.image(record["id"])
        assert record["tags"] == [{"id": t, "name": TAGS[t]} for t in image.tag_ids]
    for path in (tmp_path / "plain").rglob("*.json"):
        assert json.loads(path.read_text())["tags"] is None


def test_one_image_with_tags_takes_one_request(fake_civitai, tmp_path, capsys):
    fake = fake_civitai
    image = next(i for i in stills(fake, 50) if i.tag_ids)
    argv = ["download", "image", image.id, "--with-tags", "--base-url", fake.base_url, "-q"]
    code, _text, err = run_cli([*argv, "--output", tmp_path / "out"], capsys)
    assert code == cli.EXIT_OK, err
    sent = listing_requests(fake)
    assert len(sent) == 1 and sent[0].query["withTags"] == "true"
    (sidecar,) = (tmp_path / "out").rglob(f"{image.id}.json")
    assert [t["name"] for t in json.loads(sidecar.read_text())["tags"]] == [
        TAGS[t] for t in image.tag_ids
    ]


def test_list_with_tags_fills_the_tags_column(fake_civitai, tmp_path, capsys):
    fake = fake_civitai
    dest = tmp_path / "rows.jsonl"
    argv = ["list", "model", 4201, "--limit", 5, "--to", dest, "--base-url", fake.base_url, "-q"]
    code, _text, err = run_cli([*argv, "--with-tags"], capsys)
    assert code == 0, err
    assert all(r.query.get("withTags") == "true" for r in listing_requests(fake))
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    assert rows and all(
        row["tags"] == (", ".join(TAGS[t] for t in fake.dataset.image(row["id"]).tag_ids) or None)
        for row in rows
    )


def test_record_tags_shapes():
    assert extract_image_metadata({"id": 1, "url": "u"})["tags"] is None
    assert extract_image_metadata({"id": 1, "url": "u", "tags": []})["tags"] == []
    odd = {"id": 1, "url": "u", "tags": [{"id": "5", "name": " car "}, {"id": 2}, "anime", 7]}
    assert extract_image_metadata(odd)["tags"] == [
        {"id": 5, "name": "car"},
        {"id": None, "name": "anime"},
    ]


# -- captions --------------------------------------------------------------------------------


def test_build_caption_sources():
    tags = [{"id": 1, "name": "Car"}, {"id": 2, "name": "sci-fi"}]
    prompt = "(car:1.2), red, <lora:x:1>"
    assert build_caption(prompt, tags) == "car, red"
    assert build_caption(prompt, tags, "tags") == "Car, sci-fi"
    assert build_caption(prompt, tags, "both") == "car, red, sci-fi"
    assert (
        build_caption(prompt, None, "tags", prefix="trigger") == ""
    )  # a prefix alone is no caption
    assert build_caption(prompt, tags, "tags", prefix="trigger") == "trigger, Car, sci-fi"
    with pytest.raises(ValueError):
        build_caption(prompt, tags, "title")


@pytest.mark.parametrize("source", ["tags", "both"])
def test_export_captions_from_tags(fake_civitai, tmp_path, capsys, source):
    fake = fake_civitai
    out = tmp_path / "out"
    argv = ["download", "model", 4201, "--limit", 6, "--with-tags", "--base-url", fake.base_url]
    code, _text, err = run_cli([*argv, "--output", out, "-q"], capsys)
    assert code == cli.EXIT_OK, err
    dest = tmp_path / "set"
    argv = ["export", "--from", out, "--to", dest, "--format", "captions", "-q"]
    code, text, err = run_cli([*argv, "--caption-source", source], capsys)
    assert code == 0, err
    captions = {int(p.stem): p.read_text(encoding="utf-8") for p in dest.glob("*.txt")}
    assert captions
    for image_id, caption in captions.items():
        names = [TAGS[t] for t in fake.dataset.image(image_id).tag_ids]
        words = caption.split(", ")
        if source == "tags":
            assert words == names
        else:
            assert words[-len(names) :] == names or all(n.lower() in caption.lower() for n in names)
            assert len(words) > len(names)  # the prompt's words first
    tagless = [i for i in fake.dataset.select(model_id=4201) if not i.tag_ids]
    if source == "tags" and tagless:
        assert "no prompt to caption" in text or all(i.id not in captions for i in tagless)


def test_export_caption_source_default_is_the_prompt(fake_civitai, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["download", "model", 4201, "--limit", 3, "--with-tags"]
    code, _t, err = run_cli([*argv, "--base-url", fake_civitai.base_url, "--output", out], capsys)
    assert code == cli.EXIT_OK, err
    default, prompt = tmp_path / "a", tmp_path / "b"
    for dest, extra in ((default, []), (prompt, ["--caption-source", "prompt"])):
        argv = ["export", "--from", out, "--to", dest, "--format", "captions", "-q", *extra]
        assert run_cli(argv, capsys)[0] == 0
    read = lambda d: {p.name: p.read_text() for p in d.glob("*.txt")}  # noqa: E731
    assert read(default) == read(prompt) and read(default)
    bad = ["export", "--from", out, "--to", tmp_path / "c", "--format", "captions"]
    code, _t, err = run_cli([*bad, "--caption-source", "title"], capsys)
    assert code == 2 and "invalid choice" in err and not (tmp_path / "c").exists()
    assert os.path.isdir(out)


# -- retry-failed: the tab's and the CLI's multi-image action --------------------------------


def test_retry_failed_looks_the_archives_failed_images_up_in_one_batch(
    fake_civitai, tmp_path, capsys
):
    from scripts.civitai_manager_libs.store.archive import Archive

    fake = fake_civitai
    wanted = stills(fake, 3)
    out = tmp_path / "out"
    out.mkdir()
    with Archive(str(out / ".civitai_archive.sqlite3")) as archive:
        for number, image_id in enumerate([i.id for i in wanted] + MISSING[:1]):
            archive.record_task(
                {"task_id": f"t{number}", "image_id": image_id, "status": "failed", "url": ""}
            )
    argv = ["retry-failed", "--base-url", fake.base_url, "--output", out, "-q"]
    code, text, err = run_cli(argv, capsys)
    assert code == cli.EXIT_FAILED, err  # the missing one fails again
    sent = listing_requests(fake)
    assert len(sent) == 1 and len(sent[0].query["ids"].split(",")) == 4
    assert "saved 3" in text
    assert f"1 image failed: no longer on Civitai (HTTP 404) — id {MISSING[0]}" in text
