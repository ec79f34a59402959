"""Nesting depth of JSON values, measured without recursion, and a decoder for answers so deeply
nested that Python's own decoder gives up with ``RecursionError``.

A hostile (or broken) server can nest one item's ``meta`` thousands of levels deep. Every
recursive walk of such a value (``json.dumps``, ``copy.deepcopy``, our own record building) then
fails with ``RecursionError`` far from where the value came in. The listing therefore measures each
item's depth here (iteratively) and skips an item nested deeper than it can use, and
:func:`loads_pruned` decodes a page whose nesting would make ``json.loads`` fail: every container
deeper than ``keep_depth`` is replaced by ``null``, so the rest of the page (the other items) still
arrives and the deep item is seen, and skipped, as too deep.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, List

# A JSON string (escapes included) or one bracket: the only tokens that change the depth.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPEN = "[{"


def depth_of(value: Any, stop_after: int) -> int:
    """The nesting depth of ``value`` (a scalar is 0, ``[]`` is 1, ``[[1]]`` is 2), counted
    without recursion; counting stops once it passes ``stop_after`` (the result is then
    ``stop_after + 1``)."""
    deepest = 0
    stack: List[Any] = [(value, 0)]
    while stack:
        current, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(current, dict):
            children = current.values()
        elif isinstance(current, (list, tuple)):
            children = current
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return stop_after + 1
        stack.extend((child, depth) for child in children)
    return deepest


def loads_pruned(text: str, keep_depth: int, **json_options: Any) -> Any:
    """``json.loads(text)`` with every array or object nested deeper than ``keep_depth`` replaced
    by ``null``. Linear in the length of ``text``; raises ``ValueError`` for text that is not
    JSON. ``json_options`` go to ``json.loads`` (``parse_constant``...)."""
    pieces: List[str] = []
    depth = 0
    kept_until = 0  # text[:kept_until] is already in ``pieces``
    skip_from = -1  # start of the container being dropped (-1: none)
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in _OPEN:
            depth += 1
            if depth == keep_depth + 1 and skip_from < 0:
                skip_from = match.start()
        else:
            if depth == keep_depth + 1 and skip_from >= 0:
                pieces.append(text[kept_until:skip_from])
                pieces.append("null")
                kept_until = match.end()
                skip_from = -1
            depth -= 1
            if depth < 0:
                raise ValueError("unbalanced brackets in JSON text")
    pieces.append(text[kept_until:])
    return json.loads("".join(pieces), **json_options)
