"""``python main.py search`` / ``index`` and the search index kept in the archive (issue 25).

Real downloads of the fake Civitai into temporary folders, then real CLI runs: FTS5 syntax
(phrases, OR, -word, NOT, prefix), every filter, several folders, a folder saved before the index
existed (``index``, ``index --rebuild``), bad syntax (exit 2), JSON lines, no network at all, and
the index row written in the image row's transaction.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, Set

import pytest

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.cli.library_cmd import fit
from scripts.civitai_manager_libs.errors import ArchiveError
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.store import library_index, library_query
from scripts.civitai_manager_libs.store.archive import Archive, archive_path
from scripts.civitai_manager_libs.transport import client as transport_client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER_A = {4384: "json", 90210: "json", 31001: "json"}  # model -> metadata formats
FOLDER_B = {58390: "txt", 66666: "exif"}


def _cli(argv, capsys=None):
    out = io.StringIO()
    code = cli.main([str(a) for a in argv], out=out)
    err = capsys.readouterr().err if capsys is not None else ""
    return code, out.getvalue(), err


def _download(fake, output, models, settings):
    saved = os.environ.get("CIVITAI_GALLERY_SETTINGS")
    os.environ["CIVITAI_GALLERY_SETTINGS"] = str(settings)
    try:
        for model_id, metadata in models.items():
            argv = ["download", "model", model_id, "--nsfw", "all", "--metadata", metadata]
            code, out, _ = _cli(argv + ["--base-url", fake.base_url, "--output", output, "-q"])
            assert code == 0, out
    finally:
        if saved is None:
            os.environ.pop("CIVITAI_GALLERY_SETTINGS", None)
        else:
            os.environ["CIVITAI_GALLERY_SETTINGS"] = saved


@pytest.fixture(scope="module")
def fake():
    with FakeCivitai(dataset=Dataset.default()) as server:
        yield server


@pytest.fixture(scope="module")
def folders(fake, tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    a, b = root / "a", root / "b"
    _download(fake, a, FOLDER_A, root / "settings.json")
    _download(fake, b, FOLDER_B, root / "settings.json")
    return a, b


@pytest.fixture(scope="module")
def records(folders) -> Dict[int, dict]:
    """Folder A's records, from its json sidecars: what the expectations are computed from."""
    found = {}
    with Archive(archive_path(str(folders[0]))) as archive:
        for row in archive.iter_images():
            with open(row.metadata_path, encoding="utf-8") as handle:
                found[row.image_id] = json.load(handle)
    assert len(found) > 50
    return found


def _words(text) -> list:
    return re.findall(r"[a-z0-9]+", (text or "").lower())


def _prompt(record) -> str:
    return (record.get("generation") or {}).get("prompt") or ""


def _where(records, keep) -> Set[int]:
    return {image_id for image_id, record in records.items() if keep(record)}


def _ids(folder, *args) -> Set[int]:
    code, out, _ = _cli(["search", "--output", folder, "--limit", "0", "--json", *args])
    assert code == 0, out
    return {json.loads(line)["id"] for line in out.splitlines()}


@pytest.fixture(autouse=True)
def _no_http_client(monkeypatch):
    """Searching and indexing build no HTTP client at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("an HTTP client was built")

    monkeypatch.setattr(transport_client.CivitaiHttpClient, "__init__", refuse)


# --------------------------------------------------------------------------- FTS5 query syntax


def test_words_phrase_or_not_prefix(folders, records, fake):
    a = folders[0]
    fake.reset()

    def has(*words):
        return lambda r: all(w in _words(_prompt(r)) for w in words)

    spirit = _where(records, has("spirit"))
    assert spirit and spirit != set(records)
    assert _ids(a, "spirit") == spirit
    assert _ids(a, "lighting cinematic") == _where(records, has("cinematic", "lighting"))
    phrase = _where(records, lambda r: "cinematic lighting" in " ".join(_words(_prompt(r))))
    assert phrase and _ids(a, '"cinematic lighting"') == phrase
    knight = _where(records, has("knight"))
    assert knight and _ids(a, "knight OR spirit") == knight | spirit
    bokeh = _where(records, has("bokeh"))
    assert spirit - bokeh and spirit & bokeh
    assert _ids(a, "spirit -bokeh") == spirit - bokeh
    assert _ids(a, "spirit NOT bokeh") == spirit - bokeh
    assert _ids(a, "--", "-bokeh") == set(records) - bokeh  # negation alone
    prefix = _where(records, lambda r: any(w.startswith("cine") for w in _words(_prompt(r))))
    assert prefix and _ids(a, "cine*") == prefix
    assert _ids(a, "(knight OR spirit) bokeh") == (knight | spirit) & bokeh
    assert fake.log == []  # offline: not one request


def test_column_filter_and_punctuation(folders, records):
    a = folders[0]
    assert _ids(a, "creator:alice_art") == _where(records, lambda r: r["creator"] == "alice_art")
    # a word with punctuation is a phrase of its words, not an FTS5 syntax error
    assert _ids(a, "best-quality") == _where(
        records, lambda r: "best quality" in " ".join(_words(_prompt(r)))
    )


def test_results_are_ranked_and_marked(folders, capsys):
    code, out, _ = _cli(["search", '"neon city"', "--output", folders[0], "--json"], capsys)
    assert code == 0
    hits = [json.loads(line) for line in out.splitlines()]
    assert [h["id"] for h in hits] == [31000001]
    hit = hits[0]
    assert hit["marked"] == "a **neon city** at night, <lora:neonLines_v1:0.8>, soft glow"
    assert hit["path"] == os.path.join(str(folders[0]), "31001", "31000001.png")
    assert os.path.isfile(hit["path"])
    assert hit["folder"] == str(folders[0])
    assert hit["creator"] == "alice_art" and hit["base_model"] == "SD 1.5"
    assert hit["sampler"] == "DPM++ 2M" and hit["model_id"] == 31001
    assert hit["created_at"].endswith("Z") and isinstance(hit["rank"], float)
    code, out, _ = _cli(["search", "neon", "--output", folders[0]], capsys)
    ranks = [line.split("  ")[1] for line in out.splitlines()]
    assert ranks == ["31000002", "31000001"]  # the shorter prompt ranks first (bm25)


# --------------------------------------------------------------------------- filters


def _reactions(record):
    stats = record.get("stats") or {}
    keys = ("likeCount", "heartCount", "laughCount", "cryCount", "dislikeCount")
    return sum(stats.get(k) or 0 for k in keys)


def test_every_filter(folders, records):
    a = folders[0]
    assert _ids(a, "--lora", "Soft Light") == {31000001}  # softLight_v2, as words
    assert _ids(a, "neon", "--lora", "neonLines_v1") == {31000001, 31000002}
    assert _ids(a, "--model", "Reproduce Checkpoint") == _where(
        records, lambda r: r["model_id"] == 31001
    )
    assert _ids(a, "--model", "31001") == _where(records, lambda r: r["model_id"] == 31001)
    pony = _where(records, lambda r: r["base_model"] == "Pony")
    assert pony and _ids(a, "--base-model", "pony") == pony
    assert _ids(a, "--base-model", "Pony,SD 1.5") == set(records)
    sampler = _where(records, lambda r: (r.get("generation") or {}).get("sampler") == "DPM++ 2M")
    assert sampler and _ids(a, "--sampler", "dpm++ 2m") == sampler
    creators = {r["creator"] for r in records.values()}
    assert len(creators) > 1
    for creator in creators:
        assert _ids(a, "--creator", creator) == _where(records, lambda r: r["creator"] == creator)
    dates = sorted(r["created_at"] for r in records.values())
    middle = dates[len(dates) // 2][:10]
    assert _ids(a, "--since", middle) == _where(records, lambda r: r["created_at"][:10] >= middle)
    counts = sorted(_reactions(r) for r in records.values())
    bar = counts[len(counts) // 2]
    assert _ids(a, "--min-reactions", bar) == _where(records, lambda r: _reactions(r) >= bar)
    levels = {r["nsfw_level"] for r in records.values()}
    assert len(levels) > 1
    assert _ids(a, "--nsfw", "None,Soft") == _where(
        records, lambda r: r["nsfw_level"] in ("None", "Soft")
    )
    # filters combine with words and with each other
    assert _ids(a, "neon", "--creator", "alice_art", "--model", "31001") == {31000001, 31000002}


def test_tags_are_searched(tmp_path):
    output = tmp_path / "tagged"
    with Archive(archive_path(str(output))) as archive:
        archive.record_image(
            1, path=str(output / "1.png"), record={"id": 1, "tags": ["Cyberpunk City", "rain"]}
        )
        archive.record_image(2, path=str(output / "2.png"), record={"tags": [{"name": "forest"}]})
    assert _ids(output, "--tag", "cyberpunk city") == {1}
    assert _ids(output, "--tag", "forest") == {2}
    assert _ids(output, "tags:rain") == {1}


@pytest.fixture(scope="module")
def nested(fake, tmp_path_factory):
    """Saved with thumbnails (.thumbnails/ beside the images) and a {model_name}/{id} template."""
    root = tmp_path_factory.mktemp("nested")
    options = {"images.generate_thumbnails": True, "images.path_template": "{model_name}/{id}"}
    (root / "settings.json").write_text(json.dumps(options))
    kept = {key: setting.get(key) for key in setting.SPECS if setting.source(key) == "set"}
    try:
        _download(fake, root / "out", {31001: "json,exif", 4384: "json"}, root / "settings.json")
    finally:  # the in-process CLI read these options into the settings: no later test gets them
        setting.reset()
        setting.update(kept)
    return root / "out"


def test_thumbnails_and_a_nested_template_hide_nothing(nested):
    """Each image is found once, thumbnails never (the Library browser test once failed after a
    test that saved these options: that was the shared settings file, not the Library)."""
    output = nested
    assert any(".thumbnails" in dirs for _root, dirs, _files in os.walk(output))
    assert not any(name.isdigit() for name in os.listdir(output))  # one folder per model name
    found = _ids(output, '"neon city"')
    assert len(found) == 1
    hits = _ids(output, "--lora", "Neon Lines")
    assert len(hits) == 2 and found <= hits


# --------------------------------------------------------------------------- several folders


def test_several_folders_merged_by_rank(folders, capsys):
    a, b = folders
    both = _ids(a, "--output", b)
    only_a, only_b = _ids(a), _ids(b)
    assert only_a and only_b and both == only_a | only_b
    code, out, _ = _cli(
        ["search", "masterpiece", "-o", a, "-o", b, "--limit", "0", "--json"], capsys
    )
    hits = [json.loads(line) for line in out.splitlines()]
    assert {h["folder"] for h in hits} == {str(a), str(b)}
    assert [h["rank"] for h in hits] == sorted(h["rank"] for h in hits)
    code, out, _ = _cli(["search", "masterpiece", "-o", a, "-o", b, "--limit", "3"], capsys)
    assert len(out.splitlines()) == 3


# --------------------------------------------------------------------------- older folders


def test_old_folder_after_index_rebuild(folders, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(folders[1], old)
    before = {q: _ids(old, q) for q in ("masterpiece", "spirit OR knight", "")}
    with Archive(archive_path(str(old))) as archive:  # as an older version left it
        with archive.writing() as conn:
            library_index.drop(conn)
    code, out, err = _cli(["search", "masterpiece", "--output", old], capsys)
    assert code == 2 and out == ""
    assert "no search index" in err and f"python main.py index --output {old}" in err
    with Archive(archive_path(str(old))) as archive:
        count = archive.image_count()
    code, out, err = _cli(["index", "--output", old], capsys)
    assert code == 0, err
    assert out.startswith(f"indexed {count} image(s) in {old}") and len(out.splitlines()) == 1
    assert err == ""  # no bar when stderr is not a terminal
    assert {q: _ids(old, q) for q in before} == before  # from the txt sidecars / infotext
    code, out, _ = _cli(["index", "--output", old], capsys)
    assert out.startswith("indexed 0 image(s)") and f"{count} already indexed" in out
    code, out, _ = _cli(["index", "--output", old, "--rebuild"], capsys)
    assert out.startswith(f"indexed {count} image(s)")
    assert {q: _ids(old, q) for q in before} == before


def test_old_archive_opened_by_a_download_is_flagged(folders, records, tmp_path, capsys, caplog):
    """Opened for writing, an old archive gets empty index tables: search says what is missing."""
    old = tmp_path / "old"
    shutil.copytree(folders[0], old)
    with Archive(archive_path(str(old))) as archive:
        with archive.writing() as conn:
            library_index.drop(conn)
    Archive(archive_path(str(old))).close()  # a newer version opens it (creates the tables)
    code, out, err = _cli(["search", "neon", "--output", old], capsys)
    assert code == 0 and out == ""
    assert "no saved image matches" in err
    warning = f"{len(records)} image(s) in {old} are not in the search index yet; run: "
    assert [r.getMessage() for r in caplog.records] == [
        warning + f"python main.py index --output {old}"
    ]
    _cli(["index", "-o", old], capsys)
    assert _ids(old, "neon") == {31000001, 31000002}


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("query", ['"neon', "neon AND", "OR", "(neon", "neon NOT"])
def test_bad_syntax_is_exit_2(folders, capsys, query):
    code, out, err = _cli(["search", query, "--output", folders[0]], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: cannot read the search") and len(err.splitlines()) == 1


def test_bad_options_are_exit_2(folders, tmp_path, capsys):
    for argv in (
        ["--since", "yesterday"],
        ["--nsfw", "Spicy"],
        ["--min-reactions", "-1"],
        ["--output", tmp_path / "nothing"],
    ):
        code, out, err = _cli(["search", "neon", "-o", folders[0], *argv], capsys)
        assert code == 2 and out == "" and err.startswith("error:"), argv


# --------------------------------------------------------------------------- the real command


def test_terminal_lines_fit_the_width(folders):
    env = dict(os.environ, COLUMNS="70", PYTHONIOENCODING="utf-8")
    main = os.path.join(ROOT, "main.py")
    proc = subprocess.run(
        [sys.executable, main, "search", "spirit", "-o", str(folders[0]), "--limit", "5"],
        cwd=folders[0],  # paths are shown relative to the working folder
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 5
    for line in lines:
        path, image_id, creator, prompt = line.split("  ", 3)
        assert os.path.isfile(os.path.join(folders[0], path)) and image_id.isdigit()
        assert len(line.replace("**", "")) <= 70
        assert "**spirit**" in prompt


def test_fit_keeps_the_first_match_in_view():
    o, c = library_query.MARK_OPEN, library_query.MARK_CLOSE
    text = "word " * 30 + f"{o}neon{c} city\nat night"
    line = fit(text, 40, "[", "]")
    assert "[neon]" in line and line.startswith("…") and len(line) - 2 <= 40
    assert fit(f"{o}a{c} b", 40, "<", ">") == "<a> b"
    assert fit("x" * 100, 10, "", "") == "x" * 9 + "…"


# --------------------------------------------------------------------------- one transaction


def test_download_indexes_every_image(folders):
    for folder in folders:
        with Archive(archive_path(str(folder))) as archive, archive.reading() as conn:
            assert library_index.unindexed_count(conn) == 0
            assert conn.execute("SELECT COUNT(*) FROM library").fetchone()[0] > 0


def test_index_row_is_written_in_the_image_rows_transaction(tmp_path, monkeypatch):
    with Archive(archive_path(str(tmp_path))) as archive:
        record = {"generation": {"prompt": "a neon city"}, "creator": "bob"}
        archive.record_image(1, path=str(tmp_path / "1.png"), record=record)

        def broken(conn, rows):
            conn.executemany(library_index._INSERT, rows)  # half written, then a failure
            raise RuntimeError("disk went away")

        monkeypatch.setattr(library_index, "write", broken)
        with pytest.raises((RuntimeError, ArchiveError)):
            archive.record_image(2, path=str(tmp_path / "2.png"), record=record)
        assert not archive.has_image(2)
        with archive.reading() as conn:
            assert [r[0] for r in conn.execute("SELECT image_id FROM library")] == [1]
            fts = "SELECT rowid FROM library_fts WHERE library_fts MATCH 'neon'"
            assert [r[0] for r in conn.execute(fts)] == [1]
        monkeypatch.undo()
        archive.remove_image(1)  # forgetting an image forgets its index row
        with archive.reading() as conn:
            assert conn.execute("SELECT COUNT(*) FROM library").fetchone()[0] == 0
            assert conn.execute(fts).fetchall() == []


def test_a_common_word_ranks_its_newest_matches(folders, records, monkeypatch):
    """Asked for fewer than RANK_WINDOW, a query matching more ranks only its newest matches (the
    bound that keeps a query fast on 100,000 images); --limit 0 ranks them all."""
    a = folders[0]
    spirit = sorted(i for i, r in records.items() if "spirit" in _words(_prompt(r)))
    assert len(spirit) > 6
    monkeypatch.setattr(library_query, "RANK_WINDOW", 4)
    code, out, _ = _cli(["search", "spirit", "-o", a, "--limit", "3", "--json"])
    shown = [json.loads(line)["id"] for line in out.splitlines()]
    assert len(shown) == 3 and set(shown) <= set(spirit[-4:])
    assert _ids(a, "spirit") == set(spirit)  # --limit 0: every match
    code, out, _ = _cli(["search", "spirit", "-o", a, "--limit", "3", "--creator", "BobMakes"])
    bob = sorted(i for i in spirit if records[i]["creator"] == "BobMakes")
    assert {int(line.split("  ")[1]) for line in out.splitlines()} <= set(bob[-4:])
