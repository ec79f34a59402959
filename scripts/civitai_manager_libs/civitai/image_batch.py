"""Several images by id in few requests: ``GET /api/v1/images?ids=1,2,3`` (late 2026).

Civitai answers a batch with the images it shows, in its sort's order (not the request's); a
missing or hidden id is simply absent. Up to :data:`BATCH_SIZE` ids go in one request (the
endpoint's largest ``limit``), so N ids take ``ceil(N / 200)`` requests. A server that refuses
the parameter (400/404) or ignores it (it answers images that were not asked for: an older
server drops the unknown key and lists its whole feed) is asked one id at a time instead, for
that batch and every later one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from ..errors import BadRequestError, InvalidResponseError, NotFoundError
from ..records import ImageItem
from .image_items import to_image_items

log = logging.getLogger(__name__)

IMAGES_PATH = "/api/v1/images"
BATCH_SIZE = 200  # the images endpoint's largest page


@dataclass
class ImageBatch:
    """What a batch look-up found: ``items`` in the order the ids were given, ``missing`` the
    ids Civitai did not answer (not on Civitai, or hidden), ``requests`` sent, and whether the
    server's ``ids=`` could not be used (``one_by_one``)."""

    items: List[ImageItem] = field(default_factory=list)
    missing: List[int] = field(default_factory=list)
    requests: int = 0
    one_by_one: bool = False

    def missing_line(self, asked: int) -> Optional[str]:
        """``"3 of 50 ids are not on Civitai or hidden: 11, 12, 13"`` (None when none is)."""
        if not self.missing:
            return None
        shown = ", ".join(str(i) for i in self.missing[:20])
        more = f" and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
        verb = "is" if len(self.missing) == 1 else "are"
        return f"{len(self.missing)} of {asked} ids {verb} not on Civitai or hidden: {shown}{more}"


def unique_ids(ids: Iterable[int]) -> List[int]:
    """The ids once each, in the order first given."""
    return list(dict.fromkeys(ids))


def fetch_images(
    api: Any, ids: Sequence[int], with_tags: bool = False, batch_size: int = BATCH_SIZE
) -> ImageBatch:
    """Look ``ids`` up with ``ids=`` batches (``api``: a :class:`~.api.CivitaiAPI`); every NSFW
    level is asked for, as a single image look-up does. ``with_tags`` adds ``withTags=true``."""
    wanted = unique_ids(ids)
    found: Dict[int, ImageItem] = {}
    result = ImageBatch()
    batched = True
    for start in range(0, len(wanted), batch_size):
        chunk = wanted[start : start + batch_size]
        answer = _ask_batch(api, chunk, with_tags, result) if batched else None
        if answer is None:
            batched = False
            result.one_by_one = True
            answer = _one_by_one(api, chunk, with_tags, result)
        found.update(answer)
    result.items = [found[i] for i in wanted if i in found]
    result.missing = [i for i in wanted if i not in found]
    return result


def _ask_batch(
    api: Any, chunk: List[int], with_tags: bool, result: ImageBatch
) -> Optional[Dict[int, ImageItem]]:
    """The chunk's images by id, or None when the server cannot answer ``ids=``."""
    query: Dict[str, Any] = {
        "ids": ",".join(str(i) for i in chunk),
        "limit": len(chunk) if len(chunk) > 1 else 1,
        "withMeta": "true",
        "nsfw": "X",
    }
    if with_tags:
        query["withTags"] = "true"
    result.requests += 1
    try:
        # every level is asked (nsfw=X): the front that serves them all (civitai.red)
        fronts = getattr(api, "fronts", None)
        url = fronts.on(fronts.red, IMAGES_PATH) if fronts is not None else IMAGES_PATH
        body = api.client.get_json(url, query)
    except (BadRequestError, NotFoundError) as exc:
        log.info("Civitai refused a batch of image ids (%s); asking one image at a time", exc)
        return None
    items = body.get("items") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise InvalidResponseError(
            "Civitai answered a batch of image ids without an 'items' list; the API may have "
            "changed or be failing, try again later.",
            url=IMAGES_PATH,
        )
    asked = set(chunk)
    converted = list(to_image_items(items, where="a batch of image ids: skipping an item"))
    if any(item.id not in asked for item in converted):
        log.info(
            "Civitai ignored the ids= parameter (it answered images that were not asked for); "
            "asking one image at a time"
        )
        return None
    return {item.id: item for item in converted if item.id is not None}


def _one_by_one(
    api: Any, chunk: List[int], with_tags: bool, result: ImageBatch
) -> Dict[int, ImageItem]:
    found: Dict[int, ImageItem] = {}
    for image_id in chunk:
        result.requests += 1
        try:
            found[image_id] = api.get_image(image_id, with_tags=with_tags)
        except NotFoundError:
            continue
    return found
