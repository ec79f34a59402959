"""Issue 21, "one way to touch the disk": the commands added after the downloader (export,
list --to, resources --download) write, read and fetch through the same three gates as the
downloader: store/confined for every file, util/documents for every untrusted document,
util/url_gate for every URL; and the net of every command masks secrets and never ends in a raw
traceback. Real files, real local (hostile) HTTP servers."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess

import pytest
from cli_harness import run_cli
from hostile_http import HostileServer, json_answer, redirect
from PIL import Image

from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.errors import RefusedUrlError
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.fake_civitai import models_api as M
from scripts.civitai_manager_libs.metadata.resource_refs import Resource
from scripts.civitai_manager_libs.resources.fetch import fetch_resource
from scripts.civitai_manager_libs.resources.hash_cache import FileHasher
from scripts.civitai_manager_libs.resources.resolve import ResourceResolver
from scripts.civitai_manager_libs.store.archive import Archive, archive_path
from scripts.civitai_manager_libs.store.resource_cache import ResourceCache
from scripts.civitai_manager_libs.transport.client import CivitaiHttpClient
from scripts.civitai_manager_libs.util.url_gate import check_download_url

VICTIM = b"precious data outside the folder\n"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def _victim(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    victim = outside / "victim.txt"
    victim.write_bytes(VICTIM)
    return victim


def _cli(argv, out=None):
    out = out or io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def fake():
    with FakeCivitai(dataset=Dataset.default()) as server:
        yield server


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)
    return tmp_path / "settings.json"


@pytest.fixture(scope="module")
def downloaded(fake, tmp_path_factory):
    """An output folder with the images of one model, each with a JSON sidecar."""
    root = tmp_path_factory.mktemp("dl")
    saved = os.environ.get("CIVITAI_GALLERY_SETTINGS")
    os.environ["CIVITAI_GALLERY_SETTINGS"] = str(root / "settings.json")
    try:
        model = fake.dataset.models[0].id
        argv = ["download", "model", model, "--nsfw", "all", "--metadata", "json"]
        code, out = _cli(argv + ["--base-url", fake.base_url, "--output", root / "out", "-q"])
        assert code == 0, out
    finally:
        if saved is None:
            os.environ.pop("CIVITAI_GALLERY_SETTINGS", None)
        else:
            os.environ["CIVITAI_GALLERY_SETTINGS"] = saved
    return root / "out"


def _images(output):
    with Archive(archive_path(str(output))) as archive:
        return [r for r in archive.iter_images() if r.metadata_path and r.path.endswith(".png")]


# ------------------------------------------------------------------ 1. writes through links


@pytest.mark.parametrize(
    "fmt, index", [("imagefolder", "metadata.jsonl"), ("jsonl", "records.jsonl")]
)
def test_a_link_at_the_export_index_temp_is_never_followed(
    downloaded, tmp_path, settings_file, fmt, index
):
    victim = _victim(tmp_path)
    dest = tmp_path / "export"
    dest.mkdir()
    os.symlink(victim, dest / f"{index}.tmp")
    code, out = _cli(["export", "--from", downloaded, "--to", dest, "--format", fmt, "-q"])
    assert code == 0, out
    assert victim.read_bytes() == VICTIM  # the outside file is untouched
    assert os.path.islink(dest / f"{index}.tmp")  # the user's link is left as it was
    rows = (dest / index).read_text("utf-8").splitlines()
    assert rows and all(json.loads(r) for r in rows)


def test_list_refuses_a_dangling_link_at_its_rows_file(fake, tmp_path, settings_file):
    outside = tmp_path / "outside" / "created.txt"
    outside.parent.mkdir()
    target = tmp_path / "L.jsonl"
    os.symlink(outside, tmp_path / "L.jsonl.part.jsonl")
    argv = ["list", "model", fake.dataset.models[0].id, "--nsfw", "all", "--to", target, "-q"]
    code, out = _cli(argv + ["--base-url", fake.base_url])
    assert code == 2
    assert not outside.exists() and not target.exists()


def test_list_parquet_never_writes_through_a_link_at_its_temp(fake, tmp_path, settings_file):
    pytest.importorskip("pyarrow")
    victim = _victim(tmp_path)
    target = tmp_path / "L.parquet"
    os.symlink(victim, tmp_path / "L.parquet.tmp")
    argv = ["list", "model", fake.dataset.models[0].id, "--nsfw", "all", "--to", target, "-q"]
    code, out = _cli(argv + ["--base-url", fake.base_url])
    assert code == 0, out
    assert victim.read_bytes() == VICTIM
    import pyarrow.parquet as pq

    assert pq.read_table(str(target)).num_rows > 0


def test_list_refuses_to_replace_a_finished_file_unless_told(fake, tmp_path, settings_file, capsys):
    target = tmp_path / "L.jsonl"
    target.write_text("finished listing\n")
    argv = ["list", "model", fake.dataset.models[0].id, "--nsfw", "all", "--to", target, "-q"]
    fake.reset()
    code, _ = _cli(argv + ["--base-url", fake.base_url])
    assert code == 2 and target.read_text() == "finished listing\n"
    assert "--overwrite" in capsys.readouterr().err
    assert fake.log == []  # refused before any request
    code, out = _cli(argv + ["--base-url", fake.base_url, "--overwrite"])
    assert code == 0, out
    assert json.loads(target.read_text().splitlines()[0])["id"]


def test_list_masks_a_token_in_the_urls_it_writes(tmp_path, settings_file):
    item = {
        "id": 7,
        "url": "https://image.civitai.com/x/abc/original=true/7.jpeg?token=SEKRIT123",
        "width": 4,
        "height": 4,
        "nsfwLevel": "None",
        "meta": {"prompt": "p"},
    }
    routes = {
        "/api/v1/models/1": json_answer('{"id":1,"name":"m","type":"LORA","modelVersions":[]}'),
        "/api/v1/images": json_answer(json.dumps({"items": [item], "metadata": {}})),
    }
    target = tmp_path / "L.jsonl"
    with HostileServer(routes) as srv:
        code, out = _cli(
            [
                "list",
                "model",
                "1",
                "--nsfw",
                "all",
                "--to",
                target,
                "-q",
                "--base-url",
                srv.base_url,
            ]
        )
    assert code == 0, out
    text = target.read_text()
    assert "SEKRIT123" not in text and "token=***" in text


# ------------------------------------------------------------------ 2. one hostile input


@pytest.mark.parametrize("fmt", ["captions", "imagefolder", "jsonl"])
def test_a_sidecar_nested_200000_deep_is_one_skipped_item(downloaded, tmp_path_factory, fmt):
    root = tmp_path_factory.mktemp("deep")
    output = root / "out"
    subprocess.run(["cp", "-a", str(downloaded), str(output)], check=True)
    rows = _images(downloaded)
    bad = rows[0]
    sidecar = output / os.path.relpath(bad.metadata_path, downloaded)
    sidecar.write_text('{"a":' * 200_000 + "1" + "}" * 200_000)
    os.environ["CIVITAI_GALLERY_SETTINGS"] = str(root / "settings.json")
    try:
        code, out = _cli(["export", "--from", output, "--to", root / "set", "--format", fmt])
    finally:
        os.environ.pop("CIVITAI_GALLERY_SETTINGS", None)
    assert code == 0, out
    assert (
        "unreadable record" in out
        and "unreadable record (too large, too deep or not JSON): 1" in out
    )
    exported = int(out.split("exported ", 1)[1].split(" ", 1)[0])
    assert exported >= 1
    assert not any(name.startswith(f"{bad.image_id}.") for name in os.listdir(root / "set"))


def _version(files):
    return json.dumps(
        {
            "id": 11,
            "modelId": 1,
            "name": "v1",
            "model": {"name": "M", "type": "LORA"},
            "files": files,
        }
    )


GOOD_FILE = '{"name":"good.safetensors","sizeKB":1,"hashes":{"SHA256":"AA"},"primary":true}'


@pytest.mark.parametrize(
    "body",
    [
        '{"id":11,"modelId":1,"files":[{"name":"f.safetensors","sizeKB":NaN,"hashes":{}}]}',
        '{"id":11,"modelId":1,"files":[{"name":"f.safetensors","sizeKB":Infinity}]}',
        '{"id":11,"modelId":1,"files":[{"name":"f.safetensors","sizeKB":-Infinity}]}',
    ],
)
def test_a_non_finite_size_is_flagged_and_never_cached(tmp_path, body):
    with HostileServer({"/api/v1/model-versions/11": json_answer(body)}) as srv:
        client = CivitaiHttpClient(base_url=srv.base_url, api_key="", max_retries=0)
        with client, ResourceCache(str(tmp_path / "cache.sqlite3")) as cache:
            for _ in range(2):
                resource = Resource(type="lora", version_id=11)
                ResourceResolver(client, cache).resolve([resource])
                assert resource.status != "resolved" and "not finite" in (resource.note or "")
            assert cache.get_lookup("version:11") is None
        assert srv.paths().count("/api/v1/model-versions/11") == 2  # asked again, not cached


@pytest.mark.parametrize("name", ["12345", '["a","b"]', "{}", "null"])
def test_a_file_name_that_is_not_text_is_skipped_and_never_cached(tmp_path, name):
    body = '{"id":11,"modelId":1,"files":[{"name":%s,"sizeKB":1,"hashes":{"SHA256":"AB"}}]}' % name
    with HostileServer({"/api/v1/model-versions/11": json_answer(body)}) as srv:
        client = CivitaiHttpClient(base_url=srv.base_url, api_key="", max_retries=0)
        with client, ResourceCache(str(tmp_path / "cache.sqlite3")) as cache:
            for _ in range(2):
                resource = Resource(type="lora", version_id=11, sha256="AB")
                merged = ResourceResolver(client, cache).resolve([resource])
                assert merged[0].file_name is None and merged[0].download_url is None
                assert "malformed" in (merged[0].note or "")
            assert cache.get_lookup("version:11") is None
        assert srv.paths().count("/api/v1/model-versions/11") == 2


def test_a_poisoned_cached_answer_is_dropped_and_asked_again(tmp_path):
    good = '{"id":11,"modelId":1,"files":[%s]}' % GOOD_FILE
    with HostileServer({"/api/v1/model-versions/11": json_answer(good)}) as srv:
        client = CivitaiHttpClient(base_url=srv.base_url, api_key="", max_retries=0)
        with client, ResourceCache(str(tmp_path / "cache.sqlite3")) as cache:
            cache.put_lookup("version:11", 200, {"id": 11, "files": [{"name": ["x"]}]})
            resource = Resource(type="lora", version_id=11)
            ResourceResolver(client, cache).resolve([resource])
            assert resource.file_name == "good.safetensors"
            assert cache.get_lookup("version:11").body["files"][0]["name"] == "good.safetensors"
        assert srv.paths() == ["/api/v1/model-versions/11"]


def test_a_lone_surrogate_in_names_is_sanitized_not_a_traceback(tmp_path, settings_file, capsys):
    png = _png()
    with HostileServer() as srv:
        base = srv.base_url
        item = (
            '{"id":100,"url":"%s/xG1nkqKTMzGDvpLrqFT7WA/aaaa/width=4/100.png","width":4,'
            '"height":4,"nsfwLevel":"None","username":"u\\ud800","modelVersionId":11,'
            '"meta":{"prompt":"x\\udfff","Model":"m\\ud800"}}' % base
        )
        srv.routes.update(
            {
                "/api/v1/models/1": json_answer(
                    '{"id":1,"name":"Bad\\ud800Name","type":"LORA",'
                    '"modelVersions":[{"id":11,"name":"v\\ud800","files":[]}]}'
                ),
                "/api/v1/images": json_answer('{"items":[%s],"metadata":{}}' % item),
                "/xG1nkqKTMzGDvpLrqFT7WA/aaaa/original=true/100.png": (
                    200,
                    {"Content-Type": "image/png"},
                    png,
                ),
            }
        )
        argv = ["download", "model", "1", "--nsfw", "all", "--base-url", base, "-q"]
        argv += ["-o", tmp_path / "out", "--template", "{model_name}/{creator}/{id}"]
        code, _ = _cli(argv + ["--metadata", "json,txt,exif"])
    assert code == 0, capsys.readouterr().err
    saved = tmp_path / "out" / "Bad_Name" / "u_"
    assert sorted(os.listdir(saved)) == ["100.json", "100.png", "100.txt"]
    assert "Bad?Name" in (saved / "100.json").read_text("utf-8")


# ------------------------------------------------------------------ 3. the key, the net


def test_a_key_with_a_crlf_is_stripped_and_never_shown(fake, tmp_path):
    fake.reset()
    run = run_cli(
        ["list", "model", fake.dataset.models[0].id, "--nsfw", "all", "--to", tmp_path / "L.jsonl"],
        tmp_path,
        env={"CIVITAI_API_KEY": "KEYsecret123\r\n", "CIVITAI_BASE_URL": fake.base_url},
    )
    assert run.returncode == 0, run.stderr
    assert "KEYsecret123" not in run.stderr + run.stdout and "Traceback" not in run.stderr
    auth = {r.headers.get("Authorization") for r in fake.api_requests()}
    assert auth == {"Bearer KEYsecret123"}


def test_a_key_with_spaces_inside_is_refused_without_showing_it(tmp_path):
    run = run_cli(
        ["list", "model", "1", "--to", tmp_path / "L.jsonl"],
        tmp_path,
        env={"CIVITAI_API_KEY": "KEY secret\n123", "CIVITAI_BASE_URL": "http://127.0.0.1:9"},
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "secret" not in run.stderr and "CIVITAI_API_KEY" in run.stderr
    assert not (tmp_path / "L.jsonl").exists()


def test_the_net_prints_one_masked_line_and_the_traceback_only_with_v(capsys):
    from scripts.civitai_manager_libs.cli.shell import add_logging, new_parser, run_command
    from scripts.civitai_manager_libs.util.logging_setup import register_secret

    register_secret("TOPSECRETKEY42")

    def boom(args, out):
        raise RuntimeError("failed with TOPSECRETKEY42 in the message\nsecond line")

    parser = new_parser("t", "t")
    add_logging(parser)
    assert run_command(parser, boom, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TOPSECRETKEY42" not in err and "Traceback" not in err
    assert run_command(parser, boom, ["-v"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "TOPSECRETKEY42" not in err


# ------------------------------------------------------------------ 4. links the user made


def test_a_type_folder_link_is_followed_nothing_below_it(fake, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    elsewhere = tmp_path / "other_disk" / "loras"
    elsewhere.mkdir(parents=True)
    os.symlink(elsewhere, models / "Lora")  # configuration: followed
    spec = M.LORA_SOFT
    resource = Resource(
        type="lora",
        version_id=spec.version_id,
        status="resolved",
        file_name=spec.file_name,
        sha256=M.hashes_of(spec.version_id)["SHA256"],
    )
    client = CivitaiHttpClient(base_url=fake.base_url, api_key="", max_retries=0)
    folders = {"lora": str(models / "Lora")}
    with client:
        victim = _victim(tmp_path)
        os.symlink(victim, elsewhere / (spec.file_name + ".part"))  # below: never followed
        refused = fetch_resource(resource, folders, client, FileHasher())
        assert refused.status == "failed" and "link" in refused.message
        assert victim.read_bytes() == VICTIM
        os.unlink(elsewhere / (spec.file_name + ".part"))
        done = fetch_resource(resource, folders, client, FileHasher())
    assert done.status == "downloaded", done.message
    assert (elsewhere / spec.file_name).is_file() and not os.path.islink(elsewhere / spec.file_name)


# ------------------------------------------------------------------ 5. where files come from


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.169.254/x",
        "http://[fe80::1]/x",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://10.0.0.5/model.safetensors",
        "http://[::ffff:169.254.169.254]/x",
        "ftp://files.example/model",
        "http://public.example/model.safetensors",  # plain http to another host
    ],
)
def test_a_redirect_to_a_refused_address_is_refused_once(tmp_path, location):
    routes = {"/api/download/models/11": redirect(location)}
    with HostileServer(routes) as srv:
        client = CivitaiHttpClient(base_url=srv.base_url, api_key="", max_retries=3)
        with client, pytest.raises(RefusedUrlError):
            client.fetch_to_file(srv.base_url + "/api/download/models/11", str(tmp_path / "m.bin"))
        assert srv.paths() == ["/api/download/models/11"]  # one request, never retried
    assert os.listdir(tmp_path) == []


def test_a_download_url_at_a_metadata_address_is_never_requested(tmp_path):
    client = CivitaiHttpClient(base_url="https://civitai.com", api_key="", max_retries=3)
    for url in (
        "http://169.254.169.254/x",
        "https://[fe80::1]/x",
        "https://metadata.google.internal/",
    ):
        with client, pytest.raises(RefusedUrlError):
            client.fetch_to_file(url, str(tmp_path / "m.bin"))
    assert os.listdir(tmp_path) == []


def test_the_download_gate_allows_public_https_the_base_host_and_loopback():
    check_download_url("https://civitai-delivery-worker-prod.r2.cloudflarestorage.com/x")
    check_download_url("http://127.0.0.1:8080/x")
    check_download_url("http://localhost/x")
    check_download_url("http://mirror.lan/x", trusted_hosts=["mirror.lan"])
    with pytest.raises(RefusedUrlError):
        check_download_url("http://mirror.lan/x")


def test_an_unknown_model_size_is_capped_by_the_setting_while_streaming(tmp_path, settings_file):
    settings_file.write_text(json.dumps({"resources.max_unknown_size_mb": 1}))
    body = b"\x80" + b"\0" * (3 * 1024 * 1024)  # 3 MB of "pickle"; no Content-Length
    from scripts.civitai_manager_libs import setting

    setting.load()

    def chunked(path, headers):
        return (
            200,
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))},
            body,
        )

    with HostileServer({"/api/download/models/11": chunked}) as srv:
        client = CivitaiHttpClient(base_url=srv.base_url, api_key="", max_retries=0)
        resource = Resource(type="lora", version_id=11, status="resolved", sha256="AA" * 32)
        resource.file_name = "m.safetensors"
        with client:
            cap = int(setting.get("resources.max_unknown_size_mb"))  # what the shells pass
            outcome = fetch_resource(
                resource, {"lora": str(tmp_path / "Lora")}, client, unknown_size_mb=cap
            )
            assert outcome.status == "failed"
            assert "resources.max_unknown_size_mb" in outcome.message, outcome.message
            assert "images.max_file_size_mb" not in outcome.message
            resource.size = 1024  # Civitai lists 1 KB: the cap names Civitai's listed size
            listed = fetch_resource(resource, {"lora": str(tmp_path / "Lora")}, client)
            assert (
                "the size Civitai lists" in listed.message
                and "-" not in listed.message.split("(")[1][:3]
            )
    setting.reset()
    assert os.listdir(tmp_path / "Lora") == []


# ------------------------------------------------------------------ 7. bad input: exit 2


@pytest.mark.parametrize(
    "base",
    [
        "file:///etc",
        "ftp://civitai.com",
        "gopher://x",
        "javascript:alert(1)",
        "https://civitai.com\r\nX: y",
    ],
)
@pytest.mark.parametrize("command", ["download", "list", "resources"])
def test_a_bad_base_url_is_bad_input(tmp_path, base, command):
    argv = {
        "download": ["download", "model", "1", "-o", tmp_path / "out"],
        "list": ["list", "model", "1", "--to", tmp_path / "L.jsonl"],
        "resources": ["resources", "1", "-o", tmp_path / "out"],
    }[command]
    run = run_cli(argv + ["--base-url", base], tmp_path)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_a_bad_base_url_in_the_environment_is_bad_input(tmp_path):
    run = run_cli(
        ["list", "model", "1", "--to", tmp_path / "L.jsonl"],
        tmp_path,
        env={"CIVITAI_BASE_URL": "ftp://x"},
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1


def test_a_settings_file_nested_100000_deep_or_dev_zero_is_bad_input(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    for path in (str(deep), "/dev/zero"):
        run = run_cli(
            ["tasks", "-o", tmp_path / "out"],
            tmp_path,
            env={"CIVITAI_GALLERY_SETTINGS": path},
            timeout=30,
        )
        assert run.returncode == 2, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert sorted(os.listdir(tmp_path)) == ["deep.json"]


@pytest.mark.parametrize("kind", ["link", "dangling", "folder"])
def test_a_lock_file_that_is_a_link_or_a_folder_is_bad_input(fake, tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".civitai_archive.lock"
    victim = _victim(tmp_path)
    if kind == "link":
        os.symlink(victim, lock)
    elif kind == "dangling":
        os.symlink(tmp_path / "nowhere", lock)
    else:
        lock.mkdir()
    fake.reset()
    run = run_cli(
        ["download", "model", fake.dataset.models[0].id, "-o", out, "--base-url", fake.base_url],
        tmp_path,
    )
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert os.listdir(out) == [".civitai_archive.lock"] and victim.read_bytes() == VICTIM
    assert not (tmp_path / "nowhere").exists() and fake.log == []


def test_a_concept_windows_would_rename_is_refused(downloaded, tmp_path, settings_file):
    for concept in ("CON.", "name.", "x. "):
        argv = ["export", "--from", downloaded, "--to", tmp_path / "k", "--format", "captions"]
        code, _ = _cli(argv + ["--kohya-repeats", "10", "--concept", concept])
        assert code == 2
    assert not (tmp_path / "k").exists()


# ------------------------------------------------------------------ 8. the hash cache


def test_a_file_replaced_with_the_same_size_and_time_is_hashed_again(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"A" * 4096)
    with ResourceCache(str(tmp_path / "cache.sqlite3")) as cache:
        hasher = FileHasher(cache)
        first = hasher.sha256(str(path))
        stat = os.stat(path)
        other = tmp_path / "other"
        other.write_bytes(b"B" * 4096)
        os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        keep = tmp_path / "keep"
        os.rename(path, keep)  # keeps the old inode alive, so the new file gets another
        os.rename(other, path)
        assert os.stat(path).st_mtime_ns == stat.st_mtime_ns and os.stat(path).st_size == 4096
        assert hasher.sha256(str(path)) == hashlib.sha256(b"B" * 4096).hexdigest().upper() != first
        assert hasher.hashed_files == 2


def test_a_hash_cache_written_before_the_inode_column_still_opens(tmp_path):
    db = tmp_path / "cache.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE local_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO local_hashes VALUES ('/m', 1, 1, 'AA')")
    with ResourceCache(str(db)) as cache:
        assert cache.get_hash("/m", 1, 1, 5) is None  # an old row is a doubt: hashed again
        cache.put_hash("/m", 1, 1, "BB", 5)
        assert cache.get_hash("/m", 1, 1, 5) == "BB"


def test_the_gallery_stream_goes_through_the_same_gate(tmp_path):
    routes = {"/img/1.png": redirect("http://169.254.169.254/latest/meta-data/")}
    with HostileServer(routes) as srv:
        client = CivitaiHttpClient(base_url=srv.base_url, api_key="", max_retries=3)
        with client:
            assert client.get_stream_response(srv.base_url + "/img/1.png") is None
            assert client.get_stream_response("http://[fe80::1]/img/2.png") is None
        assert srv.paths() == ["/img/1.png"]


def test_a_base_url_setting_goes_through_the_gate(settings_file):
    from scripts.civitai_manager_libs import setting
    from scripts.civitai_manager_libs.errors import SettingsError

    for bad in ("javascript:alert(1)", "gopher://x", "file:///etc/passwd"):
        with pytest.raises(SettingsError):
            setting.set("civitai_base_url", bad)
    setting.reset()


def test_retry_failed_refuses_a_linked_lock_file_too(fake, tmp_path, settings_file):
    out = tmp_path / "out"
    code, _ = _cli(
        [
            "download",
            "model",
            fake.dataset.models[0].id,
            "--limit",
            "1",
            "-o",
            out,
            "-q",
            "--base-url",
            fake.base_url,
        ]
    )
    assert code == 0
    os.remove(out / ".civitai_archive.lock")
    victim = _victim(tmp_path)
    os.symlink(victim, out / ".civitai_archive.lock")
    code, _ = _cli(["retry-failed", "-o", out, "--base-url", fake.base_url, "-q"])
    assert code == 2 and victim.read_bytes() == VICTIM


def test_a_settings_file_the_user_linked_is_written_through_its_link(tmp_path, monkeypatch):
    from scripts.civitai_manager_libs import setting

    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "settings.json").write_text("{}")
    link = tmp_path / "settings.json"
    os.symlink(dotfiles / "settings.json", link)
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(link))
    try:
        setting.load()
        setting.set("images.max_concurrent", 3)
        setting.save()
        assert os.path.islink(link)
        assert json.loads((dotfiles / "settings.json").read_text())["images.max_concurrent"] == 3
    finally:
        setting.reset()
