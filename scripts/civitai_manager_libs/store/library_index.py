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
``Archive.record_images``); ``python main.py index`` (export/library_build.py) fills the index
of folders saved before it existed. Queries are FTS5 query syntax (phrases, ``OR``, ``NOT``,
prefix ``neo*``, column filters such as ``loras:soft``), plus ``-word`` for NOT and plain words
with punctuation (``sci-fi``, ``(masterpiece:1.2)``) taken as phrases (:func:`match_expression`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..errors import InvalidQueryError

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

#: A query matching more images than this, asked for fewer, ranks (bm25) only its newest this many
#: (the highest image ids: Civitai's ids grow with time). bm25 costs a few microseconds per match,
#: so a word in every third prompt of 100,000 would take ~150 ms to rank in full; the window keeps
#: any query under 50 ms. Asking for this many results or more (``--limit 0``) ranks them all.
RANK_WINDOW = 1000

MARK_OPEN = "\x02"  # highlight() brackets: control characters no prompt holds; shells restyle them
MARK_CLOSE = "\x03"

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


class SearchSyntaxError(InvalidQueryError):
    """A search query FTS5 cannot read (the message quotes SQLite's reason)."""


class NoIndexError(InvalidQueryError):
    """The archive has no search index yet (written by a version without one, read-only)."""


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


# ------------------------------------------------------------------------------------ queries

_TOKEN = re.compile(r'\s+|"(?:[^"]|"")*"?|[(){}]|[^\s(){}"]+')
_BARE = re.compile(r"[A-Za-z0-9_\u0080-\U0010ffff]+")
_OPERATORS = ("AND", "OR", "NOT", "NEAR")


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _word(token: str) -> str:
    """One bare word of a query, made valid FTS5: column filters (``loras:soft``), ``^``
    and a final ``*`` kept; a word with other characters becomes a phrase of its words."""
    head, sep, rest = token.partition(":")
    if sep and head.lstrip("-") in TEXT_COLUMNS:
        return f"{head} : {_word(rest)}" if rest else f"{head} :"
    caret = "^" if token.startswith("^") else ""
    star = "*" if token.endswith("*") and len(token) > 1 else ""
    core = token[len(caret) : len(token) - len(star)]
    if _BARE.fullmatch(core) or core in _OPERATORS:
        return caret + core + star
    if not _BARE.search(core):
        return ""  # nothing to search in it (a comma, a "+")
    return caret + _phrase(core) + (" " + star if star else "")


_NOT_OPERAND = ("AND", "OR", "NOT", "NEAR", "(", ")", "{", "}", ":", "*", "^")


def _needs_and(left: str, right: str, braces: int) -> bool:
    """FTS5 ANDs adjacent phrases itself, not a phrase and a group: ``neon (a OR b)``."""
    if braces or left in _NOT_OPERAND[:5] or left.endswith(":") or left == "{":
        return False
    if right == "(":
        return True
    return left == ")" and right not in _NOT_OPERAND


def match_expression(text: str) -> Tuple[str, List[str]]:
    """``(positive FTS5 expression, [negated expressions])`` of what a user typed.

    FTS5 syntax passes through; ``-word`` / ``-"a phrase"`` at the top level are taken out as
    negations (FTS5 has only the binary ``NOT``); words with punctuation become phrases; an AND
    is put where FTS5 wants one written (before a group). Bad syntax is left for SQLite to
    refuse. A query using ``NEAR(...)`` passes through unchanged.
    """
    if "NEAR(" in (text or "") or "NEAR (" in (text or ""):
        return text.strip(), []
    parts: List[str] = []
    negated: List[str] = []
    depth = braces = 0
    pending_not = False
    for token in _TOKEN.findall(text or ""):
        if token.isspace():
            continue
        if token in ("(", "{"):
            depth += 1
            braces += token == "{"
        elif token in (")", "}"):
            depth -= 1
            braces -= token == "}"
        if token.startswith('"') or token in ("(", ")", "{", "}", ":", "*"):
            piece = token
        elif depth == 0 and token.startswith("-") and ":" not in token:
            if token == "-":
                pending_not = True
                continue
            piece = _word(token[1:])
            if piece:
                negated.append(piece)
            continue
        else:
            piece = token if braces else _word(token)
        if not piece:
            continue
        if pending_not:
            negated.append(piece)
            pending_not = False
            continue
        if parts and _needs_and(parts[-1], piece, braces if piece != "}" else 1):
            parts.append("AND")
        parts.append(piece)
    return " ".join(parts), negated


@dataclass(frozen=True)
class LibraryQuery:
    """A search: FTS5 text and filters. Empty fields let everything through."""

    text: str = ""
    loras: Tuple[str, ...] = ()
    models: Tuple[str, ...] = ()  # names (checkpoint, model, version) or ids (model, version)
    tags: Tuple[str, ...] = ()
    base_models: Tuple[str, ...] = ()
    samplers: Tuple[str, ...] = ()
    creators: Tuple[str, ...] = ()
    nsfw_levels: Tuple[str, ...] = ()
    since_ms: Optional[int] = None
    min_reactions: int = 0


@dataclass
class Hit:
    """One image found: its id, file, the marked prompt (MARK_OPEN / MARK_CLOSE around matched
    words) and the facts a result line shows. ``rank``: FTS5's bm25 (lower is better), or None
    when the query had no words (then newest first)."""

    image_id: int
    path: Optional[str]
    creator: Optional[str]
    prompt: Optional[str]
    marked: Optional[str]
    rank: Optional[float]
    values: Dict[str, Any] = field(default_factory=dict)


def _fts_parts(query: LibraryQuery) -> Tuple[str, List[str]]:
    positive, negated = match_expression(query.text)
    clauses: List[str] = []
    for column, values in (("loras", query.loras), ("tags", query.tags)):
        clauses.extend(f"{column} : {_phrase(value)}" for value in values)
    names = [m for m in query.models if not str(m).strip().isdigit()]
    if names:
        either = " OR ".join(f"{{checkpoint model}} : {_phrase(name)}" for name in names)
        clauses.append(f"({either})")
    if positive:  # bare when alone: SQLite's syntax message then quotes only what was typed
        clauses.insert(0, f"({positive})" if clauses else positive)
    return " AND ".join(clauses), negated


def ranked(query: LibraryQuery) -> bool:
    """Whether ``query`` has words to rank by (else results come newest first)."""
    return bool(_fts_parts(query)[0])


def _filters(query: LibraryQuery) -> Tuple[List[str], List[Any]]:
    where: List[str] = []
    params: List[Any] = []

    def among(column: str, values: Sequence[Any]) -> None:
        if values:
            # with a creator, that index is the narrow one: "+" keeps SQLite off the others
            plus = "+" if query.creators and column != "creator" else ""
            where.append(f"{plus}l.{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)

    among("base_model", query.base_models)
    among("sampler", query.samplers)
    among("creator", query.creators)
    among("nsfw_level", query.nsfw_levels)
    ids = [int(m) for m in query.models if str(m).strip().isdigit()]
    if ids:
        marks = ", ".join("?" * len(ids))
        where.append(f"(l.model_id IN ({marks}) OR l.version_id IN ({marks}))")
        params.extend(ids + ids)
    if query.since_ms is not None:
        where.append("l.created_ms >= ?")
        params.append(int(query.since_ms))
    if query.min_reactions:
        where.append("COALESCE(l.reactions, 0) >= ?")
        params.append(int(query.min_reactions))
    return where, params


_RESULT = (
    "l.image_id, i.path, l.creator, l.prompt, l.base_model, l.sampler, l.created_ms, "
    "l.reactions, l.nsfw_level, l.model_id, l.version_id, l.model, l.loras, l.checkpoint"
)


def _ranked_matches(
    conn: sqlite3.Connection,
    expression: str,
    typed: str,
    params: List[Any],
    unwanted: str,
    limit: int,
) -> List[Any]:
    """``(rowid, rank)`` of the best matches, FTS5 as the outer loop (see RANK_WINDOW).

    The filters' rows and the negated words' matches are sets built once per statement
    (``rowid + 0``: not a constraint FTS5 would be asked once per id) that each match is checked
    against. Without them FTS5 sorts by its ``rank`` itself; with them bm25 is computed only for
    the matches they keep (FTS5's own ``ORDER BY rank`` would rank every match first).
    """
    match = "FROM library_fts f WHERE library_fts MATCH ?"
    args: List[Any] = [expression]
    if typed:
        match += f" AND (f.rowid + 0) IN (SELECT l.image_id FROM library l WHERE 1{typed})"
        args += params
    if unwanted:
        match += " AND (f.rowid + 0) NOT IN "
        match += "(SELECT rowid FROM library_fts WHERE library_fts MATCH ?)"
        args.append(unwanted)
    window, bound = "", None
    if limit < RANK_WINDOW:  # bm25 for the newest matches only
        bound = conn.execute(
            f"SELECT f.rowid {match} ORDER BY f.rowid DESC LIMIT 1 OFFSET ?",
            args + [RANK_WINDOW - 1],
        ).fetchone()
        window = " AND f.rowid >= ?" if bound is not None else ""
    order = "bm25(library_fts)" if typed or unwanted else "f.rank"
    return conn.execute(
        f"SELECT f.rowid, {order} AS score {match}{window} ORDER BY score LIMIT ?",
        args + ([bound[0]] if bound is not None else []) + [int(limit)],
    ).fetchall()


def _rows_of(conn: sqlite3.Connection, ids: List[int]) -> List[Any]:
    rows: List[Any] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows.extend(
            conn.execute(
                f"SELECT {_RESULT} FROM library l JOIN images i ON i.image_id = l.image_id "
                f"WHERE l.image_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
        )
    return rows


def _syntax_error(exc: sqlite3.Error, text: str) -> Optional[SearchSyntaxError]:
    message = str(exc)
    lowered = message.lower()
    if "fts5" in lowered or "syntax error" in lowered or "no such column" in lowered:
        return SearchSyntaxError(
            f"cannot read the search {text!r}: {message}. Use words, \"a phrase\", OR, NOT, "
            f"-word, prefix* or column:word (columns: {', '.join(TEXT_COLUMNS)})."
        )
    if "unterminated string" in lowered or "malformed match" in lowered:
        return SearchSyntaxError(f"cannot read the search {text!r}: {message}.")
    return None


def search(conn: sqlite3.Connection, query: LibraryQuery, limit: int = 50) -> List[Hit]:
    """The best ``limit`` images for ``query`` (bm25 order; newest first without words).

    ``SearchSyntaxError`` when FTS5 cannot read the text. Paths are as stored (relative to the
    archive's folder): the caller makes them absolute.
    """
    expression, negated = _fts_parts(query)
    where, params = _filters(query)
    typed = (" AND " + " AND ".join(where)) if where else ""
    unwanted = " OR ".join(negated)
    try:
        if expression:
            best = _ranked_matches(conn, expression, typed, params, unwanted, limit)
            rank_of = {int(row[0]): row[1] for row in best}
            rows = _rows_of(conn, list(rank_of))
            rows = [tuple(row) + (rank_of[int(row[0])],) for row in rows]
            rows.sort(key=lambda row: row[-1])
        else:
            if unwanted:
                typed += " AND l.image_id NOT IN "
                typed += "(SELECT rowid FROM library_fts WHERE library_fts MATCH ?)"
                params = params + [unwanted]
            rows = conn.execute(
                f"SELECT {_RESULT}, NULL AS rank FROM library l "
                "JOIN images i ON i.image_id = l.image_id "
                # by one creator: that creator's rows (an index) sorted, not every row by date
                f"WHERE 1{typed} ORDER BY {'+' if query.creators else ''}l.created_ms DESC, "
                "l.image_id DESC LIMIT ?",
                params + [int(limit)],
            ).fetchall()
        marks: Dict[int, str] = {}
        positive = match_expression(query.text)[0]
        if positive and rows:
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                # one pass over the matches between the first and last id (an IN on rowid
                # would run the query once per id: a prefix query costs ~1 ms each time)
                for rowid, marked in conn.execute(
                    "SELECT rowid, highlight(library_fts, 0, ?, ?) FROM library_fts "
                    "WHERE library_fts MATCH ? AND rowid BETWEEN ? AND ? "
                    f"AND (rowid + 0) IN ({', '.join('?' * len(chunk))})",
                    [MARK_OPEN, MARK_CLOSE, positive, min(chunk), max(chunk)] + chunk,
                ):
                    marks[int(rowid)] = marked
    except sqlite3.OperationalError as exc:
        problem = _syntax_error(exc, query.text)
        if problem is None:
            raise
        raise problem from None
    hits = []
    for row in rows:
        values = dict(
            zip(
                (
                    "base_model",
                    "sampler",
                    "created_ms",
                    "reactions",
                    "nsfw_level",
                    "model_id",
                    "version_id",
                    "model",
                    "loras",
                    "checkpoint",
                ),
                tuple(row[4:14]),
            )
        )
        hits.append(
            Hit(
                image_id=int(row[0]),
                path=row[1],
                creator=row[2],
                prompt=row[3],
                marked=marks.get(int(row[0]), row[3]),
                rank=row[14],
                values=values,
            )
        )
    return hits
