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
    params: Optional[Dict[str, Any]] = None  # a gallery link's filters, the reactions kept

    def describe(self) -> str:
        if self.kind == "filter":
            return "filter " + " ".join(f"{k}={v}" for k, v in self.value.items())
        if self.kind == "user":
            return f"user {self.value!r}"
        if self.kind in ("gallery", "reactions", "user_posts", "tag"):
            from ..civitai.query import Target

            return Target(self.kind, self.value).describe()
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
    reaction_kinds: Optional[Sequence[str]] = None,
) -> CliTarget:
    """Turn ``download KIND VALUE...`` into a :class:`CliTarget` (``UsageError`` when malformed).
    ``reactions`` takes no value: ``reaction_kinds`` (``--kind``) chooses them (default all).

    A ``url`` must point at Civitai, the configured Civitai address or ``base_url``
    (``--base-url``); another website's link is an ``InvalidQueryError``."""
    if kind == "filter":
        return CliTarget("filter", _parse_filter(values))
    if kind == "reactions":
        from ..civitai.query import reactions_target

        if values:
            raise UsageError("'reactions' takes no value; choose them with --kind Like,Heart")
        parsed = reactions_target(reaction_kinds)
        return CliTarget("reactions", parsed.value, params=parsed.params)
    if not values:
        raise UsageError(f"a VALUE is required after '{kind}' (see --help)")
    if len(values) != 1:
        raise UsageError(f"'{kind}' takes exactly one value, got {len(values)}")
    text = values[0].strip()
    if kind in ("model", "version", "image", "collection", "post"):
        return CliTarget(kind, _parse_id(kind, text))
    if kind == "tag":
        from ..civitai.query import validate_tag

        return CliTarget("tag", validate_tag(text))
    from ..civitai.query import parse_query, validate_username

    if kind == "user":
        return CliTarget("user", validate_username(text.lstrip("@")))
    parsed = parse_query(text, extra_hosts=[base_url])  # InvalidQueryError has its sentence
    if parsed.kind == "filter":
        return CliTarget("filter", dict(parsed.params or {}))
    return CliTarget(parsed.kind, parsed.value, parsed.version_id, parsed.params)


def check_target(api, target: CliTarget) -> None:
    """Look the target up before anything is written; raises ``NotFoundError`` /
    ``InvalidQueryError`` (the same check and words as the tab's Download all)."""
    from ..civitai.target_check import check_target_exists

    check_target_exists(api, target.kind, target.value, target.version_id)


def require_key_for(target: CliTarget, api_key: Optional[str]) -> None:
    """Your reactions are listed only with your API key: UsageError (exit 2) without one, before
    any request."""
    if target.kind == "reactions" and not api_key:
        from ..civitai.web_listing import REACTIONS_NEED_KEY

        raise UsageError(REACTIONS_NEED_KEY)
