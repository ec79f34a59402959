"""The incremental re-run: when a listing may stop early because the rest is already known.

A listing that completed before (``store/listing_marks``), asked again in an order where new images
come first (``sort=Newest``; Civitai's whole-model listing, newest first for every sort but Oldest
and Random), stops after the first page that reaches a known image: an image at or below the
newest id the listing had when it completed, or a page whose kept images are all in the archive.
Other orders can put a new image anywhere: they list fully, and say so once. ``full`` (``--full``)
and a listing that never completed (first run, or one interrupted before it completed: it resumes
from its checkpoint) list fully too. A limited listing is never incremental (its checkpoint is
not kept either). A changed filter set is another listing (its query key differs).
"""

from __future__ import annotations

from typing import Any, Iterable, List, Mapping, Optional

from ..records import ImageItem
from ..store import listing_marks

NEWEST = "Newest"
#: The sorts a whole-model listing (``modelId`` without ``modelVersionId``) honours; for every
#: other sort Civitai gives it newest first (``civitai/image_query.WHOLE_MODEL_SORTS``).
_WHOLE_MODEL_OWN_ORDER = ("Oldest", "Random")
#: Civitai's default sort when none is given.
DEFAULT_SORT = "Most Reactions"


def newest_first(params: Mapping[str, Any]) -> bool:
    """Whether the images endpoint answers ``params`` newest first."""
    sort = str(params.get("sort") or "")
    if params.get("modelId") is not None and params.get("modelVersionId") is None:
        return sort not in _WHOLE_MODEL_OWN_ORDER
    return sort == NEWEST


class IncrementalStop:
    """The stop rule of one listing run: :meth:`after_page` says when to stop; :attr:`note`
    is the line for the report (None when there is nothing to say)."""

    def __init__(self, known_newest: Optional[int], active: bool, note: Optional[str] = None):
        self.known_newest = known_newest
        self.active = active
        self.note = note
        self.pages = 0
        self.stopped_at: Optional[int] = None

    @classmethod
    def off(cls) -> "IncrementalStop":
        return cls(None, False)

    @classmethod
    def plan(cls, request: Any, archive: Any) -> "IncrementalStop":
        """The rule for ``request`` (a ``ListingRequest``) against ``archive``'s marks."""
        if not request.resumes or getattr(request, "full", False):
            return cls.off()
        known = listing_marks.completed_newest(archive)(request.query_key)
        if known is None:
            return cls.off()  # never completed: list (or resume) to the end
        if not newest_first(request.params):
            sort = request.params.get("sort") or DEFAULT_SORT
            note = (
                f"full listing: the order {sort!r} can put new images anywhere, so every page "
                "is listed (sort Newest, or a whole model, lists only what is new)"
            )
            return cls(None, False, note)
        return cls(known, True)

    def after_page(self, items: Iterable[ImageItem], kept: List[ImageItem], known: set) -> bool:
        """True when the listing can stop after this page (``items``: every listed image of the
        page; ``kept``: those the filters keep; ``known``: the ids of ``kept`` in the archive)."""
        if not self.active:
            return False
        self.pages += 1
        ids = [item.id for item in items if item.id is not None]
        reached = [i for i in ids if self.known_newest is not None and i <= self.known_newest]
        kept_ids = [item.id for item in kept if item.id is not None]
        all_known = bool(kept_ids) and all(i in known for i in kept_ids)
        if not reached and not all_known:
            return False
        self.stopped_at = reached[0] if reached else kept_ids[0]
        pages = f"{self.pages} page" + ("" if self.pages == 1 else "s")
        self.note = f"incremental: stopped at known image {self.stopped_at} after {pages}"
        return True
