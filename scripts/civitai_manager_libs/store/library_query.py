"""Searching the index of store/library_index.py: FTS5 query syntax, filters, ranking, marks.

Queries are FTS5 query syntax (phrases, ``OR``, ``NOT``, prefix ``neo*``, column filters such as
``loras:soft``), plus ``-word`` for NOT and plain words with punctuation (``sci-fi``,
``(masterpiece:1.2)``) taken as phrases (:func:`match_expression`). :func:`search` ranks by bm25
(newest first without words) and marks the matched words of each prompt (FTS5 ``highlight()``).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import InvalidQueryError
from .library_index import TEXT_COLUMNS

#: A query matching more images than this, asked for fewer, ranks (bm25) only its newest this many
#: (the highest image ids: Civitai's ids grow with time). bm25 costs a few microseconds per match,
#: so a word in every third prompt of 100,000 would take ~150 ms to rank in full; the window keeps
#: any query under 50 ms. Asking for this many results or more (``--limit 0``) ranks them all.
RANK_WINDOW = 1000

MARK_OPEN = "\x02"  # highlight() brackets: control characters no prompt holds; shells restyle them
MARK_CLOSE = "\x03"


class SearchSyntaxError(InvalidQueryError):
    """A search query FTS5 cannot read (the message quotes SQLite's reason)."""


class NoIndexError(InvalidQueryError):
    """The archive has no search index yet (written by a version without one, read-only)."""


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
