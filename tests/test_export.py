"""``python main.py export``: training captions, kohya's layout, a Hugging Face imagefolder that the
real ``datasets`` loads, JSON lines; duplicates once, videos on request, bad input writes nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.export.captions import clean_caption
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.store.archive import Archive, archive_path
from tests.dataset_tools import offline_env, venv_python_or_skip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MEDIA_EXTS = (".png", ".jpeg", ".jpg", ".webp", ".gif", ".mp4", ".webm")
# model id -> the metadata format its images are downloaded with (every source export reads)
DOWNLOADS = {4384: "json", 58390: "txt", 66666: "exif", 77777: "json,txt", 99001: "json"}
CRAFTED_ID = 990000001
CRAFTED_PROMPT = (
    "masterpiece, (best quality:1.2), <lora:add_detail:0.8>, 1girl,  BREAK\n ((red hair)), "
    "[blue eyes], 1girl, <hypernet:sketchy:1>, [cat:dog:0.5], \\(artist\\), <lyco:x:0.3>,"
    "   Masterpiece ,  wide   shot"
)
CRAFTED_CAPTION = "masterpiece, best quality, 1girl, red hair, blue eyes, dog, (artist), wide shot"


# --------------------------------------------------------------------------- captions


@pytest.mark.parametrize(
    "prompt, caption",
    [
        ("a cat, <lora:detail_tweaker:0.6>, 8k", "a cat, 8k"),
        ("<hypernet:anime:1>a cat", "a cat"),
        ("a cat <lyco:style:0.5> <LoRA:x> on a mat", "a cat on a mat"),
        ("a cat BREAK a dog", "a cat, a dog"),
        ("a BREAKFAST table", "a BREAKFAST table"),
        ("(detailed eyes:1.2), (smile), ((masterpiece))", "detailed eyes, smile, masterpiece"),
        ("(red hair: 0.75), (blue:-1), (big eyes:.5)", "red hair, blue, big eyes"),
        ("[blue eyes], [[faint]]", "blue eyes, faint"),
        ("[cat:dog:0.5], [tiger:10], [a|b|c]", "dog, tiger, a"),
        ("((a, b):1.3), c", "a, b, c"),
        ("\\(artist\\), \\[tag\\]", "(artist), [tag]"),
        ("Tag, tag, TAG, other", "Tag, other"),
        ("  a   cat ,\n\n  on\ta mat ,, ", "a cat, on a mat"),
        ("unbalanced (paren, ok]", "unbalanced paren, ok"),
        ("", ""),
        (None, ""),
    ],
)
def test_caption_is_cleaned_for_training(prompt, caption):
    assert clean_caption(prompt) == caption


def test_caption_prefix_comes_first_and_once():
    assert clean_caption("1girl, sks style, red", prefix="sks style") == "sks style, 1girl, red"
    assert clean_caption("(sks:1.3), 1girl", prefix="sks, trigger") == "sks, trigger, 1girl"
    assert clean_caption(None, prefix="sks") == ""  # a prefix alone captions nothing (#24)


# --------------------------------------------------------------------------- a download to export


@pytest.fixture(scope="module")
def tools_python():
    return venv_python_or_skip()


def _cli(argv, out=None):
    out = out or io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def fake():
    with FakeCivitai(dataset=Dataset.default()) as server:
        yield server


@pytest.fixture(scope="module")
def downloaded(fake, tmp_path_factory):
    """An output folder with the images of five models, each model's metadata in another format
    (json, txt, embedded infotext), four videos, plus a crafted image with a hostile prompt, a
    second id with the same bytes and one id pointing at the same file."""
    root = tmp_path_factory.mktemp("download")
    output = root / "out"
    saved = os.environ.get("CIVITAI_GALLERY_SETTINGS")
    os.environ["CIVITAI_GALLERY_SETTINGS"] = str(root / "settings.json")
    try:
        for model_id, metadata in DOWNLOADS.items():
            argv = ["download", "model", model_id, "--nsfw", "all", "--metadata", metadata]
            code, out = _cli(argv + ["--base-url", fake.base_url, "--output", output, "-q"])
            assert code == 0, out
    finally:
        if saved is None:
            os.environ.pop("CIVITAI_GALLERY_SETTINGS", None)
        else:
            os.environ["CIVITAI_GALLERY_SETTINGS"] = saved
    with Archive(archive_path(str(output))) as archive:
        rows = list(archive.iter_images())
        first = next(r for r in rows if r.path.endswith(".png") and r.metadata_path)
        crafted = output / "extra" / f"{CRAFTED_ID}.png"
        crafted.parent.mkdir()
        crafted.write_bytes(open(first.path, "rb").read() + b"crafted")  # other bytes
        with open(first.metadata_path, encoding="utf-8") as handle:
            record = json.load(handle)
        record["id"] = CRAFTED_ID
        record["generation"]["prompt"] = CRAFTED_PROMPT
        (output / "extra" / f"{CRAFTED_ID}.json").write_text(json.dumps(record), "utf-8")
        archive.record_image(
            CRAFTED_ID,
            url="https://image.civitai.com/x/y/original=true/990000001.png",
            sha256=hashlib.sha256(crafted.read_bytes()).hexdigest(),
            path=str(crafted),
            metadata_path=str(output / "extra" / f"{CRAFTED_ID}.json"),
        )
        # the same bytes under a second id (keep_both) and a second id on the same file (skip)
        twin = output / "extra" / "990000002.png"
        shutil.copyfile(first.path, twin)
        archive.record_image(990000002, sha256=first.sha256, path=str(twin))
        archive.record_image(990000003, sha256=first.sha256, path=first.path)
    return output


def _expected_prompts(fake, output):
    """image id -> the prompt Civitai (or the file itself) carries, for every saved image."""
    prompts = {}
    with Archive(archive_path(str(output))) as archive:
        for row in archive.iter_images():
            image = fake.dataset.image(row.image_id)
            if image is None:
                continue
            meta = image.meta if isinstance(image.meta, dict) else {}
            prompts[row.image_id] = meta.get("prompt")
    return prompts


def _export(downloaded, dest, fmt, *extra):
    return _cli(["export", "--from", downloaded, "--to", dest, "--format", fmt, "-q", *extra])


# --------------------------------------------------------------------------- captions format


def test_captions_beside_each_image_from_every_metadata_source(fake, downloaded, tmp_path):
    dest = tmp_path / "set"
    fake.reset()
    code, out = _export(downloaded, dest, "captions")
    assert code == 0, out
    assert fake.log == []  # the archive and the files only: no request at all

    names = sorted(os.listdir(dest))
    images = [n for n in names if n.endswith(MEDIA_EXTS)]
    assert images and all(os.path.splitext(n)[0] + ".txt" in names for n in images)
    assert not any(n.endswith((".mp4", ".webm")) for n in images)  # videos skipped by default
    prompts = _expected_prompts(fake, downloaded)
    exported = {int(os.path.splitext(n)[0]): n for n in images}
    for image_id, name in exported.items():
        caption = (dest / f"{image_id}.txt").read_text("utf-8")
        if image_id == CRAFTED_ID:
            assert caption == CRAFTED_CAPTION
            continue
        assert caption == clean_caption(prompts[image_id]), image_id
        for leftover in ("<lora:", "<hypernet:", "BREAK", ":1.2)", "  "):
            assert leftover not in caption, (image_id, caption)
        assert os.path.samefile(dest / name, _saved_path(downloaded, image_id))  # hard link
    # every saved image with a prompt is there: json, txt and embedded-infotext sources alike
    shown = {i for i, p in prompts.items() if p and clean_caption(p)}
    videos = {i.id for i in fake.dataset.images if i.type == "video"}
    for model_id in DOWNLOADS:
        ids = {i.id for i in fake.dataset.images if i.model_id == model_id} & shown - videos
        missing = {i for i in ids if not fake.dataset.image(i).meta_hidden} - set(exported)
        assert not missing, (model_id, DOWNLOADS[model_id], sorted(missing))
    assert out.splitlines()[0].startswith(f"exported {len(exported)} to {dest}, skipped ")
    assert "  same content as another image: 2" in out.splitlines()
    assert "  video (use --videos): 4" in out.splitlines()


def _saved_path(output, image_id):
    with Archive(archive_path(str(output))) as archive:
        return archive.get_image(image_id).path


def test_kohya_layout_with_a_trigger_word(downloaded, tmp_path):
    dest = tmp_path / "kohya"
    code, out = _export(
        downloaded,
        dest,
        "captions",
        "--kohya-repeats",
        "10",
        "--concept",
        "sks style",
        "--caption-prefix",
        "sks style",
        "--model",
        "4384",
    )
    assert code == 0, out
    assert os.listdir(dest) == ["10_sks style"]
    assert "left from an earlier export" not in out
    first_run = set(os.listdir(dest / "10_sks style"))

    code, out = _export(  # again, fewer images: what the first run wrote is named, not deleted
        downloaded, dest, "captions", "--kohya-repeats", "10", "--concept", "sks style",
        "--caption-prefix", "sks style", "--model", "4384", "--nsfw", "None",
    )  # fmt: skip
    assert code == 0, out
    exported = int(out.split()[1])
    stale = len(first_run) - 2 * exported
    assert 0 < stale and f"  left from an earlier export (not touched): {stale} file(s)" in out
    assert set(os.listdir(dest / "10_sks style")) == first_run
    folder = dest / "10_sks style"
    captions = [folder / n for n in os.listdir(folder) if n.endswith(".txt")]
    assert len(captions) >= 20
    for path in captions:
        text = path.read_text("utf-8")
        assert text.startswith("sks style") and text.count("sks style") == 1
        assert any((folder / (path.stem + ext)).exists() for ext in MEDIA_EXTS)


# --------------------------------------------------------------------------- imagefolder, jsonl


def test_imagefolder_loads_in_hugging_face_datasets(fake, downloaded, tmp_path, tools_python):
    dest = tmp_path / "hf"
    code, out = _export(downloaded, dest, "imagefolder")
    assert code == 0, out
    rows = [json.loads(line) for line in (dest / "metadata.jsonl").read_text("utf-8").splitlines()]
    script = (
        "import json, sys, datasets\n"
        "ds = datasets.load_dataset('imagefolder', data_dir=sys.argv[1], split='train')\n"
        "out = []\n"
        "for row in ds:\n"
        "    image = row.pop('image')\n"
        "    row['image_size'] = list(image.size)\n"
        "    out.append(row)\n"
        "print(json.dumps({'features': sorted(ds.features), 'rows': out}))\n"
    )
    run = subprocess.run(
        [tools_python, "-c", script, str(dest)],
        env=offline_env(str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    loaded = json.loads(run.stdout.splitlines()[-1])
    for column in ("image", "prompt", "negative_prompt", "seed", "checkpoint", "nsfw_level"):
        assert column in loaded["features"]
    assert len(loaded["rows"]) == len(rows) > 50
    by_id = {row["id"]: row for row in loaded["rows"]}
    for image in fake.dataset.images:
        row = by_id.get(image.id)
        if row is None or not isinstance(image.meta, dict) or image.meta_hidden:
            continue
        from_infotext = "json" not in DOWNLOADS[image.model_id]  # txt sidecar or embedded text
        if from_infotext and row["prompt"] != image.meta.get("prompt"):
            # the infotext (txt sidecar, embedded text) carries the <lora:...> tags of LoRAs the
            # image used that its prompt lacks (issue 13); nothing else may differ
            rest = row["prompt"][len(image.meta.get("prompt") or "") :]
            assert row["prompt"].startswith(image.meta.get("prompt") or "")
            assert re.fullmatch(r"(, <lora:[^:<>]+:[^:<>]+>)+", rest), rest
        else:
            assert row["prompt"] == image.meta.get("prompt")
        assert row["image_size"] == [image.width, image.height]
        if DOWNLOADS[image.model_id] != "exif":  # embedded infotext holds generation data only
            assert row["nsfw_level"] == image.nsfw_level
            assert (row["model_id"], row["creator"]) == (image.model_id, image.username)
            if isinstance(image.meta.get("seed"), int):
                assert row["seed"] == image.meta["seed"]
    assert by_id[CRAFTED_ID]["caption"] == CRAFTED_CAPTION


def test_jsonl_records_name_their_file_and_duplicates_go_once(downloaded, tmp_path):
    dest = tmp_path / "jl"
    code, out = _export(downloaded, dest, "jsonl", "--videos")
    assert code == 0, out
    records = [json.loads(line) for line in (dest / "records.jsonl").read_text().splitlines()]
    contents = set()
    for record in records:
        path = dest / record["file"]
        assert path.is_file() and os.path.dirname(record["file"]) == ""
        assert record["file"].split(".")[0] == str(record["id"])
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest not in contents, record["id"]  # same bytes exported once
        contents.add(digest)
        assert "caption" in record and "generation" in record
    ids = {r["id"] for r in records}
    assert 990000002 not in ids and 990000003 not in ids
    assert sum(r["type"] == "video" for r in records) == 4  # --videos
    assert "video" not in out


def test_filters_pick_levels_models_and_creators(fake, downloaded, tmp_path):
    dest = tmp_path / "f"
    code, out = _export(downloaded, dest, "jsonl", "--nsfw", "None,Soft", "--model", "4384,58390")
    assert code == 0, out
    records = [json.loads(line) for line in (dest / "records.jsonl").read_text().splitlines()]
    assert records
    assert {r["nsfw_level"] for r in records} <= {"None", "Soft"}
    assert {r["model_id"] for r in records} <= {4384, 58390}
    dest = tmp_path / "g"
    code, out = _export(downloaded, dest, "jsonl", "--creator", "bobmakes", "--with-prompt")
    assert code == 0, out
    records = [json.loads(line) for line in (dest / "records.jsonl").read_text().splitlines()]
    assert records and {r["creator"] for r in records} == {"BobMakes"}
    assert all(r["generation"]["prompt"] for r in records)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--format", "captions", "--concept", "x"], "both --kohya-repeats N and --concept"),
        (["--format", "captions", "--kohya-repeats", "0", "--concept", "x"], "1 or more"),
        (["--format", "captions", "--kohya-repeats", "3", "--concept", "../up"], "plain folder"),
        (["--format", "jsonl", "--kohya-repeats", "3", "--concept", "x"], "go with --format"),
        (["--format", "imagefolder", "--videos"], "images only"),
        (["--format", "pdf"], "invalid choice"),
        (["--format", "jsonl", "--nsfw", "Spicy"], "unknown NSFW level"),
        (["--format", "jsonl", "--model", "x"], "positive ids"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(downloaded, tmp_path, capsys, extra, fragment):
    dest = tmp_path / "never"
    code, out = _cli(["export", "--from", downloaded, "--to", dest, *extra])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and out == ""
    assert err.startswith("error: ") and fragment in err, err
    assert not dest.exists()


def test_bad_folders_exit_2_and_write_nothing(downloaded, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _ = _cli(["export", "--from", empty, "--to", tmp_path / "a", "--format", "jsonl"])
    assert code == 2 and "no download history in" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and os.listdir(empty) == []

    code, _ = _cli(["export", "--from", downloaded, "--to", downloaded, "--format", "captions"])
    assert code == 2 and "the download folder itself" in capsys.readouterr().err

    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _ = _cli(["export", "--from", downloaded, "--to", a_file, "--format", "jsonl"])
    assert code == 2 and "is not a folder" in capsys.readouterr().err
    assert a_file.read_text() == "x"


def test_an_archived_path_outside_the_folder_is_never_read(downloaded, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(downloaded, output)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    with Archive(archive_path(str(output))) as archive:
        moved = [
            dataclasses.replace(row, path=row.path.replace(str(downloaded), str(output)))
            for row in archive.iter_images()
        ]
        archive.record_images(moved)
        archive.record_image(990000009, sha256="ab" * 32, path=str(secret))
        archive.record_image(990000010, sha256="cd" * 32, path="../secret.png")
    dest = tmp_path / "x"
    code, out = _export(output, dest, "jsonl")
    assert code == 0
    assert "  file outside the output folder: 2" in out.splitlines()
    assert not any(n.startswith("99000001") for n in os.listdir(dest))
    assert not (dest / "secret.png").exists()


def test_a_caption_prefix_does_not_export_images_without_a_prompt(fake, downloaded, tmp_path):
    """Issue 24 item 8: with --caption-prefix, an image with no prompt was exported with the
    prefix alone as its caption (run as a user does: ``python main.py export`` in a process)."""
    env = dict(os.environ, PYTHONPATH=REPO, CIVITAI_GALLERY_SETTINGS=str(tmp_path / "s.json"))
    plain, prefixed = tmp_path / "plain", tmp_path / "prefixed"
    for dest, extra in ((plain, []), (prefixed, ["--caption-prefix", "sks"])):
        argv = ["export", "--from", downloaded, "--to", dest, "--format", "captions", *extra]
        proc = subprocess.run(
            [sys.executable, os.path.join(REPO, "main.py"), *map(str, argv)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    names = sorted(os.listdir(prefixed))
    assert names == sorted(os.listdir(plain))  # the same images: the prefix adds none
    captions = [(prefixed / n).read_text("utf-8") for n in names if n.endswith(".txt")]
    assert captions and all(text.startswith("sks, ") for text in captions)
