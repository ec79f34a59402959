"""Issue 13, "reproduce an image": resources resolved from every source, cached look-ups, local
matching by SHA-256 under any name, verified downloads, the CLI command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.errors import DiskSpaceError
from scripts.civitai_manager_libs.fake_civitai import models_api as M
from scripts.civitai_manager_libs.metadata.infotext import parse_infotext, to_infotext
from scripts.civitai_manager_libs.metadata.record import extract_image_metadata, format_txt
from scripts.civitai_manager_libs.metadata.resource_refs import Resource, collect_resources
from scripts.civitai_manager_libs.metadata.resources_text import with_lora_tags
from scripts.civitai_manager_libs.resources import fetch as fetch_mod
from scripts.civitai_manager_libs.resources.fetch import fetch_missing
from scripts.civitai_manager_libs.resources.hash_cache import FileHasher
from scripts.civitai_manager_libs.resources.local_models import match_local, scan_models_folder
from scripts.civitai_manager_libs.resources.resolve import ResourceResolver
from scripts.civitai_manager_libs.resources.service import open_cache, reproduce
from scripts.civitai_manager_libs.store import resource_cache
from scripts.civitai_manager_libs.transport.client import CivitaiHttpClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHA = {spec.version_id: M.hashes_of(spec.version_id)["SHA256"] for spec in M.RESOURCE_FILES}


def one(resources, **wanted):
    found = [r for r in resources if all(getattr(r, k) == v for k, v in wanted.items())]
    assert len(found) == 1, (wanted, resources)
    return found[0]


# ------------------------------------------------------------------------ each source, offline


@pytest.mark.parametrize(
    "meta, version_ids, expected",
    [
        (
            {"civitaiResources": [{"type": "lora", "modelVersionId": 7, "weight": 0.7}]},
            None,
            dict(type="lora", version_id=7, weight=0.7),
        ),
        (
            {"resources": [{"type": "lora", "name": "foo", "hash": "abcdef1234", "weight": 0.5}]},
            None,
            dict(type="lora", name="foo", hashes=["ABCDEF1234"], weight=0.5),
        ),
        ({"hashes": {"LORA:pony/foo": "ABCDEF1234"}}, None, dict(type="lora", name="pony/foo")),
        ({"hashes": {"embed:bad": "1234567890"}}, None, dict(type="embedding", name="bad")),
        ({"hashes": {"vae": "1234567890"}, "VAE": "x.pt"}, None, dict(type="vae", name="x.pt")),
        (
            {"Model": "ckpt", "Model hash": "1234567890"},
            None,
            dict(type="checkpoint", name="ckpt", hashes=["1234567890"]),
        ),
        ({"Lora hashes": "a: 1234567890"}, None, dict(type="lora", name="a")),
        ({"TI hashes": "neg: 1234567890"}, None, dict(type="embedding", name="neg")),
        ({"TI hashes": {"neg": "1234567890"}}, None, dict(type="embedding", name="neg")),
        ({"prompt": "x, <lora:tagged:0.3>"}, None, dict(type="lora", name="tagged", weight=0.3)),
        ({"prompt": "x"}, [55], dict(type="other", version_id=55)),
    ],
)
def test_each_source_names_a_resource(meta, version_ids, expected):
    resources = collect_resources(meta, version_ids)
    assert len(resources) == 1
    for key, value in expected.items():
        assert getattr(resources[0], key) == value


def test_mentions_of_one_resource_merge():
    meta = {
        "Model": "ckpt",
        "Model hash": "1234567890",
        "hashes": {"model": "1234567890", "lora:a": "ABCDEF1234"},
        "resources": [{"type": "lora", "name": "a", "weight": 0.6}],
        "prompt": "<lora:a:0.6>",
    }
    resources = collect_resources(meta, None)
    assert sorted((r.type, r.name) for r in resources) == [("checkpoint", "ckpt"), ("lora", "a")]


def test_record_txt_and_infotext_carry_the_resources(fake_dataset):
    image = fake_dataset.image(M.DEMO_IMAGE_ID)
    record = extract_image_metadata({"id": image.id, "meta": image.meta, "url": "u"})
    assert any(r["type"] == "embedding" for r in record["resources"])
    txt = format_txt(record)
    assert "Resources:" in txt and "embedding: badDream" in txt
    prompt = parse_infotext(to_infotext(record))["prompt"]
    # softLight_v2 is only in meta.resources: its tag is added; neonLines_v1 is not repeated.
    assert prompt.count("<lora:softLight_v2:0.6>") == 1
    assert prompt.count("neonLines_v1") == 1


def test_lora_tags_are_never_added_twice_and_use_the_local_name():
    lora = Resource(type="lora", name="civ_name", weight=0.8, local_name="mine")
    assert with_lora_tags("a <lora:civ_name:0.8>", [lora]) == "a <lora:mine:0.8>"
    assert with_lora_tags("a <lora:mine:0.5>", [lora]) == "a <lora:mine:0.5>"
    assert with_lora_tags("a", [lora]) == "a, <lora:mine:0.8>"
    once = with_lora_tags("a", [lora])
    assert with_lora_tags(once, [lora]) == once


# ------------------------------------------------------------------------ look-ups and caching


@pytest.fixture
def client(fake_civitai):
    with CivitaiHttpClient(base_url=fake_civitai.base_url, api_key="", max_retries=0) as c:
        yield c


def _item(fake, client, image_id):
    return CivitaiAPI(client=client).get_image(image_id)


def _api_paths(fake):
    return [r.path for r in fake.api_requests() if "model-versions" in r.path]


def test_demo_image_resolves_to_four_named_resources(fake_civitai, client, tmp_path):
    with open_cache(str(tmp_path)) as cache:
        plan = reproduce(_item(fake_civitai, client, M.DEMO_IMAGE_ID), client, cache, None)
    names = sorted((r.type, r.model_name, r.file_name) for r in plan.resources)
    assert names == [
        ("checkpoint", "Reproduce Checkpoint", "reproduceCkpt_v10.safetensors"),
        ("embedding", "BadDream", "badDream.safetensors"),
        ("lora", "Neon Lines", "neonLines_v1.safetensors"),
        ("lora", "Soft Light", "softLight_v2.safetensors"),
    ]
    neon = one(plan.resources, file_name="neonLines_v1.safetensors")
    assert neon.weight == 0.8 and neon.sha256 == SHA[M.LORA_NEON.version_id]
    assert set(neon.sources) >= {"civitaiResources", "prompt"}  # the tag joined its version


def test_a_second_image_with_the_same_lora_makes_no_request_for_it(fake_civitai, client, tmp_path):
    with open_cache(str(tmp_path)) as cache:
        reproduce(_item(fake_civitai, client, M.DEMO_IMAGE_ID), client, cache, None)
        fake_civitai.reset()
        second = _item(fake_civitai, client, M.SAME_LORA_IMAGE_ID)
        plan = reproduce(second, client, cache, None)
    neon_hash = M.autov2(M.LORA_NEON)
    paths = _api_paths(fake_civitai)
    assert not [p for p in paths if "31102" in p or neon_hash in p], paths
    assert paths == [f"/api/v1/model-versions/by-hash/{M.autov2(M.VAE)}"]  # only the new VAE
    assert one(plan.resources, type="vae").file_name == "clearVAE.safetensors"
    assert one(plan.resources, type="lora").sources[0] in ("Lora hashes", "modelVersionIds")


def test_a_404_is_cached_with_an_age_and_reported_not_on_civitai(fake_civitai, client, tmp_path):
    item = _item(fake_civitai, client, M.UNKNOWN_IMAGE_ID)
    with open_cache(str(tmp_path)) as cache:
        plan = reproduce(item, client, cache, None)
        mystery = one(plan.resources, name="mystery_lora")
        assert mystery.status == "not_on_civitai" and mystery.note == "not on Civitai"
        # kept under the front that answered (issue 20: each front answers for itself)
        cached = cache.get_lookup(f"{fake_civitai.base_url} hash:{M.UNKNOWN_LORA_HASH}")
        assert cached is not None and cached.status == 404 and cached.age < 60
        fake_civitai.reset()
        reproduce(item, client, cache, None)
        assert _api_paths(fake_civitai) == []  # the 404 is trusted
        # ... for a while: an old 404 is asked again.
        cache._conn.execute(
            "UPDATE civitai_lookups SET fetched_at = ? WHERE status = 404",
            (time.time() - resource_cache.NOT_FOUND_MAX_AGE - 1,),
        )
        reproduce(item, client, cache, None)
    assert _api_paths(fake_civitai) == [f"/api/v1/model-versions/by-hash/{M.UNKNOWN_LORA_HASH}"]


def test_lookups_survive_a_new_process(fake_civitai, client, tmp_path):
    with open_cache(str(tmp_path)) as cache:
        ResourceResolver(client, cache).version(M.LORA_SOFT.version_id)
    fake_civitai.reset()
    with open_cache(str(tmp_path)) as cache:
        resolver = ResourceResolver(client, cache)
        assert resolver.version(M.LORA_SOFT.version_id)["id"] == M.LORA_SOFT.version_id
    assert resolver.requests == 0 and _api_paths(fake_civitai) == []


def test_by_hash_accepts_every_hash_kind(fake_civitai, client):
    for kind, value in M.hashes_of(M.EMBEDDING.version_id).items():
        if kind == "AutoV1":
            continue  # every small fake file shares the AutoV1 of an empty window
        body = client.get_json(f"/api/v1/model-versions/by-hash/{value.lower()}")
        assert body["id"] == M.EMBEDDING.version_id, kind


# ------------------------------------------------------------------------ local files


def _models(tmp_path, files):
    root = tmp_path / "models"
    for folder, name, version_id in files:
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(M.model_file_bytes(version_id))
    (root / "Stable-diffusion").mkdir(parents=True, exist_ok=True)
    return str(root)


def test_local_match_by_hash_under_another_name_with_a_persistent_hash_cache(tmp_path):
    root = _models(tmp_path, [("Lora", "my_local_name.safetensors", M.LORA_NEON.version_id)])
    (tmp_path / "models" / "Lora" / "unrelated.safetensors").write_bytes(b"x" * 100)
    lora = Resource(type="lora", name="neonLines_v1", sha256=SHA[M.LORA_NEON.version_id])
    with open_cache(str(tmp_path / "out")) as cache:
        hasher = FileHasher(cache)
        match_local([lora], scan_models_folder(root), hasher)
        assert lora.local_name == "my_local_name" and hasher.hashed_files == 1
    with open_cache(str(tmp_path / "out")) as cache:  # a new start: nothing is hashed again
        again = Resource(type="lora", sha256=SHA[M.LORA_NEON.version_id])
        hasher = FileHasher(cache)
        match_local([again], scan_models_folder(root), hasher)
        assert again.local_name == "my_local_name" and hasher.hashed_files == 0
        # A changed file (new mtime) is hashed again.
        path = os.path.join(root, "Lora", "my_local_name.safetensors")
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
        third = Resource(type="lora", sha256=SHA[M.LORA_NEON.version_id])
        match_local([third], scan_models_folder(root), hasher)
        assert third.local_path == path and hasher.hashed_files == 1


def test_a_short_hash_from_the_image_matches_a_local_file(tmp_path):
    root = _models(tmp_path, [("embeddings", "neg.safetensors", M.EMBEDDING.version_id)])
    embedding = Resource(type="embedding", name="badDream", hashes=[M.autov2(M.EMBEDDING)])
    match_local([embedding], scan_models_folder(root), FileHasher())
    assert embedding.local_name == "neg"


def test_hashing_reports_progress(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(b"\0" * (3 * 1024 * 1024 + 5))
    seen = []
    digest = FileHasher(progress=lambda done, total, name: seen.append((done, total))).sha256(
        str(path)
    )
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest().upper()
    assert seen[-1] == (3 * 1024 * 1024 + 5,) * 2 and len(seen) == 4


# ------------------------------------------------------------------------ downloads


def _plan(fake, tmp_path, image_id, api_key="", files=()):
    root = _models(tmp_path, files)
    client = CivitaiHttpClient(base_url=fake.base_url, api_key=api_key, max_retries=1)
    cache = open_cache(str(tmp_path / "out"))
    plan = reproduce(_item(fake, client, image_id), client, cache, root)
    return client, cache, plan, root


def test_download_is_verified_and_the_key_never_reaches_the_storage_host(fake_civitai, tmp_path):
    client, cache, plan, root = _plan(
        fake_civitai,
        tmp_path,
        M.DEMO_IMAGE_ID,
        api_key="sekrit-key",
        files=[("Lora", "my_local_name.safetensors", M.LORA_NEON.version_id)],
    )
    with client, cache:
        missing = plan.missing()
        assert sorted(r.type for r in missing) == ["checkpoint", "embedding", "lora"]
        progress = []
        outcomes = fetch_missing(
            missing, plan.folders, client, FileHasher(cache), lambda d, t, n: progress.append(d)
        )
    assert [o.status for o in outcomes] == ["downloaded"] * 3, [o.message for o in outcomes]
    for folder, spec in (
        ("Stable-diffusion", M.CHECKPOINT),
        ("Lora", M.LORA_SOFT),
        ("embeddings", M.EMBEDDING),
    ):
        data = open(os.path.join(root, folder, spec.file_name), "rb").read()
        assert hashlib.sha256(data).hexdigest().upper() == SHA[spec.version_id]
    storage = [r for r in fake_civitai.log if r.path.startswith("/storage/")]
    assert len(storage) == 3 and all(r.status == 200 for r in storage)
    assert not any("Authorization" in r.headers for r in storage)
    downloads = [r for r in fake_civitai.api_requests() if r.path.startswith("/api/download/")]
    assert downloads and all(
        r.headers.get("Authorization") == "Bearer sekrit-key" for r in downloads
    )
    assert progress and max(progress) == len(M.model_file_bytes(M.CHECKPOINT.version_id))
    assert plan.infotext().count("<lora:my_local_name:0.8>") == 1


def test_a_second_run_downloads_nothing(fake_civitai, tmp_path):
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.DEMO_IMAGE_ID)
    with client, cache:
        fetch_missing(plan.missing(), plan.folders, client, FileHasher(cache))
        fake_civitai.reset()
        again = reproduce(_item(fake_civitai, client, M.DEMO_IMAGE_ID), client, cache, root)
        assert again.missing() == [] and again.files_hashed == 0
        assert fetch_missing(again.missing(), again.folders, client) == []
    assert [r.path for r in fake_civitai.log if "download" in r.path or "storage" in r.path] == []


def test_a_corrupted_download_is_deleted_and_reported(fake_civitai, tmp_path):
    fake_civitai.storage.corrupt.add(M.LORA_SOFT.version_id)
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.DEMO_IMAGE_ID)
    with client, cache:
        soft = [r for r in plan.missing() if r.version_id == M.LORA_SOFT.version_id]
        (outcome,) = fetch_missing(soft, plan.folders, client, FileHasher(cache))
    assert outcome.status == "failed" and "deleted" in outcome.message
    assert os.listdir(os.path.join(root, "Lora")) == []  # neither the file nor a .part
    assert soft[0].local_path is None


def test_an_interrupted_download_resumes_from_its_part_file(fake_civitai, tmp_path):
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.DEMO_IMAGE_ID)
    data = M.model_file_bytes(M.CHECKPOINT.version_id)
    os.makedirs(os.path.join(root, "Stable-diffusion"), exist_ok=True)
    part = os.path.join(root, "Stable-diffusion", M.CHECKPOINT.file_name + ".part")
    with open(part, "wb") as handle:
        handle.write(data[:50_000])
    with client, cache:
        ckpt = [r for r in plan.missing() if r.type == "checkpoint"]
        (outcome,) = fetch_missing(ckpt, plan.folders, client, FileHasher(cache))
    assert outcome.status == "downloaded"
    (request,) = [r for r in fake_civitai.log if r.path.startswith("/storage/")]
    assert request.headers.get("Range") == "bytes=50000-" and request.status == 206
    assert open(part[: -len(".part")], "rb").read() == data


def test_early_access_names_the_api_key_setting(fake_civitai, tmp_path):
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.EARLY_ACCESS_IMAGE_ID)
    with client, cache:
        early = [r for r in plan.missing() if r.version_id == M.EARLY_ACCESS.version_id]
        (outcome,) = fetch_missing(early, plan.folders, client)
    assert outcome.status == "failed"
    assert "civitai_api_key" in outcome.message and "login" in outcome.message
    assert os.listdir(os.path.join(root, "Lora")) == []


def test_not_enough_disk_space_stops_before_any_request(fake_civitai, tmp_path, monkeypatch):
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.DEMO_IMAGE_ID)
    monkeypatch.setattr(fetch_mod, "free_bytes", lambda path: 10_000)
    fake_civitai.reset()
    with client, cache, pytest.raises(DiskSpaceError, match="need"):
        fetch_missing(plan.missing(), plan.folders, client)
    assert fake_civitai.log == []


def test_the_free_space_given_is_kept(fake_civitai, tmp_path, monkeypatch):
    """The CLI and the tab pass the setting images.min_free_space_mb: a disk that fits the files
    but not the reserve is refused (the table's default reserve applies when none is given)."""
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.DEMO_IMAGE_ID)
    need = sum(r.size or 0 for r in plan.missing())
    monkeypatch.setattr(fetch_mod, "free_bytes", lambda path: need + 50 * 1024 * 1024)
    fake_civitai.reset()
    with client, cache:
        with pytest.raises(DiskSpaceError):
            fetch_missing(plan.missing(), plan.folders, client, min_free_mb=200)
        with pytest.raises(DiskSpaceError):  # the default reserve is 200 MB
            fetch_missing(plan.missing(), plan.folders, client)
    assert fake_civitai.log == []


# ------------------------------------------------------------------------ the CLI


def _cli(fake, tmp_path, *args):
    env = dict(
        os.environ,
        CIVITAI_BASE_URL=fake.base_url,
        CIVITAI_GALLERY_SETTINGS=str(tmp_path / "settings.json"),
    )
    env.pop("CIVITAI_API_KEY", None)
    command = [sys.executable, os.path.join(REPO, "main.py"), "resources", *args]
    command += ["-o", str(tmp_path / "out"), "-q"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_cli_lists_downloads_and_then_has_nothing_to_do(fake_civitai, tmp_path):
    root = _models(tmp_path, [("Lora", "my_local_name.safetensors", M.LORA_NEON.version_id)])
    url = f"https://civitai.com/images/{M.DEMO_IMAGE_ID}"
    shown = _cli(fake_civitai, tmp_path, url, "--models-dir", root)
    assert shown.returncode == 1, shown.stderr  # three files missing
    lines = shown.stdout.splitlines()
    assert any(line.strip().startswith("✓ lora") and "my_local_name" in line for line in lines)
    for name in ("Reproduce Checkpoint", "Soft Light", "BadDream"):
        assert any(line.strip().startswith("✗") and name in line for line in lines), name
    assert "<lora:my_local_name:0.8>" in shown.stdout and "--download" in shown.stdout

    fetched = _cli(fake_civitai, tmp_path, str(M.DEMO_IMAGE_ID), "--models-dir", root, "--download")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert fetched.stdout.count("saved to") == 3
    assert os.path.isfile(os.path.join(root, "Stable-diffusion", M.CHECKPOINT.file_name))
    assert os.path.isfile(os.path.join(root, "embeddings", M.EMBEDDING.file_name))

    fake_civitai.reset()
    again = _cli(fake_civitai, tmp_path, str(M.DEMO_IMAGE_ID), "--models-dir", root, "--download")
    assert again.returncode == 0 and "Everything is present." in again.stdout
    assert [r.path for r in fake_civitai.log if r.path != "/api/v1/images"] == []


def test_cli_keeps_the_free_space_setting(fake_civitai, tmp_path):
    """The CLI (a shell) reads images.min_free_space_mb and passes it down: a reserve no disk
    has refuses the download before any model file is asked for."""
    root = _models(tmp_path, [])
    (tmp_path / "settings.json").write_text(json.dumps({"images.min_free_space_mb": 10_000_000}))
    fake_civitai.reset()
    refused = _cli(fake_civitai, tmp_path, str(M.DEMO_IMAGE_ID), "--models-dir", root, "--download")
    assert refused.returncode != 0
    assert "keeping 10000000 MB spare" in refused.stdout + refused.stderr
    assert not [r for r in fake_civitai.log if r.path.startswith("/api/download/")]


def test_cli_types_filter_and_bad_input(fake_civitai, tmp_path):
    root = _models(tmp_path, [])
    bad = _cli(fake_civitai, tmp_path, str(M.DEMO_IMAGE_ID), "--types", "loras,nope")
    assert bad.returncode == 2 and "unknown resource type" in bad.stderr
    missing_dir = _cli(fake_civitai, tmp_path, "1", "--models-dir", str(tmp_path / "nope"))
    assert missing_dir.returncode == 2 and "does not exist" in missing_dir.stderr
    assert not os.path.exists(tmp_path / "out")  # bad input changes nothing on disk
    only = _cli(
        fake_civitai, tmp_path, str(M.DEMO_IMAGE_ID), "--models-dir", root, "--types", "embedding"
    )
    assert "1 resource(s)" in only.stdout and "BadDream" in only.stdout
    assert "Reproduce Checkpoint" not in only.stdout


def test_a_login_page_instead_of_the_file_saves_nothing_and_names_the_key(fake_civitai, tmp_path):
    client, cache, plan, root = _plan(fake_civitai, tmp_path, M.DEMO_IMAGE_ID)
    fake_civitai.faults.html_instead("/storage/*")
    with client, cache:
        embedding = [r for r in plan.missing() if r.type == "embedding"]
        (outcome,) = fetch_missing(embedding, plan.folders, client)
    assert outcome.status == "failed" and "civitai_api_key" in outcome.message
    assert os.listdir(os.path.join(root, "embeddings")) == []  # no file, no .part


def test_a_hostile_file_name_stays_in_the_type_folder(tmp_path):
    evil = Resource(type="lora", file_name="../../../evil.safetensors")
    path = fetch_mod.target_path(evil, {"lora": str(tmp_path / "Lora")})
    assert os.path.dirname(path) == str(tmp_path / "Lora")
    with pytest.raises(Exception, match="No folder for vae"):
        fetch_mod.target_path(Resource(type="vae", file_name="v.pt"), {})


@pytest.mark.parametrize("odd", [True, 5, "lora", {"type": "lora"}, None])
def test_odd_resource_fields_hold_no_entries_and_never_raise(odd):
    """Found by the metadata property test: ``"resources": true`` raised TypeError."""
    from scripts.civitai_manager_libs.metadata.resource_refs import collect_resources

    assert collect_resources({"prompt": "p", "resources": odd, "civitaiResources": odd}) == []
