"""ListingState alone: which cursor the checkpoint holds as pages and tasks finish, what reaches
the archive (the loop guards are tested in test_page_loop.py)."""

from __future__ import annotations

import threading


from scripts.civitai_manager_libs.store.archive import Archive
from scripts.civitai_manager_libs.planning.crawl_state import ListingState
from scripts.civitai_manager_libs.engine.task import (
    CANCELLED,
    COMPLETED,
    FAILED,
    ImageDownloadTask,
)


def _task(task_id, image_id, status):
    task = ImageDownloadTask(task_id, image_id, f"https://img.example/{image_id}.jpeg")
    task._finish(status, None if status == COMPLETED else status)
    return task


def _two_pages():
    listing = ListingState("model:1|nsfw=None", use_checkpoint=True, start_cursor=None)
    first = listing.add_page(None, "c2")
    first.open.update({"t1", "t2"})
    second = listing.add_page("c2", "c3")
    second.open.update({"t3"})
    return listing


def test_the_checkpoint_is_the_oldest_page_with_open_or_cancelled_tasks():
    listing = _two_pages()
    assert listing.checkpoint() == (False, None)  # the first page is still open
    assert listing.task_final(_task("t1", 1, COMPLETED))
    assert listing.task_final(_task("t2", 2, FAILED))  # failed counts as finished
    assert listing.checkpoint() == (False, "c2")
    assert listing.task_final(_task("t3", 3, CANCELLED))  # cancelled holds its page
    assert listing.checkpoint() == (False, "c2")
    assert not listing.task_final(_task("other", 4, COMPLETED))


def test_finished_listing_clears_the_archived_checkpoint(tmp_path):
    archive = Archive(str(tmp_path / "a.sqlite3"))
    listing = _two_pages()
    lock, forgotten = threading.RLock(), []
    for task_id, image_id in (("t1", 1), ("t2", 2), ("t3", 3)):
        listing.task_final(_task(task_id, image_id, COMPLETED))
    listing.sync_checkpoint(lock, lambda: archive, lambda: forgotten.append(True))
    assert archive.get_checkpoint(listing.query_key) == "c3"  # listing not done: next page
    assert forgotten == []
    listing.listing_done = True
    listing.sync_checkpoint(lock, lambda: archive, lambda: forgotten.append(True))
    assert archive.get_checkpoint(listing.query_key) is None
    assert forgotten == [True]
    archive.close()


def test_a_limited_listing_never_writes_a_checkpoint():
    listing = ListingState("model:1|limit=5", use_checkpoint=False, start_cursor=None)
    listing.add_page(None, "c2")

    def no_archive():
        raise AssertionError("a limited listing must not touch the archive")

    listing.sync_checkpoint(threading.RLock(), no_archive, lambda: None)
