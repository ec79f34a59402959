"""``python main.py list``: the listing alone to Parquet / JSON Lines, resumable, and the real
img2dataset downloading every listed image (with its caption) from the fake's image host."""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.export.captions import clean_caption
from scripts.civitai_manager_libs.export.listing import COLUMNS
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from tests.dataset_tools import offline_env, venv_python_or_skip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL = ["None", "Soft", "Mature", "X"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


@pytest.fixture(scope="module")
def fake():
    with FakeCivitai(dataset=Dataset.default()) as server:
        yield server


def _list(fake, *argv):
    return _cli(["list", *argv, "--base-url", fake.base_url])


def _cli(argv):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def _read(path):
    if str(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(str(path))
        assert table.column_names == list(COLUMNS)
        return table.to_pylist()
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def _expected(fake, levels, **where):
    images = fake.dataset.select(levels=levels, **where)
    return {i.id: i for i in images if i.type != "video"}


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_list_model_writes_one_row_per_image(fake, tmp_path, ext):
    model = fake.dataset.model(4384)
    dest = tmp_path / f"listing.{ext}"
    code, out = _list(fake, "model", model.id, "--nsfw", "all", "--to", dest, "-q")
    assert code == 0, out
    rows = _read(dest)
    expected = _expected(fake, ALL, model_id=model.id)
    assert sorted(r["id"] for r in rows) == sorted(expected)
    for row in rows:
        image = expected[row["id"]]
        assert set(row) == set(COLUMNS)
        assert f"/original=true/{image.id}." in row["url"]
        assert row["url"].startswith(fake.image_base_url)
        meta = image.meta if isinstance(image.meta, dict) and not image.meta_hidden else {}
        assert row["caption"] == (meta.get("prompt") or "")
        assert (row["width"], row["height"]) == (image.width, image.height)
        assert (row["nsfw_level"], row["creator"]) == (image.nsfw_level, image.username)
        assert row["model_id"] == model.id and row["version_id"] in image.model_version_ids
        if meta:
            generation = json.loads(row["generation"])
            assert generation["prompt"] == meta.get("prompt")
            if isinstance(meta.get("seed"), int):
                assert generation["seed"] == meta["seed"]
    assert out == f"listed {len(rows)} image(s) into {dest}\n"
    assert [n for n in os.listdir(tmp_path) if n != "settings.json"] == [dest.name]  # no part files


def test_list_version_user_filter_limit_and_videos(fake, tmp_path):
    version = fake.dataset.models[0].versions[0]
    dest = tmp_path / "v.jsonl"
    code, out = _list(fake, "version", version.id, "--nsfw", "None", "--to", dest, "-q")
    assert code == 0, out
    rows = _read(dest)
    assert rows and {r["nsfw_level"] for r in rows} == {"None"}
    assert {r["version_id"] for r in rows} == {version.id}

    argv = ["--overwrite"]  # the finished listing above is replaced only when asked
    code, out = _list(
        fake, "user", "BobMakes", "--nsfw", "all", "--limit", "7", "--to", dest, *argv
    )
    assert (
        code == 0 and len(_read(dest)) == 7 and {r["creator"] for r in _read(dest)} == {"BobMakes"}
    )
    raw = {r["id"]: r["caption"] for r in _read(dest)}
    assert any(clean_caption(c) != c for c in raw.values())
    argv = ["user", "BobMakes", "--nsfw", "all", "--limit", "7", "--to", dest, "--clean-captions"]
    argv.append("--overwrite")
    code, out = _list(fake, *argv)
    assert code == 0
    assert {r["id"]: r["caption"] for r in _read(dest)} == {
        i: clean_caption(c) for i, c in raw.items()
    }

    dest = tmp_path / "videos.jsonl"
    code, out = _list(fake, "filter", "modelId=99001", "--nsfw", "all", "--to", dest, "-q")
    assert code == 0 and "videos skipped: 4 (use --videos" in out
    assert all(r["type"] != "video" for r in _read(dest))
    code, out = _list(
        fake, "filter", "modelId=99001", "--nsfw", "all", "--videos", "--to", dest, "--overwrite"
    )
    assert code == 0 and sum(r["type"] == "video" for r in _read(dest)) == 4


def test_an_interrupted_listing_continues_where_it_stopped(fake, tmp_path):
    """SIGTERM during page 2 of 2: page 1 is kept; a half-written line is cut off; the same command
    asks only for page 2 and the file holds every image once."""
    dest = tmp_path / "big.jsonl"
    argv = [sys.executable, os.path.join(REPO, "main.py"), "list", "model", "4201"]
    argv += ["--nsfw", "all", "--to", str(dest), "--base-url", fake.base_url, "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "settings.json")
    state = tmp_path / "big.jsonl.part.json"
    fake.reset()
    fake.faults.delay("/api/v1/images", 0.01, count=1, server="api")  # page 1 at once
    fake.faults.delay("/api/v1/images", 8, server="api")  # page 2 stalls: SIGTERM lands there
    try:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not state.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.exists(), "page 1 was not saved within 30 s"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        fake.faults.clear()
    assert proc.returncode == cli.EXIT_INTERRUPTED
    assert not dest.exists()
    saved = json.loads(state.read_text())
    assert saved["rows"] == 200 and saved["cursor"]
    with open(tmp_path / "big.jsonl.part.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"url": "http://half-written')  # a crash in the middle of a page

    fake.reset()
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "(resumed)" in run.stdout
    pages = [r for r in fake.api_requests() if r.path == "/api/v1/images"]
    assert [r.query.get("cursor") for r in pages] == [saved["cursor"]]
    rows = _read(dest)
    expected = _expected(fake, ALL, model_id=4201)
    assert len(rows) == len(expected) and {r["id"] for r in rows} == set(expected)
    assert [n for n in os.listdir(tmp_path) if n != "settings.json"] == ["big.jsonl"]


def test_another_listing_into_an_unfinished_file_is_refused(fake, tmp_path, capsys):
    dest = tmp_path / "x.jsonl"
    (tmp_path / "x.jsonl.part.json").write_text(
        json.dumps({"key": "model:1|nsfw=None|", "cursor": "5|5", "rows": 0, "bytes": 0})
    )
    code, out = _cli(["list", "model", "4384", "--to", dest, "--base-url", fake.base_url])
    assert code == cli.EXIT_USAGE
    assert "belongs to an unfinished listing" in capsys.readouterr().err
    assert not dest.exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["list", "model", "4384", "--to", "x.csv"], "name a .parquet or .jsonl file"),
        (["list", "model", "99999999", "--to", "x.jsonl"], "model 99999999 was not found"),
        (["list", "image", "1", "--to", "x.jsonl"], "image 1 was not found"),
        (["list", "reactions", "--to", "x.jsonl"], "API key"),
        (["list", "model", "4384"], "--to"),
        (["list", "filter", "colour=red", "--to", "x.jsonl"], "Unknown filter"),
    ],
)
def test_bad_list_input_exits_2_and_writes_nothing(
    fake, tmp_path, capsys, monkeypatch, argv, fragment
):
    monkeypatch.chdir(tmp_path)
    code, out = _cli([*argv, "--base-url", fake.base_url])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and out == ""
    assert err.startswith("error: ") and fragment in err, err
    assert [n for n in os.listdir(tmp_path) if n != "settings.json"] == []


def test_parquet_without_pyarrow_says_how_to_get_it(fake, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.split(".")[0] == "pyarrow":
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    fake.reset()
    dest = tmp_path / "x.parquet"
    code, _ = _cli(["list", "model", "4384", "--to", dest, "--base-url", fake.base_url])
    assert code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "pip install pyarrow" in err and "FILE.jsonl" in err
    assert fake.api_requests() == [] and not dest.exists()


# --------------------------------------------------------------------------- img2dataset


def test_img2dataset_fetches_every_listed_image_with_its_caption(fake, tmp_path):
    python = venv_python_or_skip()
    listing = tmp_path / "listing.parquet"
    code, out = _list(fake, "model", "4384", "--nsfw", "all", "--to", listing, "-q")
    assert code == 0, out
    rows = {row["id"]: row for row in _read(listing)}
    assert len(rows) == 34
    fake.reset()
    shards = tmp_path / "shards"
    command = [
        os.path.join(os.path.dirname(python), "img2dataset"),
        "--url_list", str(listing),
        "--input_format", "parquet",
        "--url_col", "url",
        "--caption_col", "caption",
        "--save_additional_columns", '["id","nsfw_level","creator","model_id","version_id"]',
        "--output_format", "files",
        "--output_folder", str(shards),
        "--distributor", "multiprocessing",
        "--processes_count", "2",
        "--thread_count", "4",
        "--number_sample_per_shard", "20",
        "--resize_mode", "no",
        "--disable_all_reencoding", "True",
        "--retries", "0",
        "--enable_wandb", "False",
    ]  # fmt: skip
    run = subprocess.run(
        command, env=offline_env(str(tmp_path)), capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]

    got = {}
    for folder, _dirs, names in os.walk(shards):
        for name in names:
            if name.endswith(".json") and not name.endswith("_stats.json"):
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    sample = json.load(handle)
                stem = os.path.join(folder, name[: -len(".json")])
                sample["_caption_file"] = open(stem + ".txt", encoding="utf-8").read()
                sample["_bytes"] = open(stem + ".jpg", "rb").read()
                got[sample["id"]] = sample
    assert set(got) == set(rows), "img2dataset did not fetch every listed image"
    for image_id, sample in got.items():
        assert sample["status"] == "success", sample
        assert sample["caption"] == rows[image_id]["caption"] == sample["_caption_file"]
        assert sample["nsfw_level"] == rows[image_id]["nsfw_level"]
        original = fake.dataset.original_bytes(image_id)
        assert hashlib.sha256(sample["_bytes"]).digest() == hashlib.sha256(original).digest()
    shard_count = len([n for n in os.listdir(shards) if n.endswith("_stats.json")])
    assert shard_count == 2  # 34 rows at 20 per shard: the work was split
    originals = [r for r in fake.image_requests() if "original=true" in r.path]
    assert len(originals) == 34


def test_a_listing_without_levels_takes_the_default_its_caller_passes_not_a_setting():
    from scripts.civitai_manager_libs import setting
    from scripts.civitai_manager_libs.planning.listing_request import DEFAULT_LEVELS, for_target

    setting.set("images.default_nsfw_filter", ["X"])  # library code no longer reads it
    assert for_target("model", 7).levels == list(DEFAULT_LEVELS) == ["None", "Soft"]
    assert for_target("model", 7, default_levels=["Mature"]).levels == ["Mature"]
    assert for_target("user", "a", nsfw_levels=["Soft"], default_levels=["Mature"]).levels == [
        "Soft"
    ]
    assert for_target("filter", None, params={"sort": "Newest"}, default_levels=["X"]).levels == [
        "X"
    ]
    assert for_target("tag", "cat", default_levels=["Mature"]).levels == ["Mature"]
