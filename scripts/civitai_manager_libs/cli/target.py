"""The CLI's download target: turn ``download KIND VALUE...`` into a ``CliTarget`` and check that it
exists on Civitai before anything is written."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import quote

from .args import UsageError


@dataclass
class CliTarget:
    """What the user asked for, normalized: kind in model/version/user/image/filter."""

    kind: str
    value: Any
    version_id: Optional[int] = None
    params: Optional[Dict[str, Any]] = None  # a gallery link's filters, the reactions kept
    batch: Any = None  # kind "images": the ImageBatch the check looked up (civitai/image_batch)

    def describe(self) -> str:
        if self.kind == "images":
            shown = " ".join(str(i) for i in self.value[:5])
            more = f" ... ({len(self.value)} ids)" if len(self.value) > 5 else ""
            return f"images {shown}{more}"
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
    from_file: Optional[str] = None,
    red_base_url: Optional[str] = None,
) -> CliTarget:
    """Turn ``download KIND VALUE...`` into a :class:`CliTarget` (``UsageError`` when malformed).
    ``reactions`` takes no value: ``reaction_kinds`` (``--kind``) chooses them (default all).

    ``image`` with several ids, or with ``from_file`` (:func:`read_id_file`), is the kind
    ``images``: one look-up per 200 ids (``CivitaiAPI.get_images``).

    A ``url`` must point at Civitai, the configured Civitai fronts or ``base_url`` /
    ``red_base_url`` (``--base-url`` / ``--red-base-url``); another website's link is an
    ``InvalidQueryError``."""
    if kind == "filter":
        if not values:
            raise UsageError("filter expects KEY=VALUE pairs")
        return CliTarget("filter", _parse_filter(values))
    if kind == "reactions":
        from ..civitai.query import reactions_target

        if values:
            raise UsageError("'reactions' takes no value; choose them with --kind Like,Heart")
        parsed = reactions_target(reaction_kinds)
        return CliTarget("reactions", parsed.value, params=parsed.params)
    if kind == "image" and (len(values) > 1 or from_file is not None):
        ids = [_parse_id("image", text.strip()) for text in values]
        if from_file is not None:
            ids += read_id_file(from_file, base_url)
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise UsageError(f"{from_file} names no image (one id or image link per line)")
        return CliTarget("images", ids)
    if from_file is not None:
        raise UsageError("--from-file goes with 'image' (a file of image ids or links)")
    if not values:
        raise UsageError(f"the following arguments are required: VALUE (after '{kind}')")
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
    from ..transport.client_options import configured_fronts

    hosts = [base_url, red_base_url, *configured_fronts()]
    parsed = parse_query(text, extra_hosts=hosts)  # InvalidQueryError has its sentence
    if parsed.kind == "filter":
        return CliTarget("filter", dict(parsed.params or {}))
    return CliTarget(parsed.kind, parsed.value, parsed.version_id, parsed.params)


MAX_ID_FILE_BYTES = 16 * 1024 * 1024  # a file of ids larger than this is not one


def read_id_file(path: str, base_url: Optional[str] = None) -> List[int]:
    """The image ids of a file: one id or image link (``civitai.com/images/N``) per line; blank
    lines and ``#`` comments are skipped. ``-`` reads standard input. A line that names no
    image is a ``UsageError`` naming its number."""
    from ..civitai.query import parse_query
    from ..errors import InvalidQueryError
    from ..transport.client_options import configured_fronts

    try:
        if path == "-":
            text = sys.stdin.read(MAX_ID_FILE_BYTES + 1)
        else:
            with open(os.path.expanduser(path), encoding="utf-8-sig") as handle:
                text = handle.read(MAX_ID_FILE_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the id file {path}: {exc}") from None
    if len(text) > MAX_ID_FILE_BYTES:
        raise UsageError(f"the id file {path} is larger than 16 MiB; split it")
    ids: List[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if entry.isdigit():  # a bare number is an image id here
            ids.append(_parse_id(f"{path} line {number}: image", entry))
            continue
        try:
            parsed = parse_query(entry, extra_hosts=[base_url, *configured_fronts()])
        except InvalidQueryError as exc:
            raise UsageError(f"{path} line {number}: {exc}") from None
        if parsed.kind != "image":
            raise UsageError(f"{path} line {number}: {entry!r} is not an image id or image link")
        ids.append(int(parsed.value))
    return ids


def check_target(api, target: CliTarget, with_tags: bool = False) -> None:
    """Look the target up before anything is written; raises ``NotFoundError`` /
    ``InvalidQueryError`` (the same check and words as the tab's Download all). Several images
    are looked up here in ``ids=`` batches (kept in ``target.batch`` for the download); when none
    of them is on Civitai that is a ``NotFoundError``."""
    from ..civitai.target_check import check_target_exists

    if target.kind == "images":
        from ..errors import NotFoundError

        target.batch = api.get_images(target.value, with_tags=with_tags)
        if not target.batch.items:
            raise NotFoundError(
                f"none of the {len(target.value)} image ids is on Civitai (or they are hidden): "
                + ", ".join(str(i) for i in target.value[:20])
                + (" ..." if len(target.value) > 20 else "")
            )
        return

    check_target_exists(api, target.kind, target.value, target.version_id)


def require_key_for(target: CliTarget, api_key: Optional[str]) -> None:
    """Your reactions are listed only with your API key: UsageError (exit 2) without one, before
    any request."""
    if target.kind == "reactions" and not api_key:
        from ..civitai.web_listing import REACTIONS_NEED_KEY

        raise UsageError(REACTIONS_NEED_KEY)
