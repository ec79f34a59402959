"""archive.py: images, tasks and checkpoints in SQLite, checked on the file itself."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from scripts.civitai_manager_libs.store.archive import Archive, archive_path
from scripts.civitai_manager_libs.store.archive_db import ARCHIVE_FILENAME
from scripts.civitai_manager_libs.errors import ArchiveError, OutputPathError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def db(tmp_path):
    path = archive_path(tmp_path / "out")
    with Archive(path) as archive:
        yield archive


def raw(path):
    """A separate plain sqlite3 connection: what is really in the file."""
    return sqlite3.connect(path)


# --------------------------------------------------------------------------- file and schema


def test_default_path_and_schema_on_disk(tmp_path):
    out = tmp_path / "images"
    path = archive_path(out)
    assert path == os.path.join(str(out), ARCHIVE_FILENAME) == str(out / ".civitai_archive.sqlite3")
    with Archive(path) as archive:
        assert os.path.isfile(path)
        assert archive.schema_version() == 1
        conn = raw(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"images", "tasks", "checkpoints", "schema_version"} <= tables
        cols = {r[1] for r in conn.execute("PRAGMA table_info(images)")}
        assert cols == {
            "image_id",
            "url",
            "sha256",
            "path",
            "metadata_path",
            "size",
            "downloaded_at",
            "uuid",  # the file's Civitai uuid (one video under its old and new URL)
        }
        cols = {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}
        assert {"task_id", "image_id", "status", "error", "query_key", "created_at"} <= cols
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(images)")}
        assert "images_sha256" in indexes
        conn.close()
    assert archive.closed
    with Archive(path) as again:  # reopening does not duplicate the version row
        assert again.schema_version() == 1
    conn = raw(path)
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "a.sqlite3")
    Archive(path).close()
    conn = raw(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ArchiveError, match="newer version"):
        Archive(path)


def test_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "a.sqlite3"
    path.write_bytes(b"this is not a database, just text" * 100)
    with pytest.raises(ArchiveError, match="damaged"):
        Archive(str(path))


def test_unusable_folder_is_an_output_path_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="Cannot create the folder"):
        Archive(archive_path(blocker / "sub"))


def test_closed_archive_refuses_work(tmp_path):
    archive = Archive(str(tmp_path / "a.sqlite3"))
    archive.close()
    archive.close()  # twice is fine
    with pytest.raises(ArchiveError, match="closed"):
        archive.has_image(1)
    assert "closed" in repr(archive)


# --------------------------------------------------------------------------- images


def test_image_round_trip_and_persistence(tmp_path):
    path = str(tmp_path / "a.sqlite3")
    with Archive(path) as archive:
        assert not archive.has_image(10)
        assert archive.get_image(10) is None
        rec = archive.record_image(
            10, url="http://img/10.jpeg", sha256="ABCDEF", path="/x/10.png", size=123
        )
        assert rec.sha256 == "abcdef"
        assert archive.has_image(10) and archive.has_image("10")
    with Archive(path) as archive:  # a new process would see the same
        got = archive.get_image(10)
        assert got.url == "http://img/10.jpeg"
        assert got.path == "/x/10.png"
        assert got.size == 123
        assert got.metadata_path is None
        assert got.downloaded_at.startswith("20")
        assert archive.find_by_sha256("AbCdEf") == got
        assert archive.find_by_sha256("0000") is None
        assert archive.find_by_sha256("") is None
        archive.record_image(10, url="u2", sha256="ff", path="/x/10b.png")
        assert archive.get_image(10).url == "u2"
        assert archive.image_count() == 1
        assert archive.remove_image(10) is True
        assert archive.remove_image(10) is False
        assert not archive.has_image(10)
    conn = raw(path)
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    conn.close()


def test_find_by_sha256_returns_the_first_saved(db):
    db.record_image(2, sha256="aa", path="/b", downloaded_at="2024-01-02T00:00:00+00:00")
    db.record_image(1, sha256="aa", path="/a", downloaded_at="2024-01-01T00:00:00+00:00")
    assert db.find_by_sha256("aa").image_id == 1


@pytest.mark.parametrize("bad", [None, "abc", 1.5, True, "-3"])
def test_bad_image_ids_are_refused(db, bad):
    with pytest.raises(ValueError, match="image id"):
        db.record_image(bad, path="/x")


def test_known_ids_on_ten_thousand_ids(db):
    db.record_images({"image_id": i, "path": f"/p/{i}.jpeg"} for i in range(0, 20_000, 2))
    assert db.image_count() == 10_000
    start = time.perf_counter()
    found = db.known_ids(range(20_000))
    elapsed = time.perf_counter() - start
    assert found == set(range(0, 20_000, 2))
    assert elapsed < 2.0, f"known_ids took {elapsed:.2f}s"
    assert db.known_ids([4, "6", None, 7, 4]) == {4, 6}
    assert db.known_ids([]) == set()


def test_verify_reports_missing_files(tmp_path):
    out = tmp_path / "out"
    with Archive(archive_path(out)) as archive:
        (out / "m").mkdir()
        (out / "m" / "1.jpeg").write_bytes(b"\xff\xd8")
        (out / "m" / "2.jpeg").write_bytes(b"\xff\xd8")
        archive.record_image(1, path=str(out / "m" / "1.jpeg"))
        archive.record_image(2, path=os.path.join("m", "2.jpeg"))  # relative to the archive
        archive.record_image(3, path=str(out / "m" / "3.jpeg"))
        archive.record_image(4, path=None)
        assert [r.image_id for r in archive.verify()] == [3, 4]
        os.remove(out / "m" / "1.jpeg")
        assert [r.image_id for r in archive.verify()] == [1, 3, 4]


# --------------------------------------------------------------------------- tasks


def test_record_task_upserts_and_keeps_unspecified_fields(db):
    first = db.record_task("t1", "pending", image_id=5, url="http://i/5.jpeg", query_key="model:1")
    assert first.status == "pending" and first.image_id == 5 and first.error is None
    time.sleep(0.002)
    failed = db.record_task("t1", "failed", error="The server answered 503.")
    assert failed.url == "http://i/5.jpeg"  # kept
    assert failed.query_key == "model:1"
    assert failed.error == "The server answered 503."
    assert failed.created_at == first.created_at
    assert failed.updated_at > first.updated_at
    retried = db.record_task("t1", "completed", error=None, path="/out/1/5.jpeg")
    assert retried.error is None  # None clears
    assert retried.path == "/out/1/5.jpeg"
    assert db.task_count() == 1


def test_record_task_validation_writes_nothing(db):
    with pytest.raises(ValueError, match="status"):
        db.record_task("t1", "exploded")
    with pytest.raises(ValueError, match="needs a status"):
        db.record_task("t2", image_id=3)
    with pytest.raises(ValueError, match="Unknown task field"):
        db.record_task("t3", "pending", colour="red")
    with pytest.raises(ValueError, match="task id"):
        db.record_task("", "pending")
    assert db.task_count() == 0


def test_record_task_accepts_task_objects_and_mappings(db):
    task = SimpleNamespace(
        id="abc",
        image_id=9,
        image_url="http://i/9.png",
        status="downloading",
        progress=0.5,
        image_path=None,
        metadata_path=None,
        error=None,
    )
    rec = db.record_task(task)
    assert (rec.task_id, rec.url, rec.status) == ("abc", "http://i/9.png", "downloading")
    task.status, task.image_path = "completed", "/o/9.png"
    assert db.record_task(task, query_key="version:3").path == "/o/9.png"
    assert db.get_task("abc").query_key == "version:3"
    db.record_task({"id": "m1", "status": "skipped", "image_id": "12"})
    assert db.get_task("m1").image_id == 12
    assert db.get_task("nope") is None


def test_record_task_accepts_a_task_dict_with_extra_keys(db):
    as_dict = {
        "id": "d1",
        "image_id": 77,
        "image_url": "http://i/77.webp",
        "status": "completed",
        "progress": 1.0,
        "image_path": "/o/77.webp",
        "metadata_path": "/o/77.json",
        "thumbnail_path": None,
        "error": None,
        "model_name": "M",
        "sha256": "ab",
        "query_key": "model:1",
        "created_at": 123.0,
    }
    rec = db.record_task(as_dict)
    assert (rec.task_id, rec.url, rec.path, rec.metadata_path) == (
        "d1",
        "http://i/77.webp",
        "/o/77.webp",
        "/o/77.json",
    )
    assert rec.created_at != 123.0  # the archive keeps its own times
    assert db.record_tasks([dict(as_dict, id="d2", status="failed", error="boom")]) == 1
    assert db.get_task("d2").error == "boom"
    with pytest.raises(ValueError, match="needs an id"):
        db.record_task({"status": "pending"})


def test_record_tasks_is_one_all_or_nothing_batch(db):
    good = [{"task_id": f"t{i}", "status": "pending", "image_id": i} for i in range(50)]
    with pytest.raises(ValueError):
        db.record_tasks(good + [{"task_id": "bad", "status": "??"}])
    assert db.task_count() == 0
    assert db.record_tasks(good) == 50
    assert db.task_count("pending") == 50


def test_tasks_newest_first_with_filters(db):
    for i in range(6):
        status = "failed" if i % 2 else "completed"
        db.record_task(f"t{i}", status, image_id=i, query_key="a" if i < 3 else "b")
    assert [t.task_id for t in db.tasks()] == ["t5", "t4", "t3", "t2", "t1", "t0"]
    assert [t.task_id for t in db.tasks(limit=2)] == ["t5", "t4"]
    assert [t.task_id for t in db.failed_tasks()] == ["t5", "t3", "t1"]
    assert [t.task_id for t in db.tasks(status=["failed", "completed"], query_key="a")] == [
        "t2",
        "t1",
        "t0",
    ]
    # an update does not make a task "newer"
    db.record_task("t0", "cancelled")
    assert db.tasks(limit=1)[0].task_id == "t5"
    assert db.task_count("cancelled") == 1


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path):
    path = str(tmp_path / "a.sqlite3")
    with Archive(path) as archive:
        assert archive.get_checkpoint("model:1|nsfw=None,Soft") is None
        archive.set_checkpoint("model:1|nsfw=None,Soft", "100|1700000000")
        archive.set_checkpoint("user:bob", "c1")
        archive.set_checkpoint("user:bob", "c2")
    with Archive(path) as archive:
        assert archive.get_checkpoint("model:1|nsfw=None,Soft") == "100|1700000000"
        assert archive.get_checkpoint("user:bob") == "c2"
        archive.set_checkpoint("user:bob", None)  # finished: cleared
        assert archive.get_checkpoint("user:bob") is None
        archive.clear_checkpoint("model:1|nsfw=None,Soft")
        archive.clear_checkpoint("never-set")
        assert archive.get_checkpoint("model:1|nsfw=None,Soft") is None
    conn = raw(path)
    assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0
    conn.close()


# --------------------------------------------------------------------------- concurrency


def test_eight_threads_writing_tasks_and_images(tmp_path):
    path = str(tmp_path / "a.sqlite3")
    archive = Archive(path)
    other = Archive(path)  # a second connection on the same file, like a second process
    errors = []
    barrier = threading.Barrier(8)

    def worker(n):
        target = archive if n % 2 else other
        try:
            barrier.wait()
            for i in range(60):
                task_id = f"w{n}-{i}"
                target.record_task(task_id, "pending", image_id=n * 1000 + i)
                target.record_task(task_id, "completed", path=f"/o/{task_id}.jpeg")
                target.record_image(n * 1000 + i, path=f"/o/{task_id}.jpeg", sha256=f"{n}{i}")
                target.set_checkpoint(f"q{n}", str(i))
                assert target.has_image(n * 1000 + i)
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert archive.task_count("completed") == 480
    assert archive.image_count() == 480
    assert all(archive.get_checkpoint(f"q{n}") == "59" for n in range(8))
    archive.close()
    other.close()
    conn = raw(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM tasks WHERE status='completed'").fetchone()[0] == 480
    conn.close()


# --------------------------------------------------------------------------- crash safety

_WRITER = r"""
import sys
from scripts.civitai_manager_libs.store.archive import Archive
archive = Archive(sys.argv[1])
i = 0
while True:
    archive.record_task(f"t{i}", "completed", image_id=i, path=f"/o/{i}.jpeg")
    archive.record_image(i, url=f"http://i/{i}.jpeg", sha256="%064x" % i, path=f"/o/{i}.jpeg")
    archive.set_checkpoint("q", f"cursor-{i}")
    print(i, flush=True)
    i += 1
"""


def test_sigkill_mid_writes_leaves_a_readable_database(tmp_path):
    path = str(tmp_path / "a.sqlite3")
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, path], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        last = -1
        deadline = time.monotonic() + 30
        while last < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        assert last >= 300, "the writer did not get going"
        os.kill(proc.pid, signal.SIGKILL)  # mid-write, no chance to clean up
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    conn = raw(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with Archive(path) as archive:
        # every write that had returned before the kill is there
        assert archive.has_image(last)
        assert archive.get_task(f"t{last}").status == "completed"
        cursor = archive.get_checkpoint("q")
        assert int(cursor.split("-")[1]) >= last
        assert archive.image_count() >= last + 1
        assert archive.known_ids(range(last + 1)) == set(range(last + 1))
        # and it keeps working
        archive.record_task("after", "pending")
        assert archive.get_task("after").status == "pending"
