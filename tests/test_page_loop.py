"""The one listing loop (``civitai/pages.PageLoop``): its guards alone, then each consumer reading
it against the fake: ``CivitaiAPI.iter_images``, the downloads (``ListingPlanner``, which the CLI
and the tab's Download all run) and ``list`` (``export/listing.run_listing``)."""

from __future__ import annotations

import pytest

from scripts.civitai_manager_libs.civitai.api import CivitaiAPI
from scripts.civitai_manager_libs.civitai.pages import MAX_EMPTY_PAGES, PageLoop
from scripts.civitai_manager_libs.errors import InvalidResponseError
from scripts.civitai_manager_libs.export.listing import ListingJob, run_listing
from scripts.civitai_manager_libs.http_client import CivitaiHttpClient
from scripts.civitai_manager_libs.image_downloader import ImageDownloader
from scripts.civitai_manager_libs.records import ImagePage

ALL = ["None", "Soft", "Mature", "X"]
MODEL = 4201


def _source(pages):
    """A page source over {cursor: (n items, next cursor)}; the cursors it was asked for."""
    asked = []

    def fetch(cursor):
        asked.append(cursor)
        n, next_cursor = pages[cursor]
        return ImagePage(items=[], cursor=cursor, next_cursor=next_cursor, server_items=n)

    return fetch, asked


def test_the_loop_follows_cursors_to_the_end():
    fetch, asked = _source({None: (2, "a"), "a": (2, "b"), "b": (1, None)})
    loop = PageLoop(fetch, "model:1")
    assert [page.cursor for page in loop] == [None, "a", "b"]
    assert asked == [None, "a", "b"] and loop.pages == 3


def test_a_cursor_asked_before_is_refused_after_its_page_was_read():
    fetch, asked = _source({"c1": (1, "c2"), "c2": (1, "c1")})
    loop = PageLoop(fetch, "creator:x|nsfw=None", start="c1")  # resumed from a checkpoint
    read = []
    with pytest.raises(InvalidResponseError, match=r"already gave \('c1'\).*creator:x"):
        for page in loop:
            read.append(page.cursor)
    assert read == ["c1", "c2"] and asked == ["c1", "c2"]


def test_cursors_asked_by_an_earlier_run_count_and_a_long_cursor_is_quoted_short():
    long_cursor = "x" * 500
    fetch, _asked = _source({None: (1, long_cursor)})
    with pytest.raises(InvalidResponseError) as raised:
        list(PageLoop(fetch, "model:1", asked=[long_cursor]))
    assert len(str(raised.value)) < 350  # an opaque cursor is quoted, not dumped


def test_endless_empty_pages_stop_after_the_limit():
    def fetch(cursor):
        number = int(cursor or 0)
        return ImagePage(items=[], cursor=cursor, next_cursor=str(number + 1), server_items=0)

    loop = PageLoop(fetch, "model:1")
    with pytest.raises(InvalidResponseError, match=f"{MAX_EMPTY_PAGES} empty pages in a row"):
        list(loop)
    assert loop.pages == MAX_EMPTY_PAGES


def test_stopped_is_asked_before_every_request():
    fetch, asked = _source({None: (1, "a"), "a": (1, "b"), "b": (1, None)})
    stop = []
    loop = PageLoop(fetch, "model:1", stopped=lambda: bool(stop))
    for page in loop:
        if page.cursor == "a":
            stop.append(True)
    assert asked == [None, "a"]


class _Watch:
    def __init__(self):
        self.seen, self.errors = [], []

    def page(self, page):
        self.seen.append(page.cursor)

    def error(self, exc):
        self.errors.append(exc)


def test_the_watch_sees_every_page_first_and_every_error():
    fetch, _asked = _source({None: (1, "a"), "a": (1, "b")})
    watch = _Watch()
    with pytest.raises(KeyError):
        for page in PageLoop(fetch, "model:1", watch=watch):
            assert watch.seen[-1] == page.cursor
    assert watch.seen == [None, "a"] and [type(e) for e in watch.errors] == [KeyError]


# -- each consumer against the fake ---------------------------------------------------------------


def _listed_items(fake, n):
    client = CivitaiHttpClient(base_url=fake.base_url, api_key="")
    body = client.get_json("/api/v1/images", {"modelId": MODEL, "nsfw": "X", "limit": n})
    client.close()
    fake.reset()
    return body["items"][:n]


def _queue_cycle(fake):
    """Pages a -> b -> a (two items each) on the listing endpoint."""
    items = _listed_items(fake, 4)
    for page, next_cursor in ((items[0:2], "cur-a"), (items[2:4], "cur-b"), (items[0:2], "cur-a")):
        body = {"items": page, "metadata": {"nextCursor": next_cursor}}
        fake.faults.queue_status("/api/v1/images", 200, body=body, server="api")
    return items


def _api(fake):
    return CivitaiAPI(CivitaiHttpClient(base_url=fake.base_url, api_key="", max_retries=0))


def _cursors(fake):
    return [r.query.get("cursor") for r in fake.api_requests() if r.path == "/api/v1/images"]


def test_iter_images_reads_the_loop(fake_civitai):
    _queue_cycle(fake_civitai)
    got = []
    with pytest.raises(InvalidResponseError, match="already gave"):
        for item in _api(fake_civitai).iter_images({"modelId": MODEL}, nsfw_levels=ALL):
            got.append(item.id)
    assert len(got) == 6 and _cursors(fake_civitai) == [None, "cur-a", "cur-b"]


def test_iter_images_stops_on_endless_empty_pages(fake_civitai):
    fake_civitai.faults.empty_pages("/api/v1/images")
    with pytest.raises(InvalidResponseError, match="empty pages in a row"):
        list(_api(fake_civitai).iter_images({"modelId": MODEL}, nsfw_levels=ALL))
    assert len(_cursors(fake_civitai)) == MAX_EMPTY_PAGES


def _downloader(fake, tmp_path):
    client = CivitaiHttpClient(base_url=fake.base_url, api_key="", max_retries=0)
    return ImageDownloader(
        api_client=CivitaiAPI(client), output_path=str(tmp_path / "out"), max_concurrent=2
    )


def test_the_downloads_stop_on_endless_empty_pages_and_resume_from_the_checkpoint(
    fake_civitai, tmp_path
):
    items = _listed_items(fake_civitai, 2)
    body = {"items": items, "metadata": {"nextCursor": "after-first"}}
    fake_civitai.faults.queue_status("/api/v1/images", 200, body=body, server="api")
    fake_civitai.faults.empty_pages("/api/v1/images")
    downloader = _downloader(fake_civitai, tmp_path)
    try:
        with pytest.raises(InvalidResponseError, match="empty pages in a row"):
            downloader.download_model_images(MODEL, nsfw_levels=ALL)
        assert downloader.wait(timeout=60)
        assert downloader.summary().completed == 2
        assert len(_cursors(fake_civitai)) == MAX_EMPTY_PAGES + 1
        fake_civitai.reset()
        last = {"items": [], "metadata": {}}
        fake_civitai.faults.queue_status("/api/v1/images", 200, body=last, server="api")
        # the next run of the same call starts where the listing stopped, not from page 1
        downloader.download_model_images(MODEL, nsfw_levels=ALL)
        assert downloader.wait(timeout=60)
        assert _cursors(fake_civitai)[0] not in (None, "after-first")
    finally:
        downloader.close()


def test_the_downloads_refuse_a_cycle(fake_civitai, tmp_path):
    _queue_cycle(fake_civitai)
    downloader = _downloader(fake_civitai, tmp_path)
    try:
        with pytest.raises(InvalidResponseError, match=r"already gave \('cur-a'\)"):
            downloader.download_model_images(MODEL, nsfw_levels=ALL)
        assert downloader.wait(timeout=60)
    finally:
        downloader.close()
    assert _cursors(fake_civitai) == [None, "cur-a", "cur-b"]


def _job():
    return ListingJob(key=f"model:{MODEL}", params={"modelId": MODEL}, levels=ALL)


def test_list_refuses_a_cycle_and_keeps_what_it_listed(fake_civitai, tmp_path):
    _queue_cycle(fake_civitai)
    dest = tmp_path / "rows.jsonl"
    with pytest.raises(InvalidResponseError, match=r"already gave \('cur-a'\)"):
        run_listing(_api(fake_civitai), _job(), str(dest))
    assert _cursors(fake_civitai) == [None, "cur-a", "cur-b"]
    assert len((tmp_path / "rows.jsonl.part.jsonl").read_text().splitlines()) == 4


def test_list_stops_on_endless_empty_pages(fake_civitai, tmp_path):
    """``list`` had no empty-page guard before it read the one loop (fails without it: the
    listing asked for ever)."""
    fake_civitai.faults.empty_pages("/api/v1/images")
    with pytest.raises(InvalidResponseError, match="empty pages in a row"):
        run_listing(_api(fake_civitai), _job(), str(tmp_path / "rows.jsonl"))
    assert len(_cursors(fake_civitai)) == MAX_EMPTY_PAGES


def test_list_resumes_with_the_cursors_it_asked_before(fake_civitai, tmp_path):
    """A resumed ``list`` keeps the cursors of its first run: a server sending one of them back
    is refused at once."""
    items = _listed_items(fake_civitai, 4)
    for page, next_cursor in ((items[0:2], "c1"), (items[2:4], "c2")):
        body = {"items": page, "metadata": {"nextCursor": next_cursor}}
        fake_civitai.faults.queue_status("/api/v1/images", 200, body=body, server="api")
    fake_civitai.faults.queue_status("/api/v1/images", 400, server="api")
    api = _api(fake_civitai)
    dest = str(tmp_path / "rows.jsonl")
    with pytest.raises(Exception):
        run_listing(api, _job(), dest)
    assert _cursors(fake_civitai) == [None, "c1", "c2"]
    fake_civitai.reset()
    body = {"items": [], "metadata": {"nextCursor": "c1"}}
    fake_civitai.faults.queue_status("/api/v1/images", 200, body=body, server="api")
    with pytest.raises(InvalidResponseError, match=r"already gave \('c1'\)"):
        run_listing(api, _job(), dest)
    assert _cursors(fake_civitai) == ["c2"]
