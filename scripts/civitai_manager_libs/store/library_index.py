"""The search index of an output folder's archive: what made each saved image, searchable.

Two tables in the archive file (``.civitai_archive.sqlite3``), created beside ``images``:

- ``library``: one row per indexed image (``image_id`` = the images row's id). Text columns hold
  what is searched (prompt, negative prompt, checkpoint, LoRA, embedding and VAE names, the
  model and version the image was listed under, creator, tags, sampler); typed columns hold what
  is filtered on (base model, sampler, creator, created time, reactions, NSFW level, model and
  version ids). The file's path is the ``images`` row's.
- ``library_fts``: an FTS5 table over the text columns with ``content='library'`` (external
  content): it keeps only the inverted index, the text stays once, in ``library``, where
  ``highlight()`` reads it. Triggers keep it in step with ``library``, and a deleted ``images``
  row takes its ``library`` row with it.

Rows are written with the ``images`` row, in the same transaction (:func:`write`, called by
``Archive.record_images``); ``python main.py index`` (export/library.py) fills the index of
folders saved before it existed. Queries: store/library_query.py.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

#: The searched text columns, in FTS column order (``prompt`` is column 0: highlight()).
TEXT_COLUMNS: Tuple[str, ...] = (
    "prompt",
    "negative_prompt",
    "checkpoint",
    "loras",
    "embeddings",
    "vae",
    "model",
    "creator",
    "tags",
    "sampler",
)
#: The typed filter columns (besides ``creator`` and ``sampler``, which are both).
TYPED_COLUMNS: Tuple[str, ...] = (
    "base_model",
    "created_ms",
    "reactions",
    "nsfw_level",
    "model_id",
    "version_id",
)
ALL_COLUMNS = ("image_id",) + TEXT_COLUMNS + TYPED_COLUMNS


_TEXT_DEFS = ",\n    ".join(
    f"{name} TEXT COLLATE NOCASE" if name in ("creator", "sampler") else f"{name} TEXT"
    for name in TEXT_COLUMNS
)
_COLS = ", ".join(TEXT_COLUMNS)
_NEW = ", ".join(f"new.{name}" for name in TEXT_COLUMNS)
_OLD = ", ".join(f"old.{name}" for name in TEXT_COLUMNS)

_SCHEMA: Tuple[str, ...] = (
    f"""CREATE TABLE IF NOT EXISTS library (
    image_id INTEGER PRIMARY KEY,
    {_TEXT_DEFS},
    base_model TEXT COLLATE NOCASE,
    created_ms INTEGER,
    reactions INTEGER,
    nsfw_level TEXT COLLATE NOCASE,
    model_id INTEGER,
    version_id INTEGER
)""",
    "CREATE INDEX IF NOT EXISTS library_created ON library (created_ms)",
    "CREATE INDEX IF NOT EXISTS library_creator ON library (creator)",
    "CREATE INDEX IF NOT EXISTS library_base_model ON library (base_model)",
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS library_fts USING fts5 (
    {_COLS}, content='library', content_rowid='image_id',
    tokenize='unicode61 remove_diacritics 2'
)""",
    f"""CREATE TRIGGER IF NOT EXISTS library_fts_insert AFTER INSERT ON library BEGIN
    INSERT INTO library_fts (rowid, {_COLS}) VALUES (new.image_id, {_NEW});
END""",
    f"""CREATE TRIGGER IF NOT EXISTS library_fts_delete AFTER DELETE ON library BEGIN
    INSERT INTO library_fts (library_fts, rowid, {_COLS}) VALUES ('delete', old.image_id, {_OLD});
END""",
    f"""CREATE TRIGGER IF NOT EXISTS library_fts_update AFTER UPDATE ON library BEGIN
    INSERT INTO library_fts (library_fts, rowid, {_COLS}) VALUES ('delete', old.image_id, {_OLD});
    INSERT INTO library_fts (rowid, {_COLS}) VALUES (new.image_id, {_NEW});
END""",
    """CREATE TRIGGER IF NOT EXISTS library_forget AFTER DELETE ON images BEGIN
    DELETE FROM library WHERE image_id = old.image_id;
END""",
)
_INSERT = (
    f"INSERT INTO library ({', '.join(ALL_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(ALL_COLUMNS))})"
)
_REACTION_KEYS = ("likeCount", "heartCount", "laughCount", "cryCount", "dislikeCount")


# ------------------------------------------------------------------------------------ schema


def create(conn: sqlite3.Connection) -> None:
    """Create the index tables and triggers when missing (inside the caller's transaction)."""
    for statement in _SCHEMA:
        conn.execute(statement)


def drop(conn: sqlite3.Connection) -> None:
    """Remove the index (``index --rebuild`` then calls :func:`create` and fills it again)."""
    for name in ("library_fts_insert", "library_fts_delete", "library_fts_update"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("DROP TRIGGER IF EXISTS library_forget")
    conn.execute("DROP TABLE IF EXISTS library_fts")
    conn.execute("DROP TABLE IF EXISTS library")


def exists(conn: sqlite3.Connection) -> bool:
    rows = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('library', 'library_fts')"
    ).fetchone()
    return bool(rows and rows[0] == 2)


def unindexed_count(conn: sqlite3.Connection) -> int:
    """How many saved images have no index row (saved by an older version, or without their
    record). Every library row has its images row (a trigger removes it with it)."""
    images = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    indexed = conn.execute("SELECT COUNT(*) FROM library").fetchone()[0]
    return max(0, int(images) - int(indexed))


def unindexed_ids(conn: sqlite3.Connection, after: int = -1, batch: int = 1000) -> List[int]:
    """Up to ``batch`` ids of saved images without an index row, above ``after``, ascending."""
    rows = conn.execute(
        "SELECT image_id FROM images WHERE image_id > ? AND image_id NOT IN "
        "(SELECT image_id FROM library) ORDER BY image_id LIMIT ?",
        (after, batch),
    ).fetchall()
    return [int(row[0]) for row in rows]


# ------------------------------------------------------------------------------------ rows


def _text(value: Any) -> Optional[str]:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _created_ms(value: Any) -> Optional[int]:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def reactions(stats: Any) -> Optional[int]:
    """Likes, hearts, laughs, cries and dislikes summed (Civitai's reactions); None: no stats."""
    if not isinstance(stats, Mapping):
        return None
    total = 0
    for key in _REACTION_KEYS:
        value = stats.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            total += int(value)
    return total


_HUMP = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9]{2,})")


def _join(names: Iterable[Any], split_words: bool = False) -> Optional[str]:
    """Distinct names, ``" | "``-joined. ``split_words``: a file-style name (``softLight_v2``)
    also goes in as words (``soft Light_v2``), so "soft light" finds it."""
    seen: Dict[str, str] = {}
    for name in names:
        text = _text(name)
        if not text:
            continue
        forms = [text]
        if split_words:
            forms.append(_HUMP.sub(" ", text))
        for form in forms:
            if form.lower() not in seen:
                seen[form.lower()] = form
    return " | ".join(seen.values()) or None


def _stem(file_name: Any) -> Optional[str]:
    text = _text(file_name)
    return text.rsplit(".", 1)[0] if text and "." in text else text


_KINDS = {
    "checkpoint": "checkpoint",
    "model": "checkpoint",
    "lora": "loras",
    "locon": "loras",
    "lycoris": "loras",
    "lyco": "loras",
    "dora": "loras",
    "embedding": "embeddings",
    "embed": "embeddings",
    "textualinversion": "embeddings",
    "ti": "embeddings",
    "vae": "vae",
}


def _kind(value: Any) -> Optional[str]:
    return _KINDS.get(re.sub(r"[^a-z]", "", str(value or "").lower()))


def _tags(value: Any) -> List[Any]:
    if isinstance(value, str):
        return [part for part in value.split(",")]
    if not isinstance(value, list):
        return []
    return [tag.get("name") if isinstance(tag, Mapping) else tag for tag in value]


def entry(image_id: int, record: Mapping[str, Any]) -> Tuple[Any, ...]:
    """The ``library`` row of a saved image's record (the json sidecar's shape, RECORD_KEYS;
    ``tags`` when the record has them). Never raises on odd values."""
    gen = record.get("generation")
    gen = gen if isinstance(gen, Mapping) else {}
    names: Dict[str, List[Any]] = {"checkpoint": [], "loras": [], "embeddings": [], "vae": []}
    names["checkpoint"].append(gen.get("model"))
    for lora in gen.get("loras") or []:
        if isinstance(lora, Mapping):
            names["loras"].append(lora.get("name"))
    hashes = gen.get("hashes")
    if isinstance(hashes, Mapping):
        for key in hashes:
            prefix, sep, name = str(key).partition(":")
            if sep and _kind(prefix) in names:
                names[str(_kind(prefix))].append(name)
    for source in (gen.get("resources"), record.get("resources")):
        for res in source if isinstance(source, list) else []:
            if not isinstance(res, Mapping):
                continue
            kind = _kind(res.get("type"))
            if kind is None:
                continue
            names[kind].extend(
                (
                    res.get("name"),
                    res.get("model_name"),
                    res.get("version_name"),
                    _stem(res.get("file_name")),
                    res.get("local_name"),
                )
            )
    creator = _text(record.get("creator"))
    sampler = _text(gen.get("sampler"))
    return (
        int(image_id),
        _text(gen.get("prompt")),
        _text(gen.get("negative_prompt")),
        _join(names["checkpoint"], split_words=True),
        _join(names["loras"], split_words=True),
        _join(names["embeddings"], split_words=True),
        _join(names["vae"], split_words=True),
        _join((record.get("model_name"), record.get("version_name"))),
        creator,
        _join(_tags(record.get("tags"))),
        sampler,
        _text(record.get("base_model")),
        _created_ms(record.get("created_at")),
        reactions(record.get("stats")),
        _text(record.get("nsfw_level")),
        _int(record.get("model_id")),
        _int(record.get("version_id")),
    )


def write(conn: sqlite3.Connection, rows: Sequence[Tuple[Any, ...]]) -> int:
    """Insert or replace index rows (from :func:`entry`) inside the caller's transaction."""
    if not rows:
        return 0
    conn.executemany("DELETE FROM library WHERE image_id = ?", [(row[0],) for row in rows])
    conn.executemany(_INSERT, rows)
    return len(rows)
