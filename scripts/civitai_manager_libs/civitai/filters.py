"""The image filters a user can ask for (base model, media type, generation data, dates, reactions,
used-with) as data: parsing and validating what is typed, the request parameters Civitai applies
itself, and the plain form the archive remembers.

Civitai filters ``baseModels`` and ``type`` on the server (fewer pages); the other filters have no
server parameter and run on the client (``planning/item_filter.py``). With ``--since`` and no sort
of the caller's own the listing asks for ``sort=Newest``, so it can stop at the first image older
than the bound (a "what is new" run costs a page or two).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import InvalidQueryError
from ..records import BASE_MODELS
from ..store.paths import parse_date as parse_iso_date

MEDIA_TYPES: Tuple[str, ...] = ("all", "image", "video")
NEWEST = "Newest"
OLDEST = "Oldest"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAY_MS = 86_400_000


def parse_base_models(value: Any) -> Tuple[str, ...]:
    """``"SDXL 1.0,pony"`` (or a list) -> Civitai's spellings; ``InvalidQueryError`` naming the
    closest names for a name Civitai does not use."""
    parts = value.split(",") if isinstance(value, str) else list(value or [])
    by_lower = {name.lower(): name for name in BASE_MODELS}
    names: List[str] = []
    for part in parts:
        text = str(part).strip()
        if not text:
            continue
        name = by_lower.get(text.lower()) or by_lower.get(" ".join(text.lower().split()))
        if name is None:
            raise InvalidQueryError(f"Unknown base model {text!r}. {_suggest(text)}")
        if name not in names:
            names.append(name)
    return tuple(names)


def _suggest(text: str) -> str:
    lowered = {name.lower(): name for name in BASE_MODELS}
    close = difflib.get_close_matches(text.lower(), list(lowered), n=4, cutoff=0.5)
    prefixed = [n for n in lowered if n.startswith(text.lower()) and n not in close]
    names = [lowered[n] for n in (close + prefixed)[:4]]
    if names:
        return "Did you mean " + ", ".join(repr(n) for n in names) + "?"
    return "Civitai's names include 'SD 1.5', 'SDXL 1.0', 'Pony', 'Illustrious', 'Flux.1 D'."


def parse_media_type(value: Any) -> str:
    text = str(value or "all").strip().lower()
    if text not in MEDIA_TYPES:
        raise InvalidQueryError(f"Unknown media type {value!r}; use image, video or all.")
    return text


def parse_date(value: Any, end: bool = False) -> Optional[int]:
    """``YYYY-MM-DD`` or an ISO 8601 date-time (UTC when no offset) -> epoch milliseconds.

    ``end=True`` (an ``--until`` bound) makes a bare date the end of that day, so ``--until
    2026-05-31`` keeps images of the 31st. Empty -> None.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        if _DATE_RE.match(text):
            day = _dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=_dt.timezone.utc)
            return _ms(day) + (_DAY_MS if end else 0)
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise InvalidQueryError(
            f"Cannot read the date {text!r}; write it as YYYY-MM-DD (e.g. 2026-05-01) or "
            "2026-05-01T12:00:00Z."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return _ms(moment)


def _ms(moment: _dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso(ms: int) -> str:
    """Epoch milliseconds -> ``2026-05-01T00:00:00Z``."""
    moment = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def created_ms(value: Any) -> Optional[int]:
    """An item's ``createdAt`` (``2024-04-04T21:17:27.499Z``) -> epoch ms; None when unreadable."""
    moment = parse_iso_date(value)
    return None if moment is None else _ms(moment)


def parse_count(value: Any, what: str = "minimum reactions") -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidQueryError(f"The {what} must be a whole number, got {value!r}.") from None
    if number < 0 or number != int(number):
        raise InvalidQueryError(f"The {what} must be a whole number of 0 or more, got {value!r}.")
    return int(number)


def parse_version_ids(value: Any) -> Tuple[int, ...]:
    """``"128713, 62833"`` (or a list) -> version ids; ``InvalidQueryError`` for anything else."""
    parts = re.split(r"[,\s]+", value) if isinstance(value, str) else list(value or [])
    ids: List[int] = []
    for part in parts:
        text = str(part).strip()
        if not text:
            continue
        if not text.isascii() or not text.isdigit() or int(text) <= 0:
            raise InvalidQueryError(
                f"--used-with takes model version ids (positive numbers), got {text!r}."
            )
        if int(text) not in ids:
            ids.append(int(text))
    return tuple(ids)


@dataclass(frozen=True)
class FilterSpec:
    """What to keep of a listing. ``since`` is inclusive, ``until`` exclusive (epoch ms)."""

    base_models: Tuple[str, ...] = ()
    media_type: str = "all"
    with_generation_data: bool = False
    since: Optional[int] = None
    until: Optional[int] = None
    min_reactions: int = 0
    used_with: Tuple[int, ...] = ()

    @classmethod
    def build(
        cls,
        base_models: Any = None,
        media_type: Any = None,
        with_generation_data: Any = False,
        since: Any = None,
        until: Any = None,
        min_reactions: Any = None,
        used_with: Any = None,
    ) -> "FilterSpec":
        """A spec from what a user typed (CLI flags, the tab's Filters row); validates it all."""
        spec = cls(
            base_models=parse_base_models(base_models),
            media_type=parse_media_type(media_type),
            with_generation_data=bool(with_generation_data),
            since=parse_date(since),
            until=parse_date(until, end=True),
            min_reactions=parse_count(min_reactions),
            used_with=parse_version_ids(used_with),
        )
        if spec.since is not None and spec.until is not None and spec.since >= spec.until:
            raise InvalidQueryError(
                f"--since ({iso(spec.since)}) must be before --until ({iso(spec.until)})."
            )
        return spec

    @property
    def active(self) -> bool:
        return self != FilterSpec()

    @property
    def client_side(self) -> bool:
        """Whether some images may be dropped on the client (type and base model are checked
        there too: old items have no ``type``, and a server may ignore a parameter)."""
        return self.active

    def server_params(self, params: Mapping[str, Any]) -> Dict[str, Any]:
        """``params`` plus what Civitai filters itself: ``baseModels``, ``type``, and
        ``sort=Newest`` for a ``since`` bound when the caller chose no sort."""
        out = dict(params)
        if self.base_models:
            out["baseModels"] = ",".join(self.base_models)
        if self.media_type != "all":
            out["type"] = self.media_type
        if self.since is not None and not out.get("sort"):
            out["sort"] = NEWEST
        return out

    def key(self) -> str:
        """A stable text naming the filters (for checkpoints: another filter set is another
        listing); empty when no filter is set."""
        if not self.active:
            return ""
        parts = []
        for name, value in sorted(self.to_dict().items()):
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            parts.append(f"{name}={value}")
        return ";".join(parts)

    def to_dict(self) -> Dict[str, Any]:
        """Only the filters that are set, JSON-ready (dates as ISO text)."""
        out: Dict[str, Any] = {}
        if self.base_models:
            out["base_models"] = list(self.base_models)
        if self.media_type != "all":
            out["type"] = self.media_type
        if self.with_generation_data:
            out["with_generation_data"] = True
        if self.since is not None:
            out["since"] = iso(self.since)
        if self.until is not None:
            out["until"] = iso(self.until)
        if self.min_reactions:
            out["min_reactions"] = self.min_reactions
        if self.used_with:
            out["used_with"] = list(self.used_with)
        return out

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "FilterSpec":
        """The spec :meth:`to_dict` wrote (its dates are date-times: ``until`` stays exact)."""
        data = data or {}
        return cls.build(
            base_models=data.get("base_models"),
            media_type=data.get("type"),
            with_generation_data=data.get("with_generation_data", False),
            since=data.get("since"),
            until=data.get("until"),
            min_reactions=data.get("min_reactions"),
            used_with=data.get("used_with"),
        )

    def describe(self) -> str:
        """``base model SDXL 1.0, type video, since 2026-05-01T00:00:00Z``; '' when none."""
        words = []
        for name, value in self.to_dict().items():
            if isinstance(value, list):
                value = ",".join(str(v) for v in value)
            words.append(name.replace("_", " ") if value is True else f"{_LABELS[name]} {value}")
        return ", ".join(words)


_LABELS = {
    "base_models": "base model",
    "type": "type",
    "since": "since",
    "until": "until",
    "min_reactions": "min reactions",
    "used_with": "used with",
}


def spec_or_empty(spec: Optional[FilterSpec]) -> FilterSpec:
    return spec if spec is not None else FilterSpec()
