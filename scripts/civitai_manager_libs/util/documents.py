"""The one reader of untrusted documents: API answers, sidecars, settings, resume states, cached
look-ups.

:func:`read_document` takes bytes, text or a binary file and gives the JSON value, or raises
:class:`DocumentError` saying why in a few words (the caller turns that into one skipped item or
one error line, never a traceback):

* **bounded size**: at most ``max_bytes`` are read (a file is read ``max_bytes + 1`` bytes at a
  time, so ``/dev/zero`` or a FIFO cannot make it hang or fill the memory);
* **bounded depth**: a document nested deeper than ``max_depth`` is refused (measured without
  recursion, :mod:`.json_depth`); one nested past what Python's decoder can take is refused too,
  or, with ``prune_depth``, decoded with the deep containers cut to ``null``;
* **finite numbers**: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's decoder accepts) are
  refused;
* **text**: the bytes must be UTF-8 (a BOM is allowed); a lone surrogate written as an escape
  (``"\\ud800"``), which no file name, database or UTF-8 file can hold, becomes ``?``.

Typed fields are checked by the reader of each kind of document (``typed_text``,
``finite_number`` help), after this; nothing is cached before it passed both.
"""

from __future__ import annotations

import json
import math
import re
from typing import IO, Any, List, Optional, Union

from .json_depth import depth_of, loads_pruned

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

Source = Union[bytes, bytearray, str, IO[bytes]]


# a \uD800-\uDFFF escape: maybe half of a pair (fine), maybe alone (fixed after decoding)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class DocumentError(ValueError):
    """A document that is not what it claims: too large, too deep, not JSON, not finite."""


class NotFiniteError(DocumentError):
    """The document holds NaN or Infinity (a number JSON does not have)."""


def _not_finite(name: str) -> Any:
    raise NotFiniteError(f"it holds {name}, a number that is not finite")


def _read_text(source: Source, what: str, max_bytes: int) -> str:
    if isinstance(source, str):
        if len(source) > max_bytes:
            raise DocumentError(f"the {what} is larger than {max_bytes // 1024} KB")
        return source
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = source.read(max_bytes + 1)
        if not isinstance(data, bytes):
            data = str(data).encode("utf-8")
    if len(data) > max_bytes:
        raise DocumentError(f"the {what} is larger than {max_bytes // 1024} KB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError(f"the {what} is not UTF-8 text") from None


def read_document(
    source: Source,
    *,
    what: str = "document",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: Optional[int] = DEFAULT_MAX_DEPTH,
    prune_depth: Optional[int] = None,
) -> Any:
    """The JSON value of ``source`` after the checks of the module docstring; DocumentError
    (a sentence naming ``what``) otherwise."""
    text = _read_text(source, what, max_bytes)
    try:
        try:
            value = json.loads(text, parse_constant=_not_finite)
        except RecursionError:
            if prune_depth is None:
                raise DocumentError(
                    f"the {what} is nested far deeper than any real one (thousands of levels)"
                ) from None
            value = loads_pruned(text, prune_depth, parse_constant=_not_finite)
    except NotFiniteError as exc:
        raise NotFiniteError(f"the {what}: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, too many digits in a number
        raise DocumentError(f"the {what} is not valid JSON ({exc})") from None
    if max_depth is not None and depth_of(value, max_depth) > max_depth:
        raise DocumentError(f"the {what} is nested deeper than {max_depth} levels")
    if _SURROGATE_ESCAPE.search(text):
        value = _without_lone_surrogates(value)
    return value


def _clean_text(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with every string (keys too) that holds a lone surrogate cleaned, in place,
    without recursion."""
    if isinstance(value, str):
        return _clean_text(value)
    stack: List[Any] = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key in list(current):
                item = current[key]
                clean_key = _clean_text(key) if isinstance(key, str) else key
                if isinstance(item, str):
                    item = _clean_text(item)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
                if clean_key is not key:
                    del current[key]
                current[clean_key] = item
        elif isinstance(current, list):
            for index, item in enumerate(current):
                if isinstance(item, str):
                    current[index] = _clean_text(item)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
    return value


def typed_text(value: Any) -> Optional[str]:
    """``value`` when it is text, else None (a number or a list where a name belongs)."""
    return value if isinstance(value, str) else None


def finite_number(value: Any) -> Optional[float]:
    """``value`` as a float when it is a finite, non-negative number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None
