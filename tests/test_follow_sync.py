"""``follow`` / ``unfollow`` / ``following`` / ``sync`` (issue 22) against the fake: targets and
their options kept in the output folder's archive, one line per target, incremental updates."""

from __future__ import annotations

import io
import sqlite3

import pytest

from scripts.civitai_manager_libs.cli import command as cli
from scripts.civitai_manager_libs.fake_civitai import Dataset, FakeCivitai
from scripts.civitai_manager_libs.store.paths import ARCHIVE_NAME

MODEL = 500_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.delenv("CIVITAI_API_KEY", raising=False)
    monkeypatch.delenv("CIVITAI_BASE_URL", raising=False)


def _cli(*argv):
    buf = io.StringIO()
    code = cli.main([str(a) for a in argv], out=buf)
    return code, buf.getvalue()


def _listing_requests(fake):
    return [r for r in fake.api_requests() if r.path == "/api/v1/images"]


def test_follow_then_sync_updates_each_target_with_what_is_new(tmp_path):
    out = tmp_path / "out"
    with FakeCivitai(Dataset.generate(450, image_kb=1, seed=31)) as fake:
        code, text = _cli(
            "follow", "model", MODEL, "--nsfw", "all", "--metadata", "json",
            "--output", out, "--base-url", fake.base_url,
        )  # fmt: skip
        assert code == 0 and "following: model 500000 --nsfw None,Soft,Mature,X" in text, text
        code, text = _cli("follow", "user", "bench_user", "--limit", 0, "--output", out)
        assert code == 0, text
        code, text = _cli(
            "follow", "model", MODEL, "--nsfw", "all", "--template", "sub/{id}", "-o", out
        )
        assert text.startswith(
            "updated: model 500000 --nsfw None,Soft,Mature,X --template sub/{id}"
        )
        code, text = _cli("following", "--output", out)
        assert code == 0
        assert text.splitlines() == [
            "model 500000 --nsfw None,Soft,Mature,X --template sub/{id}  (never synced)",
            "user 'bench_user' --limit 0  (never synced)",
            f"2 followed target(s) in {out}",
        ]

        code, text = _cli("sync", "--output", out, "--base-url", fake.base_url, "-q")
        assert code == 0, text
        lines = text.splitlines()
        assert lines[0] == "model 500000 Benchmark Model: 450 new"
        assert lines[1].startswith("user 'bench_user': 0 new")
        assert lines[-1] == "synced 2 target(s): 450 new image(s)"

        fake.dataset.post_images(MODEL, 5)
        fake.reset()
        code, text = _cli("sync", "--output", out, "--base-url", fake.base_url, "-q")
        assert code == 0, text
        lines = text.splitlines()
        assert lines[0] == (
            "model 500000 Benchmark Model: 5 new "
            "(incremental: stopped at known image 60000449 after 1 page)"
        )
        assert lines[1].startswith("user 'bench_user': 0 new (full listing: the order")
        assert lines[-1] == "synced 2 target(s): 5 new image(s)"
        by_user = [r for r in _listing_requests(fake) if r.query.get("username")]
        assert len(_listing_requests(fake)) - len(by_user) == 1  # the model: one page
        assert len(by_user) >= 3  # Most Reactions: every page (455 images, 200 a page)
        with sqlite3.connect(str(out / ARCHIVE_NAME)) as db:
            path = db.execute("SELECT path FROM images WHERE image_id = 60000454").fetchone()[0]
        assert path.startswith("sub/") or "/sub/" in path  # the followed options applied
        code, text = _cli("following", "--output", out)
        assert ": 5 new)" in text.splitlines()[0] and ": 0 new)" in text.splitlines()[1]

        assert _cli("unfollow", "user", "bench_user", "--output", out)[0] == 0
        assert _cli("unfollow", "user", "bench_user", "--output", out)[0] == 2
        code, text = _cli("following", "--output", out)
        assert text.splitlines()[-1] == f"1 followed target(s) in {out}"


def test_sync_goes_on_after_a_target_that_fails_and_exits_1(tmp_path):
    out = tmp_path / "out"
    with FakeCivitai(Dataset.generate(30, image_kb=1, seed=32)) as fake:
        assert _cli("follow", "model", 999_999, "--output", out)[0] == 0  # no such model
        assert _cli("follow", "model", MODEL, "--nsfw", "all", "--output", out)[0] == 0
        code, text = _cli("sync", "--output", out, "--base-url", fake.base_url, "-q")
        lines = text.splitlines()
        assert code == 1, text
        # the empty listing asked the look-up: the target is named gone, in the look-up's words
        assert lines[0] == (
            "model 999999: gone: model 999999 was not found on Civitai; check the id (it may "
            "also be hidden or removed)."
        )
        assert lines[1] == "model 500000 Benchmark Model: 30 new"
        assert lines[-1] == "synced 2 target(s): 30 new image(s), 1 with problems (model 999999)"


def test_sync_with_nothing_new_costs_one_request_per_target(tmp_path):
    """A followed target is not looked up before its listing: the first page answers that it
    exists, so an up-to-date target costs exactly that page (it cost the look-up too before)."""
    out = tmp_path / "out"
    dataset = Dataset.default()
    targets = [["model", m.id] for m in dataset.models[:8]]
    targets += [["user", c.username, "--limit", 0] for c in dataset.creators[:2]]
    with FakeCivitai(dataset) as fake:
        for target in targets:
            assert _cli("follow", *target, "--nsfw", "all", "--metadata", "none", "-o", out)[0] == 0
        code, text = _cli("sync", "--output", out, "--base-url", fake.base_url, "-q")
        assert code == 0, text
        fake.reset()
        code, text = _cli("sync", "--output", out, "--base-url", fake.base_url, "-q")
        assert code == 0, text
        requests = fake.api_requests()
        assert [r.path for r in requests] == ["/api/v1/images"] * 10, requests
        assert sorted(
            r.query.get("modelId") or r.query.get("username") for r in requests
        ) == sorted(str(t[1]) for t in targets)
        lines = text.splitlines()
        assert lines[0] == f"model {dataset.models[0].id} {dataset.models[0].name}: 0 new " + (
            f"(incremental: stopped at known image {max_image_of(dataset, 0)} after 1 page)"
        )
        assert lines[-1] == "synced 10 target(s): 0 new image(s)"
        assert not fake.image_requests()


def max_image_of(dataset, index):
    model = dataset.models[index]
    return max(i.id for i in dataset.images if i.model_id == model.id)


#: One example per download argument (a new option fails the walk below until it has one).
SAMPLES = {
    "kind": [], "values": [], "output": [], "verbose": ["-v"], "quiet": ["-q"],
    "limit": ["--limit", "5"], "nsfw": ["--nsfw", "None,X"], "reaction_kinds": ["--kind", "Like"],
    "base_model": ["--base-model", "SDXL 1.0"], "media_type": ["--type", "video"],
    "with_generation_data": ["--with-generation-data"], "since": ["--since", "2024-01-02"],
    "until": ["--until", "2024-05-06"], "min_reactions": ["--min-reactions", "3"],
    "used_with": ["--used-with", "11,12"], "with_tags": ["--with-tags"],
    "template": ["--template", "{model_id}/x/{id}"], "metadata": ["--metadata", "txt,exif"],
    "thumbnails": ["--thumbnails"], "duplicates": ["--duplicates", "keep-both"],
    "concurrency": ["--concurrency", "2"], "base_url": ["--base-url", "http://127.0.0.1:9"],
    "red_base_url": ["--red-base-url", "http://127.0.0.1:9"], "api_key": ["--api-key", "k"],
    "from_file": ["--from-file", "ids.txt"], "full": ["--full"], "report": ["--report", "r.json"],
    "sleep_request": ["--sleep-request", "2"], "limit_rate": ["--limit-rate", "2M"],
}  # fmt: skip


def _download_arguments():
    from scripts.civitai_manager_libs.cli.args import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return [a.dest for a in sub.choices["download"]._actions if a.dest != "help"]


def test_every_download_option_follow_takes_is_recorded_and_honoured_or_refused(tmp_path):
    """Walks download's arguments (cli/args.py): each is classified in FOLLOW_ARGUMENTS; a
    recorded one comes back from the follow row with the value given (sync parses that row
    the same way), a refused one exits 2 with its sentence and writes nothing."""
    from scripts.civitai_manager_libs.cli.args import build_parser
    from scripts.civitai_manager_libs.cli.follow_cmd import FOLLOW_ARGUMENTS
    from scripts.civitai_manager_libs.planning.follow_sync import FollowOptions
    from scripts.civitai_manager_libs.store import follows
    from scripts.civitai_manager_libs.store.archive import Archive

    dests = _download_arguments()
    assert sorted(dests) == sorted(FOLLOW_ARGUMENTS), "classify the new option in follow_cmd"
    assert sorted(dests) == sorted(SAMPLES), "give the new option an example in SAMPLES"
    for dest in dests:
        how = FOLLOW_ARGUMENTS[dest]
        out = tmp_path / dest
        target = ["reactions"] if dest == "reaction_kinds" else ["model", "4201"]
        code, text = _cli("follow", *target, *SAMPLES[dest], "--output", out)
        if how in ("target", "recorded", "follow"):
            assert code == 0, (dest, text)
        else:
            assert code == 2 and not out.exists(), (dest, code, text)
            continue
        if how != "recorded":
            continue
        with Archive(str(out / ARCHIVE_NAME)) as archive:
            (row,) = follows.followed(archive)
        given = build_parser().parse_args(["download", *target, *SAMPLES[dest]])
        synced = build_parser().parse_args(["download", *row.argv])
        assert getattr(synced, dest) == getattr(given, dest), dest
        # the tab's sync reads the same record (planning/follow_sync.FollowOptions)
        assert FollowOptions.parse(row.options).argv() == row.options, dest


def test_refused_follow_options_say_why(tmp_path, capsys):
    (tmp_path / "ids.txt").write_text("1\n2\n")
    code, _ = _cli("follow", "image", 1, "--from-file", tmp_path / "ids.txt", "-o", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2 and "error: follow: --from-file names fixed images" in err, err
    code, _ = _cli("follow", "model", 1, "--api-key", "sekrit", "-o", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2 and "give it to sync" in err and "sekrit" not in err, err
    assert not (tmp_path / "o").exists()


def test_bad_follow_input_writes_nothing(tmp_path):
    out = tmp_path / "out"
    assert _cli("follow", "image", 5, "--output", out)[0] == 2  # nothing new ever: refused
    assert _cli("follow", "url", "https://civitai.com/images/5", "--output", out)[0] == 2
    assert _cli("follow", "model", "abc", "--output", out)[0] == 2
    assert _cli("follow", "model", 1, "--since", "yesterday", "--output", out)[0] == 2
    assert not out.exists()
    assert _cli("sync", "--output", out)[0] == 2  # follows nothing: no archive
    assert _cli("following", "--output", out)[0] == 2
