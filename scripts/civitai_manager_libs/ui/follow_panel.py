"""The tab's *Follow*, *Followed* and *Sync now* (issue 22), and its pacing options.

*Follow* (beside Download all) records the loaded target with the tab's options (NSFW levels,
filters, template, metadata formats, thumbnails; all its images, as Download all lists them) in
the output folder's archive: the same row ``python main.py follow`` writes
(``planning/follow_sync.FollowOptions``), so either shell syncs it. *Followed* lists the rows
(target, name, last sync, new images then); one is unfollowed from the list. *Sync now* runs the
one sync loop (``planning/follow_sync.sync_all``) as the tab's one job: refused while a download
runs (and Download all refused while it runs), with Download all's progress and toasts; each
target gets a downloader with its own recorded options.

Element ids: ``civitai_gallery_follow``, ``civitai_gallery_followed``,
``civitai_gallery_unfollow_key``, ``civitai_gallery_unfollow``, ``civitai_gallery_sync_now``,
``civitai_gallery_sleep_request``, ``civitai_gallery_limit_rate``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import gradio as gr

from .. import setting
from ..errors import CivitaiGalleryError, InvalidQueryError
from ..planning import follow_sync
from ..planning.follow_sync import FollowOptions, TargetSync
from ..records import DownloadSummary
from ..store import follows
from . import download_job, filters_row, save_options
from .actions import _levels
from .feedback import inform_user, toast_problem, user_message
from .gradio_compat import component, listen, update
from .i18n import choices, t
from .jobs import JobOutcome, progress_text
from .messages import say
from ..transport.client_options import configured_fronts

logger = logging.getLogger(__name__)

FOLLOWED_COLUMNS = ["Target", "Name", "Last sync", "New"]
POLL_SECONDS = 0.2


# -- the rows ---------------------------------------------------------------------------------


def _output() -> str:
    return str(save_options.option_value("output"))


def followed_rows() -> List[List[str]]:
    """The Followed table: target, name, last sync, new images then (one row saying so when
    the folder follows nothing)."""
    output = _output()
    rows = follow_sync.followed(output)
    if not rows:
        return [["", say("follow_none"), "", ""]]
    table = []
    with follow_sync.archive_of(output) as archive:
        for row in rows:
            name = _name(archive, row)
            when = (row.last_sync_at or "").replace("T", " ").replace("+00:00", " UTC")
            new = "" if row.last_new is None else str(row.last_new)
            table.append([" ".join([row.key, *row.options]), name, when or say("never"), new])
    return table


def _name(archive: Any, row: Any) -> str:
    try:
        target = follow_sync.target_of(row.kind, row.values, extra_hosts=configured_fronts())
    except CivitaiGalleryError:
        return ""
    return follow_sync.target_name(archive, target.kind, target.value, target.version_id)


def followed_keys() -> List[str]:
    return [row.key for row in follow_sync.followed(_output())]


def _refreshed() -> Tuple[Any, Any]:
    keys = followed_keys()
    return followed_rows(), update(choices=choices(gr.Dropdown, keys), value=None)


# -- follow / unfollow ------------------------------------------------------------------------


def _cli_words(target: Any, query: str) -> Tuple[str, List[str]]:
    """The target in ``follow``'s KIND VALUE words."""
    kind, value = target.kind, target.value
    if kind == "model" and target.version_id:
        return "version", [str(target.version_id)]
    if kind in ("model", "version", "collection", "post", "user", "tag"):
        return kind, [str(value)]
    if kind == "reactions":
        return "reactions", []
    if kind == "filter":
        return "filter", [f"{k}={v}" for k, v in (target.params or {}).items()]
    if kind in follow_sync.UNFOLLOWABLE:
        raise InvalidQueryError(say("follow_image"))
    return "url", [query.strip()]  # a gallery link, a user's posts: their link is their name


def follow_target(query: str, nsfw: Sequence[str], view: Any, *filters: Any) -> str:
    """*Follow*: record the loaded target with the tab's options and the Filters row's values
    (``filters_row.inputs``); the status line."""
    target = download_job._target_for_download(query, view)
    levels = _levels(nsfw)
    spec = filters_row.spec_from_values(*filters)  # the Filters row, in its FIELDS order
    kind, values = _cli_words(target, query)
    formats = list(save_options.option_value("formats"))
    opts = FollowOptions(
        limit=0,  # every image, as Download all
        nsfw=list(levels),
        spec=spec,
        template=str(setting.get("images.path_template")),
        metadata=formats,
        thumbnails=bool(setting.get("images.generate_thumbnails")),
        reaction_kinds=list((target.params or {}).get("reactions") or []) or None,
    )
    key = follow_sync.follow_key(target.kind, target.value, target.version_id)
    from ..store.paths import check_output_folder

    output = check_output_folder(_output())
    with follow_sync.archive_of(output) as archive:
        new = follows.add(archive, key, kind, values, opts.argv())
    message = say("followed" if new else "follow_updated", key=key)
    inform_user(message)
    return message


def follow_clicked(*args: Any) -> Tuple[Any, Any, Any]:
    try:
        text = follow_target(*args)
    except CivitaiGalleryError as exc:
        text = user_message(exc)
        toast_problem(text)
    rows, keys = _refreshed()
    return text, rows, keys


def unfollow_clicked(key: Optional[str]) -> Tuple[Any, Any, Any]:
    if not key:
        text = say("pick_followed")
        toast_problem(text)
    else:
        output = _output()
        with follow_sync.archive_of(output) as archive:
            follows.remove(archive, key)
        text = say("unfollowed", key=key)
        inform_user(text)
    rows, keys = _refreshed()
    return text, rows, keys


# -- sync now ---------------------------------------------------------------------------------


class _Sync:
    """One *Sync now*: every followed target in turn, each with its own downloader."""

    def __init__(self, report: Any, cancel: threading.Event):
        self.report = report
        self.cancel = cancel
        self.output = _output()
        self.task_ids: List[str] = []
        self.summary = DownloadSummary(output_path=self.output)

    def run_one(self, row: Any) -> TargetSync:
        from ..image_downloader import ImageDownloader

        if self.cancel.is_set():
            return TargetSync(row.key, code=follow_sync.EXIT_INTERRUPTED)
        try:
            opts = FollowOptions.parse(row.options)
            target = follow_sync.target_of(
                row.kind, row.values, opts.reaction_kinds, configured_fronts()
            )
            default = setting.get("images.default_nsfw_filter")
            request = follow_sync.listing_of(target, opts, default)
            if request is None:
                raise InvalidQueryError(say("follow_image"))
            downloader = ImageDownloader(
                output_path=self.output,
                path_template=opts.template or setting.get("images.path_template"),
                metadata_formats=opts.metadata or None,
                generate_thumbnails=opts.thumbnails or None,
                duplicate_policy=(opts.duplicates or "").replace("-", "_") or None,
                max_concurrent=opts.concurrency,
            )
        except CivitaiGalleryError as exc:
            return TargetSync(row.key, error=user_message(exc), code=follow_sync.EXIT_FAILED)
        download_job.jobs.side = downloader  # Cancel reaches it
        try:
            return self._listed(row, target, request, downloader, opts.metadata != [])
        except CivitaiGalleryError as exc:
            return TargetSync(row.key, error=user_message(exc), code=follow_sync.EXIT_FAILED)
        finally:
            download_job.jobs.side = None
            downloader.close()

    def _listed(self, row, target, request, downloader, save: bool) -> TargetSync:
        use_levels = getattr(downloader.api, "use_levels", None)
        if use_levels is not None:
            use_levels(request.levels)
        self.report(0, 0, say("syncing", key=row.key))
        task_ids = [str(i) for i in downloader.download_listing(request, save_metadata=save)]
        if self.cancel.is_set():
            downloader.cancel(task_ids or None)
        summary = self._wait(downloader, task_ids)
        result = TargetSync(row.key, summary.completed, summary.failed, list(downloader.notes))
        if self.cancel.is_set():
            result.code = follow_sync.EXIT_INTERRUPTED
        elif downloader.listed_any is False:
            result.gone = follow_sync.gone_reason(
                downloader.api, target.kind, target.value, target.version_id
            )
        if result.gone is not None or summary.failed:
            result.code = follow_sync.EXIT_FAILED
        return result

    def _wait(self, downloader: Any, task_ids: List[str]) -> DownloadSummary:
        total, started = len(task_ids), time.monotonic()
        while task_ids:
            finished = downloader.wait(task_ids, timeout=POLL_SECONDS)
            s = downloader.summary(task_ids)
            done = total - s.pending
            self.report(
                done,
                total,
                progress_text(done, total, s.bytes_downloaded, time.monotonic() - started),
            )
            if finished:
                break
        summary = downloader.summary(task_ids) if task_ids else DownloadSummary()
        self.task_ids += task_ids
        mine = self.summary
        for name in ("completed", "skipped", "failed", "cancelled", "bytes_downloaded"):
            setattr(mine, name, getattr(mine, name) + getattr(summary, name))
        mine.failures += summary.failures
        for reason, count in summary.filtered.items():
            mine.filtered[reason] = mine.filtered.get(reason, 0) + count
        return summary


def _line(result: TargetSync) -> str:
    name = f"{result.key}{' ' + result.name if result.name else ''}"
    if result.error is not None:
        return say("sync_line_error", target=name, error=result.error)
    if result.gone is not None:
        return say("sync_line_gone", target=name, error=result.gone)
    return say("sync_line", target=name, new=result.new)


def sync_now(progress: Any = gr.Progress()) -> Any:
    """*Sync now*: the status text (one line per target, then Download all's summary)."""
    if not follow_sync.followed(_output()):
        return say("follow_none")
    lines: List[str] = []

    def start(report: Any) -> JobOutcome:
        def work(cancel: threading.Event) -> JobOutcome:
            run = _Sync(report, cancel)
            summary = follow_sync.sync_all(
                run.output, run.run_one, lambda r: lines.append(_line(r)), _name
            )
            if run.summary.completed == 0 and not summary.problems:
                inform_user(say("sync_nothing_new", count=len(summary.results)))
            return JobOutcome(run.task_ids, run.summary, cancelled=cancel.is_set())

        return download_job.jobs.run_exclusive(work)

    try:
        text = download_job._run_job(start, progress)
    except CivitaiGalleryError as exc:
        text = user_message(exc)
        toast_problem(text)
    if not lines:
        return text
    return "\n".join(lines) + ("\n" + text if isinstance(text, str) else "")


def refresh_followed() -> Tuple[Any, Any]:
    return _refreshed()


# -- layout and wiring ------------------------------------------------------------------------


def follow_button() -> Dict[str, Any]:
    """*Follow*, built in the row of Download all."""
    return {"follow": component(gr.Button, t("Follow"), elem_id="civitai_gallery_follow")}


def pacing_options() -> Dict[str, Any]:
    """The pacing settings (``http_sleep_request``, ``http_limit_rate``), built in the save
    options' box; stored as the other options are (``save_options.TAB_OPTIONS``)."""
    c: Dict[str, Any] = {}
    labels = {
        "sleep_request": t("Seconds between API requests (e.g. 2 or 2-5; 0: no wait)"),
        "limit_rate": t("Most bytes per second per download (e.g. 500k or 2M; empty: no limit)"),
    }
    with gr.Row():
        for name, label in labels.items():
            c[name] = component(
                gr.Textbox,
                value=lambda name=name: save_options.option_value(name),
                label=label,
                lines=1,
                max_lines=1,
                elem_id=f"civitai_gallery_{name}",
            )
    return c


def build() -> Dict[str, Any]:
    """The Followed box: the table, unfollow, Sync now."""
    c: Dict[str, Any] = {}
    with component(gr.Accordion, t("Followed"), open=True, elem_id="civitai_gallery_follow_box"):
        c["followed"] = component(
            gr.Dataframe,
            value=followed_rows,  # a callable: the folder's follows on every page load
            headers=[t(name) for name in FOLLOWED_COLUMNS],
            datatype=["str"] * len(FOLLOWED_COLUMNS),
            interactive=False,
            wrap=True,
            max_height=240,
            elem_id="civitai_gallery_followed",
        )
        with gr.Row():
            c["unfollow_key"] = component(
                gr.Dropdown,
                choices=choices(gr.Dropdown, followed_keys()),
                value=None,
                label=t("Followed target"),
                elem_id="civitai_gallery_unfollow_key",
                scale=3,
            )
            c["unfollow"] = component(
                gr.Button, t("Unfollow"), elem_id="civitai_gallery_unfollow", scale=1
            )
            c["sync_now"] = component(
                gr.Button,
                t("Sync now"),
                variant="primary",
                elem_id="civitai_gallery_sync_now",
                scale=1,
            )
    return c


def wire(c: Dict[str, Any], concurrency: Dict[str, Any]) -> None:
    """Follow / Unfollow / Sync now and the pacing options; ``concurrency``: Download all's
    event options (its queue and trigger mode), so Sync now meets the same job lock."""
    listed = [c["status"], c["followed"], c["unfollow_key"]]
    filters = filters_row.inputs(c)
    follow_inputs = [c["query"], c["nsfw"], c["state"]] + filters
    listen(c["follow"].click, follow_clicked, follow_inputs, listed)
    listen(c["unfollow"].click, unfollow_clicked, [c["unfollow_key"]], listed)
    event = listen(c["sync_now"].click, sync_now, None, [c["status"]], **concurrency)
    then = listen(event.then, refresh_followed, None, [c["followed"], c["unfollow_key"]])
    listen(then.then, download_job.refresh_tasks, None, [c["tasks"]])
    for name, saver in (
        ("sleep_request", save_options.save_sleep_request),
        ("limit_rate", save_options.save_limit_rate),
    ):
        for trigger in (c[name].blur, c[name].submit):
            listen(trigger, saver, [c[name]], [c[name]])
