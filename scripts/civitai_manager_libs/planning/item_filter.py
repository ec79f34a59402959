"""The client side of the image filters: which filter (if any) drops a listed image, the counts
of dropped images by reason, and when a date-sorted listing can stop early.

The reasons, in the order they are checked and reported: ``nsfw`` (counted by the listing: the
exact NSFW filter), ``type``, ``base model``, ``date``, ``no generation data``, ``reactions``,
``used-with``. An image is counted once, under the first filter that drops it.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Dict, Iterable, Mapping, Optional, Set

from ..civitai.filters import NEWEST, OLDEST, FilterSpec, created_ms
from ..errors import InvalidQueryError
from ..records import ImageItem
from ..civitai.image_items import int_or_none

logger = logging.getLogger(__name__)

NSFW = "nsfw"
TYPE = "type"
BASE_MODEL = "base model"
DATE = "date"
NO_GENERATION_DATA = "no generation data"
REACTIONS = "reactions"
USED_WITH = "used-with"
REASONS = (NSFW, TYPE, BASE_MODEL, DATE, NO_GENERATION_DATA, REACTIONS, USED_WITH)

# The stats Civitai counts as reactions (comments and collections are not reactions).
REACTION_STATS = ("likeCount", "heartCount", "laughCount", "cryCount", "dislikeCount")


def reactions(item: ImageItem) -> int:
    """The sum of the item's reaction stats (missing or unreadable ones count 0)."""
    total = 0
    for key in REACTION_STATS:
        value = item.stats.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            total += int(value)
    return total


def has_generation_data(item: ImageItem) -> bool:
    """At least a prompt: hidden (null) meta, meta without a prompt, a blank prompt -> False."""
    meta = item.meta
    if not isinstance(meta, Mapping):
        return False
    prompt = meta.get("prompt")
    return isinstance(prompt, str) and bool(prompt.strip())


def used_versions(item: ImageItem) -> Set[int]:
    """Model versions the image used: its ``modelVersionIds``, the version it was listed under,
    and the ``modelVersionId`` of each resource in its meta (``civitaiResources``,
    ``resources``)."""
    found: Set[int] = set()
    raw = item.raw if isinstance(item.raw, Mapping) else {}
    listed = raw.get("modelVersionIds")
    for value in listed if isinstance(listed, list) else []:
        number = int_or_none(value)
        if number is not None:
            found.add(number)
    if item.version_id is not None:
        found.add(item.version_id)
    meta = item.meta if isinstance(item.meta, Mapping) else {}
    for key in ("civitaiResources", "resources", "additionalResources"):
        resources = meta.get(key)
        if not isinstance(resources, list):
            continue
        for resource in resources:
            if isinstance(resource, Mapping):
                number = int_or_none(resource.get("modelVersionId"))
                if number is not None:
                    found.add(number)
    return found


def reason(item: ImageItem, spec: FilterSpec) -> Optional[str]:
    """The first filter of ``spec`` that drops ``item``, or None when it is kept."""
    if spec.media_type != "all" and (item.type or "image") != spec.media_type:
        return TYPE
    if spec.base_models and item.base_model not in spec.base_models:
        return BASE_MODEL
    if spec.since is not None or spec.until is not None:
        created = created_ms(item.created_at)
        if created is None:
            return DATE
        if spec.since is not None and created < spec.since:
            return DATE
        if spec.until is not None and created >= spec.until:
            return DATE
    if spec.with_generation_data and not has_generation_data(item):
        return NO_GENERATION_DATA
    if spec.min_reactions and reactions(item) < spec.min_reactions:
        return REACTIONS
    if spec.used_with and not set(spec.used_with) <= used_versions(item):
        return USED_WITH
    return None


def past_bound(items: Iterable[ImageItem], spec: FilterSpec, sort: Any) -> bool:
    """Whether a listing sorted by ``sort`` has gone past the date bound on this page: with
    ``Newest`` an image older than ``since``, with ``Oldest`` one at or after ``until``. Every
    later page would hold only such images, so the listing can stop."""
    if sort == NEWEST and spec.since is not None:
        bound, older = spec.since, True
    elif sort == OLDEST and spec.until is not None:
        bound, older = spec.until, False
    else:
        return False
    for item in items:
        created = created_ms(item.created_at)
        if created is None:
            continue
        if (created < bound) if older else (created >= bound):
            return True
    return False


class FilterCounts:
    """Images dropped, by reason (thread-safe enough for one listing thread per instance)."""

    def __init__(self) -> None:
        self._counts: Counter = Counter()

    def add(self, why: str, count: int = 1) -> None:
        if count:
            self._counts[why] += count

    def merge(self, other: "FilterCounts") -> None:
        self._counts.update(other._counts)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> Dict[str, int]:
        """Counts in report order, only reasons that dropped something."""
        return {why: self._counts[why] for why in REASONS if self._counts.get(why)}


def describe_counts(counts: Mapping[str, int]) -> str:
    """``5 no generation data, 3 reactions`` (report order); '' when nothing was dropped."""
    return ", ".join(f"{counts[why]} {why}" for why in REASONS if counts.get(why))


def remembered(archive: Any) -> FilterSpec:
    """The filters the last listing into the archive's folder ran with (retry-failed and a
    re-run apply them); none when never recorded or unreadable (said in one line)."""
    data = archive.run_options().get("filters")
    try:
        return FilterSpec.from_dict(data if isinstance(data, Mapping) else None)
    except InvalidQueryError as exc:
        logger.warning("ignoring the filters remembered in the archive: %s", exc)
        return FilterSpec()
