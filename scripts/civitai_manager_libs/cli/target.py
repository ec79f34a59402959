"""The CLI's download target: turn ``download KIND VALUE...`` into a ``CliTarget`` and check that it
exists on Civitai before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence
from urllib.parse import quote

from .args import UsageError


@dataclass
class CliTarget:
    """What the user asked for, normalized: kind in model/version/user/image/filter."""

    kind: str
    value: Any
    version_id: Optional[int] = None

    def describe(self) -> str:
        if self.kind == "filter":
            return "filter " + " ".join(f"{k}={v}" for k, v in self.value.items())
        if self.kind == "user":
            return f"user {self.value!r}"
        return f"{self.kind} {self.value}"


def _parse_id(kind: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{kind} needs a numeric id, got {text!r}") from None
    if value <= 0:
        raise UsageError(f"{kind} ids are positive numbers, got {value}")
    return value


def _parse_filter(pairs: Sequence[str]) -> Dict[str, Any]:
    """``KEY=VALUE`` words -> validated images-endpoint parameters (query.py's rules, as the UI)."""
    from ..civitai.query import parse_query

    encoded = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"filter expects KEY=VALUE pairs, got {pair!r}")
        encoded.append(f"{quote(key.strip(), safe='')}={quote(value.strip(), safe='')}")
    parsed = parse_query("&".join(encoded))
    if parsed.kind != "filter":
        raise UsageError(f"filter expects KEY=VALUE pairs, got {' '.join(pairs)!r}")
    return dict(parsed.params or {})


def parse_target(
    kind: str,
    values: Sequence[str],
    base_url: Optional[str] = None,
    red_base_url: Optional[str] = None,
) -> CliTarget:
    """Turn ``download KIND VALUE...`` into a :class:`CliTarget` (``UsageError`` when malformed).

    A ``url`` must point at Civitai, the configured Civitai fronts or ``base_url`` /
    ``red_base_url`` (``--base-url`` / ``--red-base-url``); another website's link is an
    ``InvalidQueryError``."""
    if kind == "filter":
        return CliTarget("filter", _parse_filter(values))
    if len(values) != 1:
        raise UsageError(f"'{kind}' takes exactly one value, got {len(values)}")
    text = values[0].strip()
    if kind in ("model", "version", "image"):
        return CliTarget(kind, _parse_id(kind, text))
    from ..civitai.query import parse_query, validate_username

    if kind == "user":
        return CliTarget("user", validate_username(text.lstrip("@")))
    parsed = parse_query(
        text, extra_hosts=[base_url, red_base_url]
    )  # InvalidQueryError has its sentence
    if parsed.kind == "filter":
        return CliTarget("filter", dict(parsed.params or {}))
    return CliTarget(parsed.kind, parsed.value, parsed.version_id)


def check_target(api, target: CliTarget) -> None:
    """Look the target up before anything is written; raises ``NotFoundError`` /
    ``InvalidQueryError`` (the same check and words as the tab's Download all)."""
    from ..civitai.target_check import check_target_exists

    check_target_exists(api, target.kind, target.value, target.version_id)
