"""The archive's ``images`` table: one row per saved image (look-ups by id, uuid, path and
content hash; records written with their search-index rows in one transaction)."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Union

from ..util.logging_setup import redact
from ..util.media_key import media_uuid
from . import library_index
from .archive_db import ArchiveDb, _image_id, _now

_CHUNK = 500  # ids per IN (...) query, well under SQLite's variable limit


@dataclass(frozen=True)
class ArchivedImage:
    image_id: int
    url: Optional[str]
    sha256: Optional[str]
    path: Optional[str]
    metadata_path: Optional[str]
    size: Optional[int]
    downloaded_at: str
    uuid: Optional[str] = None  # the file's Civitai uuid (one file, whatever URL named it)


def _rows_in(conn: sqlite3.Connection, sql: str, values: List[Any]) -> Iterator[Any]:
    """The rows of ``sql`` (its ``IN ({marks})`` filled) over ``values``, asked in chunks."""
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        yield from conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()


class ImageRows(ArchiveDb):
    """The ``images`` methods of :class:`Archive`."""

    def _image(self, row: sqlite3.Row) -> "ArchivedImage":
        values = dict(row)
        values["path"] = self._read_path(values["path"])
        values["metadata_path"] = self._read_path(values["metadata_path"])
        return ArchivedImage(**values)

    def has_image(self, image_id: Any) -> bool:
        rows = self._query("SELECT 1 FROM images WHERE image_id = ?", (_image_id(image_id),))
        return bool(rows)

    def known_ids(self, ids: Iterable[Any]) -> Set[int]:
        """The subset of ``ids`` already in the archive (None and duplicates are ignored)."""
        wanted = sorted({_image_id(i) for i in ids if i is not None})
        with self._lock, self._guard("read"):
            sql = "SELECT image_id FROM images WHERE image_id IN ({marks})"
            return {row[0] for row in _rows_in(self._db(), sql, wanted)}

    def known_uuids(self, uuids: Iterable[Optional[str]]) -> Dict[str, int]:
        """The files of ``uuids`` already saved: uuid -> the image id they were saved as."""
        wanted = sorted({u.lower() for u in uuids if u})
        with self._lock, self._guard("read"):
            conn = self._db()
            if "uuid" not in {row[1] for row in conn.execute("PRAGMA table_info(images)")}:
                return {}  # an older archive opened read-only
            sql = "SELECT uuid, image_id FROM images WHERE uuid IN ({marks})"
            return {row[0]: row[1] for row in _rows_in(conn, sql, wanted)}

    def get_image(self, image_id: Any) -> Optional[ArchivedImage]:
        rows = self._query("SELECT * FROM images WHERE image_id = ?", (_image_id(image_id),))
        return self._image(rows[0]) if rows else None

    def image_ids_at_path(self, path: str) -> Set[int]:
        """The ids of the saved images recorded at ``path`` (normally one, or none)."""
        rows = self._query("SELECT image_id FROM images WHERE path = ?", (self._stored_path(path),))
        return {row["image_id"] for row in rows}

    def find_by_sha256(self, sha256: str) -> Optional[ArchivedImage]:
        """The first saved image with this content hash, or None."""
        if not sha256:
            return None
        rows = self._query(
            "SELECT * FROM images WHERE sha256 = ? ORDER BY downloaded_at, image_id LIMIT 1",
            (sha256.lower(),),
        )
        return self._image(rows[0]) if rows else None

    def record_image(
        self,
        image_id: Any,
        url: Optional[str] = None,
        sha256: Optional[str] = None,
        path: Optional[str] = None,
        metadata_path: Optional[str] = None,
        size: Optional[int] = None,
        downloaded_at: Optional[str] = None,
        uuid: Optional[str] = None,
        record: Optional[Mapping[str, Any]] = None,
    ) -> ArchivedImage:
        """Insert or replace the record of a saved image; returns it. ``uuid`` (default: the one
        ``url`` carries) is the file's Civitai uuid (:meth:`known_uuids`). ``record`` (the
        image's metadata record) also goes into the search index, in the same transaction."""
        saved = ArchivedImage(
            image_id=_image_id(image_id),
            url=url,
            sha256=sha256.lower() if sha256 else None,
            path=os.fspath(path) if path is not None else None,
            metadata_path=os.fspath(metadata_path) if metadata_path is not None else None,
            size=size,
            downloaded_at=downloaded_at or _now(),
            uuid=(uuid or media_uuid(url) or "").lower() or None,
        )
        self.record_images([dict(saved.__dict__, record=record)])
        return saved

    def record_images(self, records: Iterable[Union[ArchivedImage, Mapping[str, Any]]]) -> int:
        """Insert or replace many image records in one transaction; returns how many. A mapping's
        ``record`` (its metadata record) is indexed for search in the same transaction."""
        rows, indexed = [], []
        for rec in records:
            values = dict(rec) if isinstance(rec, Mapping) else rec.__dict__
            sha = values.get("sha256")
            path = values.get("path")
            meta = values.get("metadata_path")
            url = values.get("url")
            if values.get("record") is not None:
                indexed.append(library_index.entry(_image_id(values["image_id"]), values["record"]))
            rows.append(
                (
                    _image_id(values["image_id"]),
                    redact(url) if url else url,
                    sha.lower() if sha else None,
                    self._stored_path(path),
                    self._stored_path(meta),
                    values.get("size"),
                    values.get("downloaded_at") or _now(),
                    (values.get("uuid") or media_uuid(url) or "").lower() or None,
                )
            )
        with self._transaction("write to") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO images (image_id, url, sha256, path, metadata_path, size, "
                "downloaded_at, uuid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            library_index.write(conn, indexed)
        return len(rows)

    def remove_image(self, image_id: Any) -> bool:
        """Forget a saved image (the file is not touched); True when a row was removed."""
        with self._transaction("write to") as conn:
            cur = conn.execute("DELETE FROM images WHERE image_id = ?", (_image_id(image_id),))
            return cur.rowcount > 0

    def iter_images(self, batch: int = 1000) -> Iterator[ArchivedImage]:
        """Every saved image record, by image id, read in batches (memory stays flat)."""
        last = None
        while True:
            if last is None:
                rows = self._query("SELECT * FROM images ORDER BY image_id LIMIT ?", (batch,))
            else:
                rows = self._query(
                    "SELECT * FROM images WHERE image_id > ? ORDER BY image_id LIMIT ?",
                    (last, batch),
                )
            if not rows:
                return
            for row in rows:
                yield self._image(row)
            last = rows[-1]["image_id"]

    def image_count(self) -> int:
        return int(self._query("SELECT COUNT(*) FROM images")[0][0])

    def verify(self) -> List[ArchivedImage]:
        """Image records whose file is missing on disk (relative paths: from the archive folder)."""
        missing = []
        with self._lock, self._guard("read"):
            cursor = self._db().execute("SELECT * FROM images ORDER BY image_id")
            while True:
                rows = cursor.fetchmany(1000)
                if not rows:
                    break
                for row in rows:
                    rec = self._image(row)
                    path = rec.path
                    if not path or not os.path.isfile(path):
                        missing.append(rec)
        return missing
