"""A listing without downloads: one row per image, written to Parquet or JSON Lines for
img2dataset (or any tool that fetches URLs at scale).

Columns (:data:`COLUMNS`): ``url`` (the original upload), ``caption`` (the prompt), ``id``,
``nsfw_level``, ``width``, ``height``, ``creator``, ``model_id``, ``version_id``, ``base_model``,
``type``, ``negative_prompt`` and ``generation`` (the normalized generation data as a JSON string).

A long listing resumes: after each page the rows go to ``<FILE>.part.jsonl`` (flushed to disk)
and the next cursor to ``<FILE>.part.json``. The same command started again continues from that
cursor (rows of a page half-written when the process died are cut off first); a different command
aimed at the same file is refused. Once the last page is in, the rows become ``FILE`` (Parquet
written in row groups, so memory stays flat) and the two part files are removed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from ..civitai.api import MAX_PAGE_SIZE, original_url
from ..civitai.drift import Drift
from ..civitai.pages import PageLoop
from ..errors import InvalidQueryError, OutputPathError
from ..metadata.generation import extract_generation, json_safe
from ..records import ImageItem, ImagePage
from ..store import confined
from ..util.documents import DocumentError, read_document
from ..util.logging_setup import redact
from .captions import clean_caption, tag_names

logger = logging.getLogger(__name__)

COLUMNS = (
    "url",
    "caption",
    "id",
    "nsfw_level",
    "width",
    "height",
    "creator",
    "model_id",
    "version_id",
    "base_model",
    "type",
    "negative_prompt",
    "generation",
    "tags",  # Civitai's tag names, ", "-joined (asked with --with-tags; else empty)
)
_INT_COLUMNS = ("id", "width", "height", "model_id", "version_id")
LIST_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl"}
_ROW_GROUP = 10_000
STATE_VERSION = 1

PageProgress = Callable[[int, int], None]  # (rows written, videos skipped) after each page


def listing_format(path: str) -> str:
    """``parquet`` or ``jsonl`` from the file's extension; InvalidQueryError otherwise."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in LIST_FORMATS:
        raise InvalidQueryError(
            f"--to {path!r}: name a .parquet or .jsonl file (the extension picks the format)"
        )
    return LIST_FORMATS[ext]


def require_pyarrow() -> Any:
    """The ``pyarrow.parquet`` module, or InvalidQueryError saying how to get it."""
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidQueryError(
            "writing Parquet needs pyarrow: run 'pip install pyarrow', or write --to FILE.jsonl"
        ) from None
    return pq


def _version_of(item: ImageItem) -> Optional[int]:
    """The item's version, or the one version its raw ``modelVersionIds`` names."""
    if item.version_id is not None:
        return item.version_id
    ids = item.raw.get("modelVersionIds") if isinstance(item.raw, dict) else None
    if isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], int):
        return ids[0]
    return None


def listing_row(item: ImageItem, context: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The row of one listed image (see :data:`COLUMNS`); ``context`` (``model_id``,
    ``version_id`` the listing itself stands for) fills what the item does not say."""
    context = context or {}
    generation = extract_generation(item.meta) or {}
    try:
        url = original_url(item.url)
    except InvalidQueryError:
        url = item.url
    return {
        "url": mask_token(url),
        "caption": generation.get("prompt") or "",
        "id": item.id,
        "nsfw_level": item.nsfw_level,
        "width": item.width,
        "height": item.height,
        "creator": item.creator,
        "model_id": item.model_id if item.model_id is not None else context.get("model_id"),
        "version_id": _version_of(item) or context.get("version_id"),
        "base_model": item.base_model,
        "type": item.type,
        "negative_prompt": generation.get("negative_prompt"),
        "generation": json.dumps(json_safe(generation), ensure_ascii=False) if generation else None,
        "tags": ", ".join(tag_names(item.raw.get("tags"))) or None,
    }


_token_said = False


def mask_token(url: Optional[str]) -> Optional[str]:
    """``url`` with the value of a ``token=`` (or other secret) query parameter masked: a listing
    is a file meant to be shared with other tools, never a place for a key. Said once per run."""
    global _token_said
    if not url:
        return url
    masked = redact(url)
    if masked != url and not _token_said:
        _token_said = True
        logger.warning("a listed URL carried a token= (a key); it is written masked as '***'")
    return masked


@dataclass
class ListingJob:
    """What to list: images-endpoint ``params``, exact NSFW ``levels``, at most ``limit`` rows
    (0 = all); ``key`` names the query for the resume check."""

    key: str
    params: Dict[str, Any]
    levels: Sequence[str]
    limit: int = 0
    include_videos: bool = False
    context: Dict[str, Any] = field(default_factory=dict)
    clean_captions: bool = False  # caption = clean_caption(prompt) instead of the prompt as written
    source: Any = None  # a web listing (civitai/web_listing.WebListing): its pages, not REST's
    keep: Optional[Callable[[Any], bool]] = None  # the client-side filters: False drops an item
    overwrite: bool = False  # replace a finished listing at the same path (else refused)


@dataclass
class ListingResult:
    path: str
    rows: int = 0
    videos_skipped: int = 0
    pages: int = 0
    resumed: bool = False
    complete: bool = False
    filtered: int = 0  # items the client-side filters dropped (this run)


@dataclass
class _State:
    key: str
    cursor: Optional[str] = None
    rows: int = 0
    bytes: int = 0
    videos_skipped: int = 0
    requested: List[str] = field(default_factory=list)


class ListingFile:
    """The part files of one listing and the final file they become (module docstring)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.fmt = listing_format(self.path)
        self.rows_path = self.path + ".part.jsonl"
        self.state_path = self.path + ".part.json"
        # the folder the user named: every file of the listing is written in it, never through
        # a link found there (store/confined)
        self.root = os.path.dirname(self.path)

    def check_writable(self, overwrite: bool = False) -> None:
        """OutputPathError when the file or its folder cannot be written, or when a finished
        listing is there and ``overwrite`` is not given (nothing is created)."""
        if os.path.isdir(self.path):
            raise OutputPathError(f"--to {self.path} is a folder; name a file")
        for path in (self.path, self.rows_path, self.state_path):
            if os.path.islink(path):
                raise OutputPathError(
                    f"{path} is a symbolic link; the listing never writes through a link. "
                    "Remove it or choose another --to name."
                )
        finished = os.path.lexists(self.path) and not os.path.lexists(self.state_path)
        if finished and not overwrite:
            raise OutputPathError(
                f"--to {self.path} already exists (a finished listing?); pass --overwrite to "
                "replace it, or choose another name"
            )
        folder = os.path.dirname(self.path)
        probe = folder
        while probe and not os.path.exists(probe):
            probe = os.path.dirname(probe)
        if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
            raise OutputPathError(f"cannot write {self.path}: {probe} is not a writable folder")

    def load_state(self, key: str) -> Optional[_State]:
        """The saved state of this listing; InvalidQueryError when another listing owns it."""
        if not os.path.exists(self.state_path):
            return None
        try:
            with confined.open_read(self.state_path, self.root) as handle:
                data = read_document(handle, what="resume state", max_bytes=1 << 20)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            state = _State(
                key=str(data["key"]),
                cursor=data.get("cursor"),
                rows=int(data["rows"]),
                bytes=int(data["bytes"]),
                videos_skipped=int(data.get("videos_skipped", 0)),
                requested=list(data.get("requested", [])),
            )
        except (OSError, ValueError, KeyError, TypeError, DocumentError) as exc:
            raise OutputPathError(
                f"the resume state {self.state_path} is unreadable ({exc}); delete it and "
                f"{self.rows_path} to list from the start"
            ) from None
        if state.key != key:
            raise InvalidQueryError(
                f"{self.path} belongs to an unfinished listing of {state.key!r}; run that "
                f"command again to finish it, or delete {self.state_path} and {self.rows_path}"
            )
        return state

    def save_state(self, state: _State) -> None:
        data = {
            "version": STATE_VERSION,
            "key": state.key,
            "cursor": state.cursor,
            "rows": state.rows,
            "bytes": state.bytes,
            "videos_skipped": state.videos_skipped,
            "requested": state.requested,
        }
        confined.write_atomic(self.state_path, (json.dumps(data) + "\n").encode("utf-8"), self.root)

    def seen_ids(self, state: _State) -> Set[Any]:
        """Cut the rows file back to the last saved page; the ids (or URLs) it holds."""
        seen: Set[Any] = set()
        if not os.path.exists(self.rows_path):
            if state.bytes:
                raise OutputPathError(
                    f"{self.rows_path} is gone but {self.state_path} says it held {state.rows} "
                    "rows; delete the state file to list from the start"
                )
            return seen
        confined.truncate(self.rows_path, state.bytes, self.root)
        for row in self.iter_rows():
            seen.add(row["id"] if row.get("id") is not None else row.get("url"))
        return seen

    def iter_rows(self) -> Iterator[Dict[str, Any]]:
        with confined.open_read(self.rows_path, self.root) as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def append(self, rows: List[Dict[str, Any]]) -> int:
        """Append rows, flushed to disk; the rows file's new size."""
        confined.ensure_root(self.root)
        with confined.open_write(self.rows_path, self.root, append=True) as handle:
            for row in rows:
                handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
            return handle.tell()

    def finish(self) -> None:
        """Turn the rows into the final file and remove the part files."""
        if not os.path.exists(self.rows_path):
            self.append([])
        if self.fmt == "jsonl":
            confined.replace(self.rows_path, self.path, self.root)
        else:
            # a new temporary file (random name, O_EXCL) handed to pyarrow as an open file:
            # a link planted at "<FILE>.tmp" is never followed
            handle, tmp = confined.open_temp(self.path, self.root)
            try:
                with handle:
                    self._write_parquet(handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                confined.replace(tmp, self.path, self.root)
            except BaseException:
                confined.discard_temp(tmp)
                raise
            confined.remove(self.rows_path, self.root)
        confined.remove(self.state_path, self.root)

    def drop_rows(self) -> None:
        """Remove rows left without a state (no resume is possible from them)."""
        if os.path.lexists(self.rows_path):
            confined.remove(self.rows_path, self.root)

    def _write_parquet(self, handle: Any) -> None:
        pq = require_pyarrow()
        import pyarrow as pa

        types = {name: pa.int64() if name in _INT_COLUMNS else pa.string() for name in COLUMNS}
        schema = pa.schema([(name, types[name]) for name in COLUMNS])
        writer = pq.ParquetWriter(handle, schema)  # an open file object, never a path
        try:
            batch: List[Dict[str, Any]] = []
            for row in self.iter_rows():
                batch.append(row)
                if len(batch) >= _ROW_GROUP:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        finally:
            writer.close()


def run_listing(
    api: Any,
    job: ListingJob,
    path: str,
    progress: Optional[PageProgress] = None,
    drift: Optional[Drift] = None,
) -> ListingResult:
    """List ``job`` page by page into ``path`` (resuming a listing left unfinished there).

    Raises the API's errors after keeping the pages listed so far; InvalidResponseError when the
    server sends back a cursor this listing already asked for, or endless empty pages (the one
    listing loop, ``civitai/pages.PageLoop``). ``drift`` counts what Civitai answered
    differently from what is expected (``civitai/drift.py``).
    """
    out = ListingFile(path)
    if out.fmt == "parquet":
        require_pyarrow()
    out.check_writable(job.overwrite)
    state = out.load_state(job.key)
    result = ListingResult(out.path, resumed=state is not None)
    if state is None:
        state = _State(job.key)
        out.drop_rows()  # rows without a state: no resume is possible
        seen: Set[Any] = set()
    else:
        seen = out.seen_ids(state)
        logger.info("resuming the listing into %s after %d row(s)", out.path, state.rows)

    def fetch(cursor: Optional[str]) -> ImagePage:
        size = MAX_PAGE_SIZE if not job.limit else min(MAX_PAGE_SIZE, job.limit - state.rows)
        return api.get_image_page(
            job.params,
            cursor=cursor,
            limit=size if job.keep is None else MAX_PAGE_SIZE,
            nsfw_levels=list(job.levels),
            **({"source": job.source} if job.source is not None else {}),
        )

    def full() -> bool:
        return job.limit > 0 and state.rows >= job.limit

    watch = drift.watch(job.levels, job.params, job.source) if drift is not None else None
    pages = PageLoop(
        fetch, job.key, start=state.cursor, asked=state.requested, stopped=full, watch=watch
    )
    for page in pages:
        result.pages += 1
        rows: List[Dict[str, Any]] = []
        for item in page.items:
            ident = item.id if item.id is not None else item.url
            if ident in seen:
                continue
            if item.type == "video" and not job.include_videos:
                state.videos_skipped += 1
                continue
            if job.keep is not None and not job.keep(item):
                result.filtered += 1
                continue
            if job.limit and state.rows + len(rows) >= job.limit:
                break
            seen.add(ident)
            row = listing_row(item, job.context)
            if job.clean_captions:
                row["caption"] = clean_caption(row["caption"])
            rows.append(row)
        state.bytes = out.append(rows)
        state.rows += len(rows)
        state.cursor = page.next_cursor
        state.requested = [c for c in pages.asked if c is not None][-1000:]
        out.save_state(state)
        if progress is not None:
            progress(state.rows, state.videos_skipped)
    out.finish()
    result.rows, result.videos_skipped, result.complete = state.rows, state.videos_skipped, True
    return result


def job_key(kind: str, value: Any, levels: Sequence[str], extra: Mapping[str, Any]) -> str:
    """The resume key of a listing: what, which levels, and the options that change its rows."""
    described = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    options = ",".join(f"{k}={v}" for k, v in sorted(extra.items()))
    return f"{kind}:{described}|nsfw={','.join(levels)}|{options}"
