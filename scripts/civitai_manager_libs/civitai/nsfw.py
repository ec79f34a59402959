"""NSFW levels for the images endpoint: the smallest Civitai mask covering a set, the exact filter.

The filter is a set of levels (``None``, ``Soft``, ``Mature``, ``X``). Civitai only knows a few
masks (``nsfw=None|Soft|Mature|X|true``); the smallest mask covering the set is asked for and every
item's level is then checked exactly on this side (:func:`keep_levels`).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Tuple, Union

from ..errors import InvalidQueryError
from ..records import NSFW_LEVELS, ImageItem

# Browsing-level bits (PG=1, PG13=2, R=4, X=8, XXX=16) and the string levels items carry.
_LEVEL_BITS = {"None": 1, "Soft": 2, "Mature": 4, "X": 8 | 16}
# The masks the images endpoint accepts, in the order preferred on a tie.
_MASKS: Tuple[Tuple[str, int], ...] = (
    ("None", 1),
    ("Soft", 1 | 2),
    ("Mature", 1 | 2 | 4),
    ("true", 4 | 8 | 16),
    ("X", 1 | 2 | 4 | 8 | 16),
)

Levels = Union[str, Iterable[str]]


def normalize_levels(levels: Levels) -> Tuple[str, ...]:
    """Validate a set of NSFW levels; returns them in canonical order and spelling.

    Accepts an iterable of names or one comma-separated string; names are case-insensitive.
    Raises InvalidQueryError for an unknown name or an empty set.
    """
    if isinstance(levels, str):
        names = [part for part in levels.split(",")]
    else:
        names = list(levels)
    by_lower = {level.lower(): level for level in NSFW_LEVELS}
    chosen = set()
    for name in names:
        canonical = by_lower.get(str(name).strip().lower())
        if canonical is None:
            raise InvalidQueryError(
                f"Unknown NSFW level {name!r}; choose among {', '.join(NSFW_LEVELS)}."
            )
        chosen.add(canonical)
    if not chosen:
        raise InvalidQueryError(
            f"No NSFW level chosen, so nothing would be listed; pick at least one of "
            f"{', '.join(NSFW_LEVELS)}."
        )
    return tuple(level for level in NSFW_LEVELS if level in chosen)


def nsfw_param(levels: Levels) -> str:
    """The ``nsfw`` value of the smallest Civitai mask that covers ``levels``.

    "Smallest" counts the levels the mask brings that were not asked for (``true`` = R, X, XXX
    counts as Mature + X); ties go to the SFW-side mask. ``{"None"}`` -> ``None``,
    ``{"None","Soft"}`` -> ``Soft``, ``{"Mature"}`` or ``{"Mature","X"}`` -> ``true``,
    ``{"None","X"}`` -> ``X``.
    """
    wanted = normalize_levels(levels)
    need = 0
    for level in wanted:
        need |= _LEVEL_BITS[level]
    best: Optional[Tuple[int, int, str]] = None
    for order, (name, mask) in enumerate(_MASKS):
        if mask & need != need:
            continue
        extra = sum(1 for lvl, bits in _LEVEL_BITS.items() if lvl not in wanted and mask & bits)
        candidate = (extra, order, name)
        if best is None or candidate < best:
            best = candidate
    assert best is not None  # "X" covers everything
    return best[2]


def browsing_level(levels: Levels) -> int:
    """The exact ``browsingLevel`` bitmask for ``levels`` (PG=1, PG13=2, R=4, X=8 | XXX=16).

    Civitai's images endpoint takes it and it overrides ``nsfw``: ``{"None", "X"}`` -> 25, so
    Soft and Mature items are never sent only to be thrown away here.
    """
    mask = 0
    for level in normalize_levels(levels):
        mask |= _LEVEL_BITS[level]
    return mask


def levels_of_param(value: Any) -> Tuple[str, ...]:
    """The item levels an ``nsfw`` value given in the caller's params lets through.

    A single Civitai value keeps Civitai's meaning (``Mature`` -> None, Soft, Mature; ``true`` ->
    Mature, X; ``false`` -> None). A list/tuple/set of level names, or a comma-separated string
    of two or more, is an exact set of levels (``["None", "Mature"]`` keeps just those two).
    """
    if isinstance(value, (list, tuple, set, frozenset)) or (
        isinstance(value, str) and "," in value
    ):
        return normalize_levels(value)
    text = str(value).strip().lower()
    for name, mask in _MASKS:
        if name.lower() == text:
            return tuple(lvl for lvl in NSFW_LEVELS if mask & _LEVEL_BITS[lvl])
    if text == "false":
        return ("None",)
    raise InvalidQueryError(
        f"Unknown nsfw filter {value!r}; use None, Soft, Mature, X, true or false, "
        "or a list of levels."
    )


def keep_levels(items: Iterable[ImageItem], levels: Iterable[str]) -> Iterator[ImageItem]:
    """The items whose ``nsfw_level`` is one of ``levels`` (canonical names), lazily, in order."""
    wanted = frozenset(levels)
    return (item for item in items if item.nsfw_level in wanted)
