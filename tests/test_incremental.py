"""Incremental re-runs (issue 22): a listing that completed before, asked again newest first, stops
at the first page reaching an image it has; other orders, ``--full``, a changed filter set and a
listing that never completed list fully. Listing requests are counted at the fake."""

from __future__ import annotations

import dataclasses
import io

import pytest

from scripts.civitai_manager_libs import http_client
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.planning.incremental import newest_first

MODEL = 500_000  # Dataset.generate's one model, one version
VERSION = 500_001


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


def _download(fake, out, *argv):
    buf = io.StringIO()
    code = cli.main(
        ["download", *[str(a) for a in argv], "--nsfw", "all", "--metadata", "none", "-q"]
        + ["--output", str(out), "--base-url", fake.base_url],
        out=buf,
    )
    return code, buf.getvalue()


def _listing_requests(fake):
    return [r for r in fake.api_requests() if r.path == "/api/v1/images"]


def _image_requests(fake):
    return [r for r in fake.image_requests() if r.method == "GET"]


def test_a_finished_3000_image_listing_with_5_new_images_costs_one_listing_request(tmp_path):
    with FakeCivitai(Dataset.generate(3000, image_kb=1, seed=22)) as fake:
        out = tmp_path / "out"
        code, text = _download(fake, out, "model", MODEL)
        assert code == 0, text
        assert len(_listing_requests(fake)) == 15  # 3,000 at 200 a page
        new = fake.dataset.post_images(MODEL, 5)
        fake.reset()
        code, text = _download(fake, out, "model", MODEL)
        assert code == 0, text
        assert len(_listing_requests(fake)) == 1
        assert len(_image_requests(fake)) == 5
        assert "saved 5" in text
        assert "incremental: stopped at known image 60002999 after 1 page" in text
        # once more, nothing new: one request, no download
        fake.reset()
        code, text = _download(fake, out, "model", MODEL)
        assert code == 0, text
        assert (len(_listing_requests(fake)), len(_image_requests(fake))) == (1, 0)
        assert f"stopped at known image {new[-1].id}" in text
        # --full lists every page again (and downloads nothing it has)
        fake.reset()
        code, text = _download(fake, out, "model", MODEL, "--full")
        assert code == 0, text
        assert len(_listing_requests(fake)) == 16
        assert len(_image_requests(fake)) == 0
        assert "incremental" not in text


def test_an_interrupted_listing_resumes_and_completes_before_it_is_incremental(
    tmp_path, monkeypatch
):
    with FakeCivitai(Dataset.generate(450, image_kb=1, seed=23)) as fake:
        real_get_json = http_client.CivitaiHttpClient.get_json
        failing = {"on": True}

        def get_json(self, url, params=None):  # page 2 of the first run answers 400
            if failing["on"] and "api/v1/images" in str(url) and (params or {}).get("cursor"):
                failing["on"] = False
                fake.faults.queue_status("/api/v1/images", 400, body=b'{"error": "x"}', count=1)
            return real_get_json(self, url, params)

        monkeypatch.setattr(http_client.CivitaiHttpClient, "get_json", get_json)
        out = tmp_path / "out"
        code, text = _download(fake, out, "model", MODEL)
        assert code != 0 and not failing["on"], text
        fake.dataset.post_images(MODEL, 5)
        fake.reset()
        code, text = _download(fake, out, "model", MODEL)  # resumes at page 2, to the end
        assert code == 0, text
        assert len(_listing_requests(fake)) == 2
        assert all(r.query.get("cursor") for r in _listing_requests(fake))
        assert "incremental" not in text
        fake.reset()
        code, text = _download(fake, out, "model", MODEL)  # completed now: what is new only
        assert code == 0, text
        assert len(_listing_requests(fake)) == 1
        assert len(_image_requests(fake)) == 5
        assert "incremental: stopped at known image 60000449 after 1 page" in text


@pytest.mark.parametrize(
    "target, incremental",
    [
        (("version", VERSION), False),  # Civitai's default sort: Most Reactions
        (("filter", f"modelVersionId={VERSION}", "sort=Most Reactions"), False),
        (("filter", f"modelVersionId={VERSION}", "sort=Oldest"), False),
        (("filter", f"modelVersionId={VERSION}", "sort=Newest"), True),
        (("filter", f"modelId={MODEL}", "sort=Most Reactions"), True),  # whole model: newest
    ],
)
def test_only_newest_first_orders_stop_early_the_others_say_so(tmp_path, target, incremental):
    with FakeCivitai(Dataset.generate(450, image_kb=1, seed=24)) as fake:
        out = tmp_path / "out"
        code, text = _download(fake, out, *target, "--limit", 0)
        assert code == 0, text
        assert len(_listing_requests(fake)) == 3
        fake.dataset.post_images(MODEL, 5)
        fake.reset()
        code, text = _download(fake, out, *target, "--limit", 0)
        assert code == 0, text
        assert len(_image_requests(fake)) == 5
        if incremental:
            assert len(_listing_requests(fake)) == 1
            assert "incremental: stopped at known image" in text
        else:
            assert len(_listing_requests(fake)) == 3
            assert "can put new images anywhere, so every page is listed" in text


def test_a_changed_filter_set_is_a_new_full_listing(tmp_path):
    with FakeCivitai(Dataset.generate(450, image_kb=1, seed=25)) as fake:
        out = tmp_path / "out"
        assert _download(fake, out, "model", MODEL)[0] == 0
        fake.reset()
        code, text = _download(fake, out, "model", MODEL, "--type", "image")
        assert code == 0, text
        assert len(_listing_requests(fake)) == 3
        assert "incremental" not in text
        fake.reset()  # and that listing, completed now, is incremental in its turn
        code, text = _download(fake, out, "model", MODEL, "--type", "image")
        assert len(_listing_requests(fake)) == 1, text


def test_with_tags_is_a_new_listing_not_an_incremental_one(tmp_path):
    """--with-tags changes what Civitai answers (each image's tags, kept in the sidecar): a
    re-run with it lists every page and records the tags of every image it has."""
    with FakeCivitai(Dataset.generate(450, image_kb=1, seed=26)) as fake:
        out = tmp_path / "out"
        assert _download(fake, out, "model", MODEL)[0] == 0
        fake.reset()
        code, text = _download(fake, out, "model", MODEL, "--with-tags")
        assert code == 0, text
        assert len(_listing_requests(fake)) == 3, text  # 450 at 200 a page: a full listing
        assert all(r.query.get("withTags") == "true" for r in _listing_requests(fake))
        assert "incremental" not in text
        fake.reset()
        code, text = _download(fake, out, "model", MODEL, "--with-tags")
        assert len(_listing_requests(fake)) == 1, text  # that listing is incremental in its turn


def _changed(field_name, request):
    """``request`` with field ``field_name`` changed the way an option would change it."""
    from scripts.civitai_manager_libs.civitai.filters import FilterSpec
    from scripts.civitai_manager_libs.civitai.web_listing import WebListing

    other = {
        "kind": "version",
        "value": 4202,
        "params": {**request.params, "someNewOption": "1"},
        "limit": 7,
        "levels": ["None"],
        "spec": FilterSpec.build(media_type="video"),
        "source": WebListing("collection", 9),
        "full": True,
    }
    return dataclasses.replace(request, **{field_name: other[field_name]})


def test_every_field_of_a_listing_request_is_keyed_or_declared_a_run_mode():
    """The mechanism behind "a changed option set is a new listing": each field of
    ListingRequest is declared in KEYED, and each keyed one changes the query key (a new field,
    or a new parameter an option adds, cannot be forgotten)."""
    from scripts.civitai_manager_libs.planning import listing_request as lr

    fields = [f.name for f in dataclasses.fields(lr.ListingRequest)]
    assert sorted(fields) == sorted(lr.KEYED), "declare the new field in listing_request.KEYED"
    base = lr.model_listing(4201, nsfw_levels=["None", "Soft"])
    for name in fields:
        changed = _changed(name, base)
        if name == "source":  # a web listing is named by its kind and value, its source's own
            web = lr.for_target("collection", 9)
            assert (web.kind, web.value) == (web.source.kind, web.source.value)
            continue
        if lr.KEYED[name] is None:
            assert changed.query_key == base.query_key, name
        else:
            assert changed.query_key != base.query_key, name
    tagged = dataclasses.replace(base, params={**base.params, "withTags": "true"})
    assert tagged.query_key == base.query_key + '|params={"withTags":"true"}'
    # what kind, value and the filters imply is not repeated: the keys stay as they were
    spec = lr.model_listing(
        4201, nsfw_levels=["None"], filters=lr.FilterSpec.build(since="2024-01-01")
    )
    assert "|params=" not in spec.query_key
    assert (
        "|params="
        not in lr.for_target("filter", None, params={"modelId": 1, "sort": "Newest"}).query_key
    )
    assert lr.for_target("user", "alice").query_key == "creator:alice|nsfw=None,Soft|limit=20"


def test_which_orders_are_newest_first():
    assert newest_first({"modelId": 1})
    assert newest_first({"modelId": 1, "sort": "Most Reactions"})
    assert not newest_first({"modelId": 1, "sort": "Oldest"})
    assert not newest_first({"modelId": 1, "sort": "Random"})
    assert not newest_first({"modelId": 1, "modelVersionId": 2})
    assert newest_first({"modelVersionId": 2, "sort": "Newest"})
    assert not newest_first({"username": "a"})
    assert newest_first({"username": "a", "sort": "Newest"})
