"""``sync``: bring every target an output folder follows up to date (issue 22), the one loop
both shells run: the CLI's ``python main.py sync`` (``cli/follow_cmd.py``) and the tab's *Sync
now* (``ui/follow_panel.py``). Each shell hands in how one target runs (``run_one``: its own
service, the same ``ImageDownloader`` listing); this module walks the followed rows in order,
records each one's sync (``store/follows.synced``), names each target and words its line.

A follow row (``store/follows``) keeps the target in the CLI's words (``model 4201``, ``url
...``) and its options as ``download`` arguments; :class:`FollowOptions` is the one writer
and reader of those arguments, so a follow made in the tab and one made with ``python main.py
follow`` are the same record, and either shell's sync honours it.

A followed target is not looked up before its listing: the listing's first page answers "does it
still exist" (a page with images does). Only a listing that held no image at all asks the target
look-up (:func:`gone_reason`), so a target with nothing new costs one request and a target
that is gone is still named as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..civitai.filters import FilterSpec
from ..civitai.target_check import check_target_exists
from ..errors import InvalidQueryError, NotFoundError
from ..store import follows
from ..store.archive import Archive
from ..store.follows import Follow
from ..store.paths import ARCHIVE_NAME

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


#: The filter flags in FilterSpec.to_dict's order, by its key.
_FILTER_FLAGS = {
    "base_models": "--base-model",
    "type": "--type",
    "with_generation_data": "--with-generation-data",
    "since": "--since",
    "until": "--until",
    "min_reactions": "--min-reactions",
    "used_with": "--used-with",
}
_SWITCHES = ("--with-generation-data", "--thumbnails", "--with-tags")


@dataclass
class FollowOptions:
    """A followed target's options: what and how ``sync`` fetches (never the key, the origin,
    the output folder or pacing, which are the sync's own)."""

    limit: Optional[int] = None
    nsfw: Optional[List[str]] = None
    spec: FilterSpec = field(default_factory=FilterSpec)
    template: Optional[str] = None
    metadata: Optional[List[str]] = None  # [] = none
    thumbnails: bool = False
    duplicates: Optional[str] = None  # the CLI's word: skip, replace, keep-both
    reaction_kinds: Optional[List[str]] = None
    with_tags: bool = False
    concurrency: Optional[int] = None

    def argv(self) -> List[str]:
        """As ``download`` arguments (the follow row's ``options``)."""
        out: List[str] = []
        if self.limit is not None:
            out += ["--limit", str(self.limit)]
        if self.nsfw is not None:
            out += ["--nsfw", ",".join(self.nsfw)]
        for name, value in self.spec.to_dict().items():
            flag = _FILTER_FLAGS[name]
            if flag in _SWITCHES:
                out.append(flag)
            else:
                shown = ",".join(str(v) for v in value) if isinstance(value, list) else value
                out += [flag, str(shown)]
        if self.template:
            out += ["--template", self.template]
        if self.metadata is not None:
            out += ["--metadata", ",".join(self.metadata) or "none"]
        if self.thumbnails:
            out.append("--thumbnails")
        if self.duplicates:
            out += ["--duplicates", self.duplicates]
        if self.reaction_kinds:
            out += ["--kind", ",".join(self.reaction_kinds)]
        if self.with_tags:
            out.append("--with-tags")
        if self.concurrency:
            out += ["--concurrency", str(self.concurrency)]
        return out

    @classmethod
    def parse(cls, argv: Sequence[str]) -> "FollowOptions":
        """The options :meth:`argv` wrote (``InvalidQueryError`` for anything else)."""
        by_flag = {flag: name for name, flag in _FILTER_FLAGS.items()}
        words = list(argv)
        given: Dict[str, Any] = {}
        filters: Dict[str, Any] = {}
        while words:
            flag = words.pop(0)
            if flag in _SWITCHES:
                value: Any = True
            elif words:
                value = words.pop(0)
            else:
                raise InvalidQueryError(f"the followed option {flag} has no value")
            if flag in by_flag:
                filters[by_flag[flag]] = value
            else:
                given[flag] = value
        opts = cls(spec=FilterSpec.from_dict(filters))
        known: Dict[str, Tuple[str, Callable[[Any], Any]]] = {
            "--limit": ("limit", int),
            "--nsfw": ("nsfw", _words),
            "--template": ("template", str),
            "--metadata": ("metadata", lambda v: [] if v == "none" else _words(v)),
            "--thumbnails": ("thumbnails", bool),
            "--duplicates": ("duplicates", str),
            "--kind": ("reaction_kinds", _words),
            "--with-tags": ("with_tags", bool),
            "--concurrency": ("concurrency", int),
        }
        for flag, value in given.items():
            if flag not in known:
                raise InvalidQueryError(f"unknown followed option {flag}")
            name, convert = known[flag]
            try:
                setattr(opts, name, convert(value))
            except ValueError:
                raise InvalidQueryError(f"the followed option {flag} {value!r} is not valid")
        return opts


def _words(text: str) -> List[str]:
    return [w.strip() for w in str(text).split(",") if w.strip()]


#: Targets with nothing new to sync: an image (or fixed ids) is what it is. Both shells refuse them.
UNFOLLOWABLE = ("image", "images")


def follow_key(kind: str, value: Any, version_id: Optional[int] = None) -> str:
    """A followed target's key, as the CLI words it: ``model 4201``, ``version 43888`` (a model
    link naming one version too), ``user 'alice_art'``."""
    from ..civitai.query import Target

    if kind == "model" and version_id:
        return f"version {version_id}"
    if kind == "user":
        return f"user {value!r}"
    if kind == "filter" and isinstance(value, dict):
        return "filter " + " ".join(f"{k}={v}" for k, v in value.items())
    if kind in ("gallery", "reactions", "user_posts", "tag"):
        return Target(kind, value).describe()
    return f"{kind} {value}"


def target_of(
    kind: str, values: Sequence[str], reaction_kinds: Any = None, extra_hosts: Any = ()
) -> Any:
    """A follow row's target (the CLI's KIND VALUE words) as a ``civitai.query.Target``; a link
    may name ``extra_hosts`` (the shells pass the configured fronts)."""
    from ..civitai import query

    if kind == "reactions":
        return query.reactions_target(reaction_kinds)
    if kind == "filter":
        return query.parse_query("&".join(values))
    if not values:
        raise InvalidQueryError(f"the followed {kind} has no value")
    text = str(values[0]).strip()
    if kind in ("model", "version", "image", "collection", "post"):
        if not text.isdigit():
            raise InvalidQueryError(f"the followed {kind} id {text!r} is not a number")
        return query.Target(kind, int(text))
    if kind == "user":
        return query.Target("user", query.validate_username(text.lstrip("@")))
    if kind == "tag":
        return query.Target("tag", query.validate_tag(text))
    return query.parse_query(text, extra_hosts)


def listing_of(target: Any, opts: FollowOptions, default_levels: Any = None) -> Any:
    """The ``ListingRequest`` a followed target syncs (None: a single image); a row recorded
    without levels lists ``default_levels`` (the shell passes the user's default)."""
    import dataclasses

    from .listing_request import for_target

    spec = opts.spec if opts.spec.active else None
    request = for_target(
        target.kind,
        target.value,
        target.version_id,
        target.params,
        opts.nsfw,
        spec,
        opts.limit,
        default_levels,
    )
    if request is not None and opts.with_tags:
        request = dataclasses.replace(request, params={**request.params, "withTags": "true"})
    return request


@dataclass
class TargetSync:
    """What one followed target's sync did."""

    key: str  # "model 4201"
    new: int = 0  # images saved
    failed: int = 0
    notes: List[str] = field(default_factory=list)  # "incremental: stopped at known image ..."
    stopped: Optional[str] = None  # why the run stopped early (a full disk, an API error)
    gone: Optional[str] = None  # the target is no longer on Civitai: the look-up's words
    error: Optional[str] = None  # the target could not be run at all
    code: int = EXIT_OK
    name: str = ""  # the model's or version's name when the archive knows it
    synced_at: Optional[str] = None

    @property
    def problem(self) -> bool:
        return self.code not in (EXIT_OK, EXIT_INTERRUPTED)

    def line(self) -> str:
        """``model 4201 DreamShaper: 5 new (incremental: ...)``; a gone target says so."""
        head = f"{self.key}{' ' + self.name if self.name else ''}"
        if self.error is not None:
            return f"{head}: error: {self.error}"
        if self.gone is not None:
            return f"{head}: gone: {self.gone}"
        problems = f", {self.failed} failed" if self.failed else ""
        if self.stopped:
            problems += f", stopped: {self.stopped}"
        notes = "; ".join(n.split(": ", 1)[-1] for n in self.notes)
        return f"{head}: {self.new} new{problems}" + (f" ({notes})" if notes else "")


@dataclass
class SyncSummary:
    """Every target's :class:`TargetSync`, in the order they are followed."""

    results: List[TargetSync] = field(default_factory=list)
    interrupted: bool = False

    @property
    def new(self) -> int:
        return sum(r.new for r in self.results)

    @property
    def problems(self) -> List[str]:
        return [r.key for r in self.results if r.problem]

    @property
    def code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.problems else EXIT_OK

    def line(self) -> str:
        bad = self.problems
        return f"synced {len(self.results)} target(s): {self.new} new image(s)" + (
            f", {len(bad)} with problems ({', '.join(bad)})" if bad else ""
        )


def gone_reason(api: Any, kind: str, value: Any, version_id: Optional[int] = None) -> Optional[str]:
    """After a listing that held no image: the target look-up (``civitai/target_check``); its
    words when the target is gone (not found, a user without images), else None (it exists, it
    is only empty). Other API errors are raised."""
    try:
        check_target_exists(api, kind, value, version_id)
    except (NotFoundError, InvalidQueryError) as exc:
        return str(exc)
    return None


def archive_of(output: str) -> Archive:
    return Archive(os.path.join(output, ARCHIVE_NAME))


def target_name(archive: Any, kind: str, value: Any, version_id: Optional[int] = None) -> str:
    """The model's (version's) name the archive remembers for a model / version target; ''."""
    if kind == "model" and version_id:
        kind, value = "version", version_id
    if kind not in ("model", "version"):
        return ""
    try:
        known = archive.known_name(kind, int(value))
    except (TypeError, ValueError):
        return ""
    return known[0] if known else ""


def followed(output: str) -> List[Follow]:
    """The targets ``output`` follows (none when it has no archive yet)."""
    if not os.path.exists(os.path.join(output, ARCHIVE_NAME)):
        return []
    with archive_of(output) as archive:
        return follows.followed(archive)


def sync_all(
    output: str,
    run_one: Callable[[Follow], TargetSync],
    on_result: Optional[Callable[[TargetSync], None]] = None,
    named: Optional[Callable[[Any, Follow], str]] = None,
) -> SyncSummary:
    """Sync every target ``output`` follows, in order: ``run_one(row)`` runs it (a problem of
    one target is its :class:`TargetSync`, the others still run); its sync is recorded, its
    name filled by ``named(archive, row)``, then ``on_result`` hears it. An interrupted target
    (code 130) ends the loop."""
    summary = SyncSummary()
    for row in followed(output):
        result = run_one(row)
        with archive_of(output) as archive:
            if result.code != EXIT_INTERRUPTED:
                follows.synced(archive, row.key, result.new, result.code)
            if named is not None and not result.name:
                result.name = named(archive, row)
            result.synced_at = next(
                (f.last_sync_at for f in follows.followed(archive) if f.key == row.key), None
            )
        summary.results.append(result)
        if on_result is not None:
            on_result(result)
        if result.code == EXIT_INTERRUPTED:
            summary.interrupted = True
            break
    return summary
