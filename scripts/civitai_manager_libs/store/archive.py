"""The record of what was downloaded: a SQLite file (WAL) of images, tasks and crawl checkpoints.

One :class:`Archive` per output folder, at ``<output_path>/.civitai_archive.sqlite3``
(:func:`archive_path`). It is safe to share between the download engine's worker threads (one
connection guarded by a lock) and between processes (SQLite locking, 30 s busy timeout).

Every write is its own committed transaction (batches are one transaction), and the journal is in
WAL mode with ``synchronous=NORMAL``: a process killed at any moment (``kill -9``) leaves a readable
database holding every write that returned. (A power cut may lose the last few commits, never the
file.)

Tables (store/archive_schema.py): ``images`` (one row per saved image: id, uuid, url, sha256,
path, metadata path, size, time; store/archive_images.py), ``tasks`` (every task with its latest
state; store/archive_tasks.py), ``checkpoints`` (query key -> next cursor), ``run_options`` and
``names`` (store/archive_state.py), and ``schema_version``; ``library`` / ``library_fts``, the
search index (store/library_index.py), are written in the image row's transaction, and
``civitai_lookups`` / ``local_hashes`` (store/resource_cache.py) share the file.

This module puts the parts together (the connection: store/archive_db.py) and keeps every public
name importable from here.

Paths inside the archive's folder (the output root) are stored relative to it and read back as
absolute paths under the folder the archive is in now, so a copied or moved output folder never
points at the old one (older archives with absolute paths are rewritten when opened for writing,
and read the same way meanwhile). URLs are stored with their secrets masked (``?token=***``).
``Archive(path, read_only=True)`` never writes (``tasks`` on a read-only folder).
"""

from __future__ import annotations

from typing import Any, List, Set

from .archive_db import archive_path  # noqa: F401  (the archive of a folder)
from .archive_images import ImageRows
from .archive_state import CrawlState
from .archive_tasks import TaskRecord, TaskRows


class Archive(ImageRows, TaskRows, CrawlState):
    """See the module docstring. Use as a context manager or call :meth:`close`."""

    def failed_tasks(self) -> List[TaskRecord]:
        """The images still failing: the newest failed task of each image not saved since (a
        later retry that saved it settles the failure), newest first."""
        rows = self.tasks(status="failed")
        saved = self.known_ids(r.image_id for r in rows if r.image_id is not None)
        seen: Set[Any] = set()
        still = []
        for row in rows:
            key = row.image_id if row.image_id is not None else ("task", row.task_id)
            if row.image_id in saved or key in seen:
                continue
            seen.add(key)
            still.append(row)
        return still
