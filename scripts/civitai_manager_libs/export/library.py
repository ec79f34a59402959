"""Search output folders (:func:`search_folders`: the CLI's ``search`` and the tab's Library),
and fill their search index from what is on disk (:func:`build_index`: ``python main.py index``).

Folders saved before the index existed (or images saved without their record) have archive rows
but no index rows. Each such image's record is read as an export reads it (export/source.py: the
json sidecar, else the txt sidecar, else the infotext embedded in the file) and written to the
index (store/library_index.py) in batches, one transaction each. ``rebuild`` drops the index and
builds it again from every archive row. Nothing here touches the network.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..store import library_index, library_query
from ..store.archive import Archive, archive_path
from ..store.library_query import Hit, LibraryQuery, NoIndexError
from .source import _inside, load_record

logger = logging.getLogger(__name__)

BATCH = 500

Progress = Callable[[int, int], None]


@dataclass
class IndexSummary:
    folder: str
    indexed: int = 0
    already: int = 0
    missing: int = 0
    outside: int = 0
    total: int = 0

    def line(self, seconds: float) -> str:
        extra = []
        if self.already:
            extra.append(f"{self.already} already indexed")
        if self.missing:
            extra.append(f"{self.missing} file(s) missing")
        if self.outside:
            extra.append(f"{self.outside} outside the folder")
        more = f" ({', '.join(extra)})" if extra else ""
        return f"indexed {self.indexed} image(s) in {self.folder}{more} in {seconds:.1f} s"


def _pending(archive: Archive, rebuild: bool) -> List[int]:
    with archive.reading() as conn:
        if rebuild:
            return [int(r[0]) for r in conn.execute("SELECT image_id FROM images ORDER BY 1")]
        ids: List[int] = []
        after = -1
        while True:
            batch = library_index.unindexed_ids(conn, after, 5000)
            if not batch:
                return ids
            ids.extend(batch)
            after = batch[-1]


def build_index(
    archive: Archive, folder: str, rebuild: bool = False, progress: Optional[Progress] = None
) -> IndexSummary:
    """Index the saved images of ``folder`` that are not yet indexed (all of them: ``rebuild``)."""
    root = os.path.abspath(folder)
    summary = IndexSummary(folder=root)
    if rebuild:
        with archive.writing() as conn:
            library_index.drop(conn)
            library_index.create(conn)
    with archive.reading() as conn:
        summary.total = int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
    pending = _pending(archive, rebuild)
    summary.already = summary.total - len(pending)
    rows: List[Tuple[Any, ...]] = []
    done = 0
    for start in range(0, len(pending), BATCH):
        for image_id in pending[start : start + BATCH]:
            done += 1
            row = archive.get_image(image_id)
            path = row.path if row is not None else None
            if row is None or not path:
                summary.missing += 1
                continue
            if not _inside(root, path):
                logger.warning("image %s: its file %s is outside %s", image_id, path, root)
                summary.outside += 1
                continue
            if not os.path.isfile(path):
                logger.debug("image %s: file missing (%s)", image_id, path)
                summary.missing += 1
                continue
            rows.append(library_index.entry(image_id, load_record(row, path, root)))
        if rows:
            with archive.writing() as conn:
                summary.indexed += library_index.write(conn, rows)
            rows = []
        if progress is not None:
            progress(done, len(pending))
    return summary


def search_folders(
    folders: Sequence[str], query: LibraryQuery, limit: int
) -> Tuple[List[Tuple[str, Hit]], List[str]]:
    """The best ``limit`` hits over every folder, merged by rank (newest first when the query
    has no words), each with its folder; and one warning per folder not (fully) indexed.
    ``NoIndexError`` when no folder has an index."""
    found: List[Tuple[str, Hit]] = []
    warnings: List[str] = []
    indexed = 0
    for folder in folders:
        with Archive(archive_path(folder), read_only=True) as archive:
            with archive.reading() as conn:
                if not library_index.exists(conn):
                    warnings.append(
                        f"{folder} has no search index yet (saved by an older version); "
                        f"run: python main.py index --output {folder}"
                    )
                    continue
                indexed += 1
                behind = library_index.unindexed_count(conn)
                hits = library_query.search(conn, query, limit or 1_000_000_000)
        if behind:
            warnings.append(
                f"{behind} image(s) in {folder} are not in the search index yet; "
                f"run: python main.py index --output {folder}"
            )
        for hit in hits:
            if hit.path and not os.path.isabs(hit.path):
                hit.path = os.path.join(folder, hit.path)
            found.append((folder, hit))
    if not indexed:
        raise NoIndexError(" ".join(warnings))
    if library_query.ranked(query):
        ordered = sorted(found, key=lambda pair: pair[1].rank or 0.0)
    else:
        ordered = sorted(
            found,
            key=lambda pair: (pair[1].values.get("created_ms") or 0, pair[1].image_id),
            reverse=True,
        )
    return (ordered[:limit] if limit else ordered), warnings
