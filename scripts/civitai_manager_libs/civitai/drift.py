"""Drift: what Civitai's answers did differently from what this tool expects, counted while a run
lists (the one listing loop feeds it page by page) and said once per kind at the end.

Civitai changes shape every few months; a change that only loses data looks like success. Each
kind below is a sign the service moved (or a front filters), not a per-image problem:

* ``meta``: pages asked with ``withMeta=true`` on which no image carried generation data (real
  pages almost always carry some; a page counts from :data:`META_PAGE_MIN` images, videos aside);
* ``levels``: Mature or X asked of Civitai's whole feed (no model, creator, post, tag or ids:
  :data:`SCOPES`), :data:`LEVELS_MIN` images or more served, none of them mature (not counted
  when civitai.com alone was asked: that is ``civitai/fronts.SFW_ONLY_WARNING``'s line, the page
  says ``sfw_only``);
* ``hosts``: image URLs on a host this tool does not know (Civitai's own domains and the API's
  host are known);
* ``shape``: an answer whose top level is not ``{"items": [...], "metadata": {...}}`` (no
  ``items``, or a tRPC-like ``result.data`` packed form arriving on REST);
* ``malformed``: listed items dropped as unusable.

:class:`Drift` is shared by one run (thread-safe); :meth:`Drift.watch` gives a listing's view of
it (the levels that listing asked), which :class:`civitai.pages.PageLoop` calls.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ..errors import InvalidResponseError
from ..records import ImagePage

#: Where a user reports a change (README "When Civitai changes").
REPORT_AT = "the project's issue tracker (README: When Civitai changes)"
#: Civitai's own domains (and their subdomains: image.civitai.com, image-b2.civitai.com ...).
CIVITAI_DOMAINS = ("civitai.com", "civitai.red", "civitai.green")
MATURE = ("Mature", "X")
META_PAGE_MIN = 10
LEVELS_MIN = 50

KINDS = ("meta", "levels", "hosts", "shape", "malformed")
#: Parameters that narrow a listing to one model, creator, post, tag or set of ids: such a listing
#: may have no mature image at all, so ``levels`` counts only on Civitai's whole feed (issue 20;
#: tests/test_drift.py::test_a_model_without_mature_images_is_no_drift).
SCOPES = ("modelId", "modelVersionId", "username", "userId", "postId", "ids", "imageId", "tags")


class ShapeChangedError(InvalidResponseError):
    """An answer whose top level this tool cannot read (``shape`` names it)."""

    def __init__(self, message: str, *, shape: str, url: Optional[str] = None):
        super().__init__(message, url=url)
        self.shape = shape


def listing_body(body: Any) -> Tuple[Optional[Mapping[str, Any]], Optional[str]]:
    """(the listing answer as ``{"items", "metadata"}``, the name of its shape when it was not the
    expected one). The body is None when no ``items`` list could be found; a tRPC-like
    ``{"result": {"data": {"json": {"items", "nextCursor"}}}}`` is read (and named)."""
    if isinstance(body, Mapping) and isinstance(body.get("items"), list):
        return body, None
    result = body.get("result") if isinstance(body, Mapping) else None
    data = result.get("data") if isinstance(result, Mapping) else None
    inner = data.get("json") if isinstance(data, Mapping) else None
    if isinstance(inner, Mapping) and isinstance(inner.get("items"), list):
        metadata = inner.get("metadata")
        if not isinstance(metadata, Mapping):
            metadata = {"nextCursor": inner.get("nextCursor")}
        return {"items": inner["items"], "metadata": metadata}, "tRPC-like result.data.json"
    if isinstance(data, str):
        return None, "packed tRPC-like result.data string"
    if isinstance(body, Mapping):
        keys = ", ".join(sorted(str(key) for key in body)[:6]) or "none"
        return None, f"top-level keys: {keys}"
    return None, f"a JSON {type(body).__name__} instead of an object"


def host_of(url: Any) -> Optional[str]:
    try:
        return (urlsplit(str(url)).hostname or "").lower() or None
    except ValueError:
        return None


def known_host(host: str, extra: Iterable[str] = ()) -> bool:
    return host in extra or any(host == d or host.endswith("." + d) for d in CIVITAI_DOMAINS)


class Drift:
    """The drift counted in one run (module docstring); ``known_hosts``: hosts besides Civitai's
    domains that serve this run's media (the API's host, a mirror)."""

    def __init__(self, known_hosts: Iterable[Optional[str]] = ()):
        self.known_hosts = {h.lower() for h in known_hosts if h}
        self._lock = threading.Lock()
        self._count: Dict[str, int] = {kind: 0 for kind in KINDS}
        self._of: Dict[str, int] = {kind: 0 for kind in KINDS}
        self._example: Dict[str, str] = {}

    @classmethod
    def for_urls(cls, *urls: Optional[str]) -> "Drift":
        """A counter that knows the hosts of ``urls`` (the API origins of the run)."""
        return cls(host_of(url) for url in urls if url)

    def merge(self, other: "Drift") -> None:
        """Add what ``other`` counted (a listing's count into its session's)."""
        with other._lock:
            counts, ofs, examples = dict(other._count), dict(other._of), dict(other._example)
        for kind in KINDS:
            self._add(kind, counts[kind], ofs[kind], examples.get(kind))

    def watch(
        self, levels: Sequence[str], params: Optional[Mapping[str, Any]] = None, source: Any = None
    ) -> "ListingWatch":
        """A listing's view; ``params`` and ``source`` tell whether it is Civitai's whole feed
        (only there is "no mature image among many" a sign: a model, a creator, a post, a tag or
        a collection may simply have none)."""
        scoped = source is not None or bool(params and any(params.get(k) for k in SCOPES))
        return ListingWatch(self, tuple(levels) if not scoped else tuple(), tuple(levels))

    def _add(self, kind: str, count: int, of: int, example: Optional[str] = None) -> None:
        with self._lock:
            self._count[kind] += count
            self._of[kind] += of
            if example and kind not in self._example:
                self._example[kind] = example

    def page(self, page: ImagePage, levels: Sequence[str] = ()) -> None:
        """Count one listed page, asked with ``withMeta=true`` and ``levels``."""
        items = page.items
        served = page.server_items if page.server_items is not None else len(items)
        stills = [item for item in items if item.type != "video"]  # videos often carry none
        bare = sum(1 for item in stills if not item.meta)
        self._add(
            "meta",
            len(stills) if len(stills) >= META_PAGE_MIN and bare == len(stills) else 0,
            len(stills),
        )
        if any(level in MATURE for level in levels) and not page.sfw_only:
            mature = sum(1 for item in items if item.nsfw_level in MATURE)
            self._add("levels", mature, served)
        strangers = [h for h in (host_of(item.url) for item in items if item.url) if h]
        strangers = [h for h in strangers if not known_host(h, self.known_hosts)]
        self._add("hosts", len(strangers), len(items), strangers[0] if strangers else None)
        self._add("malformed", len(page.rejected), served)
        self._add("shape", 1 if page.shape else 0, 1, page.shape)

    def error(self, exc: BaseException) -> None:
        """Count an answer that could not be read at all (a :class:`ShapeChangedError`)."""
        if isinstance(exc, ShapeChangedError):
            self._add("shape", 1, 1, exc.shape)

    def kinds(self) -> List[Dict[str, Any]]:
        """The kinds that drifted: ``{"kind", "count", "of", "example", "message"}`` each."""
        with self._lock:
            count, of, example = dict(self._count), dict(self._of), dict(self._example)
        out = []
        for kind in KINDS:
            if not _drifted(kind, count[kind], of[kind]):
                continue
            entry = {"kind": kind, "count": count[kind], "of": of[kind]}
            entry["example"] = example.get(kind)
            entry["message"] = _message(kind, count[kind], of[kind], example.get(kind))
            out.append(entry)
        return out

    def lines(self) -> List[str]:
        """One warning line per kind that drifted."""
        return [line(entry) for entry in self.kinds()]


def line(entry: Dict[str, Any]) -> str:
    return f"Civitai's answers changed: {entry['message']}; please report it at {REPORT_AT}"


class ListingWatch:
    """One listing's view of a :class:`Drift`: the levels it asked go with every page
    (``levels`` empty for a scoped listing, so its mature count is not a sign; ``asked``: what
    it asked)."""

    def __init__(self, drift: Drift, levels: Sequence[str], asked: Sequence[str] = ()):
        self.drift = drift
        self.levels = levels
        self.asked = asked

    def page(self, page: ImagePage) -> None:
        self.drift.page(page, self.levels)

    def error(self, exc: BaseException) -> None:
        self.drift.error(exc)


def _drifted(kind: str, count: int, of: int) -> bool:
    if kind == "levels":  # none served of what was asked, over enough images to be sure
        return of >= LEVELS_MIN and count == 0
    return count > 0


def _message(kind: str, count: int, of: int, example: Optional[str]) -> str:
    if kind == "meta":
        return (
            f"{count} of {of} images came without their generation data although it was asked "
            "for (withMeta=true); prompts and settings are missing from their records"
        )
    if kind == "levels":
        return (
            f"none of {of} images served was Mature or X although those levels were asked "
            "(the front that serves every level, civitai.red, filtered them out)"
        )
    if kind == "hosts":
        return (
            f"{count} of {of} images are on a host this tool does not know ({example}); "
            "their downloads may fail or come from elsewhere"
        )
    if kind == "shape":
        return f"{count} of {of} answers of the image listing came in an unknown shape ({example})"
    return f"{count} of {of} listed items were dropped as unusable (see the skipped images)"
