"""``sync``: bring every target an output folder follows up to date (issue 22), the one loop
both shells run: the CLI's ``python main.py sync`` (``cli/follow_cmd.py``) and the tab's *Sync
now* (``ui/follow_panel.py``). Each shell hands in how one target runs (``run_one``: its own
service, the same ``ImageDownloader`` listing); this module walks the followed rows in order,
records each one's sync (``store/follows.synced``), names each target and words its line.

A followed target is not looked up before its listing: the listing's first page answers "does it
still exist" (a page with images does). Only a listing that held no image at all asks the target
look-up (:func:`gone_reason`), so a target with nothing new costs one request and a target
that is gone is still named as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from ..civitai.target_check import check_target_exists
from ..errors import InvalidQueryError, NotFoundError
from ..store import follows
from ..store.archive import Archive
from ..store.follows import Follow
from ..store.paths import ARCHIVE_NAME

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


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
