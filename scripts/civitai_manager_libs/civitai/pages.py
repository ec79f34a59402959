"""The one loop over a listing's pages, which every listing reads: ``CivitaiAPI.iter_images``, the
downloads (``planning/listing_planner``, the CLI and the tab's Download all) and ``list``
(``export/listing``).

The loop asks ``fetch(cursor)`` for a page (any page source: REST today, a tRPC source or another
front later), hands the page to its reader, then follows ``next_cursor`` until there is none. It
guards what would make a listing run for ever: a cursor it already asked for (a cycle such as
a -> b -> a) and :data:`MAX_EMPTY_PAGES` empty pages in a row, each with a fresh cursor. Both
raise InvalidResponseError *after* the reader has had the page, so what was listed is kept. The
reader ends the listing early by leaving the ``for`` loop (a limit, a date bound); ``stopped()``
ends it before the next request (a cancel). ``watch`` (a ``civitai/drift.ListingWatch``) sees
every page before its reader does, and every error of the page source: the drift count. A
resumed listing passes its checkpoint as ``start`` and, when it kept them, the cursors it asked
for before (``asked``).
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Optional, Protocol, Set

from ..errors import InvalidResponseError
from .fronts import MatureCheck
from ..records import ImageItem, ImagePage

log = logging.getLogger(__name__)

#: ``on_page(cursor_used, next_cursor, items_count)`` of ``CivitaiAPI.iter_images``.
OnPage = Callable[[Optional[str], Optional[str], int], None]
#: A page source: the page asked with ``cursor`` (None: the first page).
FetchPage = Callable[[Optional[str]], ImagePage]


class Watch(Protocol):
    """What sees a listing's pages and its page source's errors (``civitai/drift.ListingWatch``)."""

    def page(self, page: ImagePage) -> None: ...

    def error(self, exc: BaseException) -> None: ...


# A server answering page after page with no items but a fresh cursor would be followed for ever;
# a listing stops after this many empty pages in a row.
MAX_EMPTY_PAGES = 20
_CURSOR_SHOWN = 80  # characters of a repeated cursor quoted in the error


class PageLoop:
    """Iterate the pages of one listing (module docstring). ``what`` names the listing in
    messages; ``pages`` counts the pages asked; ``asked`` holds the cursors asked for."""

    def __init__(
        self,
        fetch: FetchPage,
        what: str,
        start: Optional[str] = None,
        asked: Iterable[Optional[str]] = (),
        stopped: Optional[Callable[[], bool]] = None,
        watch: Optional[Watch] = None,
    ):
        self._fetch = fetch
        self.what = what
        self.start = str(start) if start not in (None, "") else None
        self.asked: Set[Optional[str]] = set(asked)
        self._stopped = stopped
        self._watch = watch
        self.pages = 0

    def __iter__(self) -> Iterator[ImagePage]:
        cursor = self.start
        empty_run = 0
        while self._stopped is None or not self._stopped():
            self.asked.add(cursor)
            try:
                page = self._fetch(cursor)
            except Exception as exc:
                if self._watch is not None:
                    self._watch.error(exc)
                raise
            self.pages += 1
            sent = page.server_items if page.server_items is not None else len(page.items)
            empty_run = 0 if sent or page.rejected else empty_run + 1
            log.debug(
                "page %d of %s: cursor=%s, %d item(s), next=%s",
                self.pages,
                self.what,
                cursor,
                sent,
                page.next_cursor,
            )
            if self._watch is not None:
                self._watch.page(page)
            yield page
            if page.next_cursor is None:
                log.debug("listing of %s finished after %d page(s)", self.what, self.pages)
                return
            self._check_next(page.next_cursor, empty_run)
            cursor = page.next_cursor

    def _check_next(self, next_cursor: str, empty_run: int) -> None:
        if next_cursor in self.asked:  # a cycle would never end
            shown = next_cursor[:_CURSOR_SHOWN]
            raise InvalidResponseError(
                f"Civitai returned a cursor it already gave ({shown!r}): stopping the listing to "
                f"avoid an endless loop ({self.what}) after {self.pages} page(s). What was "
                "listed so far is kept; try again later."
            )
        if empty_run >= MAX_EMPTY_PAGES:  # nor would endless empty pages
            raise InvalidResponseError(
                f"Civitai sent {empty_run} empty pages in a row, each with a new cursor, while "
                f"listing {self.what}; stopped to avoid an endless loop. What was listed so far "
                "is kept; try again later."
            )


def page_items(
    loop: PageLoop,
    limit: int,
    on_page: Optional[OnPage],
    user_listing: bool,
    mature: Optional[MatureCheck] = None,
) -> Iterator[ImageItem]:
    """The images of ``loop``'s pages, at most ``limit`` (0: all); ``on_page`` before each page's
    images (see :meth:`~.api.CivitaiAPI.iter_images`); ``mature`` warns at the end (or the limit).
    """
    yielded = listed = 0
    for page in loop:
        sent = page.server_items or 0
        listed += sent
        if on_page is not None:
            on_page(page.cursor, page.next_cursor, sent)
        for item in page.items:
            yield item
            yielded += 1
            if limit and yielded >= limit:
                if mature is not None:
                    mature.warn_at_end()
                return
        if page.next_cursor is None and listed == 0 and user_listing:
            log.info("%s has no images on Civitai (or does not exist)", loop.what)
    if mature is not None:
        mature.warn_at_end()
