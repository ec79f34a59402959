"""Path templates for saved images: every field sanitized, nothing ever lands outside the root.

``PathTemplate("{model_id}/{creator}/{id}").render(fields)`` gives a relative path **without
extension**. Any field may carry a Python format spec (``{id:>010}``, ``{model_name:.40}``,
``{date:%Y-%m}``: ``date`` is ``created_at`` as a date, ``2026-01-02`` without a spec); a spec
that does not fit the field, pads past :data:`MAX_FORMATTED` characters or holds a folder
separator is a TemplateError when the template is made; the formatted value is sanitized as any
other. (The transport adds the real extension.) Each segment of the result is a valid file name on
Linux, macOS and Windows: no separators, no ``..``, no control or Windows-forbidden characters
(``<>:"|?*``), no trailing dots or spaces, no leading dots (no hidden files), no Windows reserved
device names (``con``, ``nul``, ``com1``... also with an extension such as ``con.txt``), Unicode in
NFC, and at most :data:`MAX_SEGMENT_BYTES` bytes of UTF-8 (never splitting a character).
A missing value renders as ``unknown``.

``safe_join(root, relative)`` resolves the result (symlinks included) and refuses anything that is
not strictly inside ``root``.
"""

from __future__ import annotations

import datetime as _dt
import ntpath
import os
import re
import shutil
import stat
import string
import tempfile
import unicodedata
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import OutputPathError, TemplateError

FIELDS: Tuple[str, ...] = (
    "model_id",
    "model_name",
    "version_id",
    "version_name",
    "id",
    "image_id",
    "creator",
    "nsfw_level",
    "post_id",
    "post_title",
    "created_at",
    "date",
    "base_model",
    "type",
    "width",
    "height",
    "collection_id",
    "collection_name",
    "tag",
)
#: Numeric fields (a format spec such as ``{id:>010}`` formats them as numbers).
NUMBER_FIELDS = frozenset(
    ("model_id", "version_id", "id", "image_id", "post_id", "width", "height", "collection_id")
)
#: The longest text one field may format to (``{id:>99999999}`` would fill the memory).
MAX_FORMATTED = 200
ALIASES: Dict[str, str] = {"image_id": "id", "id": "image_id"}
MISSING_VALUE = "unknown"
#: The archive's file in an output folder (history, checkpoints, names); see store.archive.
ARCHIVE_NAME = ".civitai_archive.sqlite3"
MAX_SEGMENT_BYTES = 120

_FORBIDDEN = frozenset('<>:"/\\|?*')
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", "conin$", "conout$"]
    + [f"{base}{n}" for base in ("com", "lpt") for n in list("123456789") + ["¹", "²", "³"]]
)
_SEPARATORS = re.compile(r"[\\/]")


def _clean_chars(text: str) -> str:
    """NFC; separators, control, surrogate and forbidden characters become ``_``."""
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cf":
            continue  # invisible format characters (bidi overrides, zero-width): dropped
        if ch in _FORBIDDEN or category in ("Cc", "Cs", "Zl", "Zp"):
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _cap_bytes(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    # errors="ignore" drops a trailing partial multi-byte character instead of splitting it.
    return encoded[:limit].decode("utf-8", errors="ignore")


def is_reserved_name(segment: str) -> bool:
    """True for a name Windows reserves for a device (``CON``, ``nul.txt``, ``COM1``...)."""
    return segment.split(".", 1)[0].rstrip(" ").lower() in _RESERVED


def sanitize_segment(text: str, max_bytes: int = MAX_SEGMENT_BYTES) -> str:
    """One safe path segment (file or folder name) from arbitrary text; never empty."""
    segment = _clean_chars(text).strip()
    segment = segment.lstrip(". ")  # no hidden files, no "." or ".."
    # Windows drops trailing dots and spaces; strip them after the cut too.
    segment = _cap_bytes(segment, max_bytes).rstrip(". ")
    if is_reserved_name(segment):
        segment = "_" + _cap_bytes(segment, max_bytes - 1).rstrip(". ")
    return segment or MISSING_VALUE


def sanitize_value(value: Any) -> str:
    """A field value as text that cannot add a path level; ``unknown`` when missing."""
    if value is None:
        return MISSING_VALUE
    text = _clean_chars(str(value)).strip()
    if not text.strip(". _"):
        return MISSING_VALUE  # "", "..", "/" and the like carry no name
    return text


def _split_template(template: str) -> List[str]:
    return _SEPARATORS.split(template)


class PathTemplate:
    """A validated template such as ``{model_id}/{id}``; see the module docstring for the rules."""

    def __init__(self, template: str):
        if not isinstance(template, str):
            raise TemplateError(
                f"A path template must be text such as '{{model_id}}/{{id}}', "
                f"got {type(template).__name__}."
            )
        stripped = template.strip()
        if not stripped:
            raise TemplateError("The path template is empty; use fields such as '{model_id}/{id}'.")
        drive, _ = ntpath.splitdrive(stripped)
        if stripped[0] in "/\\" or drive or stripped.startswith("~"):
            raise TemplateError(
                f"The path template {template!r} must be relative to the output folder "
                "(remove the leading '/', '\\', '~' or drive letter)."
            )
        _no_separator_in_specs(stripped, template)
        segments = _split_template(stripped)
        if any(seg.strip() in ("..", ".") for seg in segments):
            raise TemplateError(
                f"The path template {template!r} must not contain '.' or '..' folders."
            )
        if any(not seg.strip() for seg in segments):
            raise TemplateError(
                f"The path template {template!r} has an empty folder name or ends with a "
                "separator; it must end with a file name such as '{id}'."
            )
        parsed = []
        used: List[str] = []
        formatter = string.Formatter()
        for seg in segments:
            try:
                parts = list(formatter.parse(seg))
            except ValueError as exc:
                raise TemplateError(
                    f"The path template {template!r} has unbalanced braces ({exc}); "
                    "write fields as {model_id}, and a literal brace as {{ or }}."
                ) from None
            pieces = []
            for literal, field, spec, conversion in parts:
                if field is not None:
                    if field not in FIELDS:
                        raise TemplateError(
                            f"Unknown path template field {{{field}}} in {template!r}; "
                            f"valid fields: {', '.join('{' + f + '}' for f in FIELDS)}."
                        )
                    if conversion:
                        raise TemplateError(
                            f"The path template field {{{field}!{conversion}}} in {template!r} "
                            "must not have a conversion; write it plainly or with a format spec "
                            "such as {id:>010}."
                        )
                    _check_spec(field, spec or "", template)
                    if field not in used:
                        used.append(field)
                pieces.append((literal, field, spec or ""))
            parsed.append(pieces)
        self.template = template
        self.fields: Tuple[str, ...] = tuple(used)
        self._segments = parsed

    def __repr__(self) -> str:
        return f"PathTemplate({self.template!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathTemplate) and other.template == self.template

    def __hash__(self) -> int:
        return hash(self.template)

    def render(self, fields: Any) -> str:
        """The relative path (native separators, no extension) for these field values.

        ``fields`` is a mapping of field names to values, or an ``ImageItem`` (read with
        :func:`fields_from_item`).
        """
        if not isinstance(fields, Mapping):
            fields = fields_from_item(fields)
        out = []
        for pieces in self._segments:
            text = []
            for literal, field, spec in pieces:
                text.append(literal)
                if field is not None:
                    text.append(sanitize_value(_formatted(_lookup(fields, field), spec)))
            out.append(sanitize_segment("".join(text)))
        return os.path.join(*out)


_SAMPLE_DATE = _dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc)


def _sample(field: str) -> Any:
    if field in NUMBER_FIELDS:
        return 1234
    if field == "date":
        return _SAMPLE_DATE
    return "sample text"


def _no_separator_in_specs(stripped: str, template: str) -> None:
    """A format spec holding a folder separator (``{date:%Y/%m}``) would be cut in two."""
    for match in re.finditer(r"\{[^{}]*\}", stripped.replace("{{", "").replace("}}", "")):
        field, colon, spec = match.group()[1:-1].partition(":")
        if colon and _SEPARATORS.search(spec):
            raise TemplateError(
                f"The format spec of {{{field}}} in {template!r} holds a folder separator; a "
                "value never makes folders: write one field per folder, e.g. "
                "'{date:%Y}/{date:%m}/{id}'."
            )


def _check_spec(field: str, spec: str, template: str) -> None:
    """TemplateError when ``spec`` cannot format the field's values or pads past
    :data:`MAX_FORMATTED` characters."""
    if not spec:
        return
    try:
        text = format(_sample(field), spec)
    except (ValueError, TypeError) as exc:
        kind = {"date": "a date (strftime codes such as %Y-%m)"}.get(
            field, "a number" if field in NUMBER_FIELDS else "text"
        )
        raise TemplateError(
            f"The format spec {{{field}:{spec}}} in {template!r} does not fit {kind}: {exc}."
        ) from None
    if len(text) > MAX_FORMATTED:
        raise TemplateError(
            f"The format spec {{{field}:{spec}}} in {template!r} makes {len(text)} characters; "
            f"at most {MAX_FORMATTED} are allowed in one field."
        )


def _formatted(value: Any, spec: str) -> Any:
    """``value`` formatted with ``spec`` (checked at construction); a value of another type than
    the field's (a number sent as text) is formatted as text, else kept as it is."""
    if isinstance(value, _dt.datetime) and not spec:
        return value.strftime("%Y-%m-%d")
    if value is None or value == "" or not spec:
        return value
    for candidate in (value, str(value)):
        try:
            text = format(candidate, spec)
        except (ValueError, TypeError):
            continue
        return text[: MAX_FORMATTED * 4]
    return value


def parse_date(value: Any) -> Optional[_dt.datetime]:
    """An ISO 8601 ``createdAt`` (``2024-04-04T21:17:27.499Z``) as an aware datetime (UTC), or
    None when it is not one."""
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        return None
    try:
        moment = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc)


def _lookup(fields: Mapping[str, Any], name: str) -> Optional[Any]:
    value = fields.get(name)
    if (value is None or value == "") and name in ALIASES:
        value = fields.get(ALIASES[name])
    return value


def fields_from_item(item: Any) -> Dict[str, Any]:
    """Template fields for an :class:`records.ImageItem` (or any object with the same names):
    its own fields, ``date`` (``created_at`` as a datetime, for ``{date:%Y-%m}``), the post's
    title and what the item was listed under (collection, tag) from its raw item."""
    raw = getattr(item, "raw", None)
    raw = raw if isinstance(raw, Mapping) else {}
    listed = raw.get("listedIn")
    listed = listed if isinstance(listed, Mapping) else {}
    created = getattr(item, "created_at", None)
    title = raw.get("postTitle")
    return {
        "model_id": getattr(item, "model_id", None),
        "model_name": getattr(item, "model_name", None),
        "version_id": getattr(item, "version_id", None),
        "version_name": getattr(item, "version_name", None),
        "id": getattr(item, "id", None),
        "image_id": getattr(item, "id", None),
        "creator": getattr(item, "creator", None),
        "nsfw_level": getattr(item, "nsfw_level", None),
        "post_id": getattr(item, "post_id", None),
        "post_title": title if isinstance(title, str) else None,
        "created_at": created,
        "date": parse_date(created),
        "base_model": getattr(item, "base_model", None),
        "type": getattr(item, "type", None),
        "width": getattr(item, "width", None),
        "height": getattr(item, "height", None),
        "collection_id": _plain(listed.get("collection_id")),
        "collection_name": _plain(listed.get("collection_name")),
        "tag": _plain(listed.get("tag")),
    }


def _plain(value: Any) -> Any:
    """A listing label as a scalar (a hostile list or object is no name)."""
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


def safe_join(root: str, relative: str) -> str:
    """``root/relative`` resolved; TemplateError if it is not strictly inside ``root``.

    Symlinks are resolved on both sides, so a link inside ``root`` that points elsewhere is refused.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise TemplateError("An empty relative path cannot name a file inside the output folder.")
    drive, _ = ntpath.splitdrive(relative)
    if os.path.isabs(relative) or relative[0] in "/\\" or drive:
        raise TemplateError(
            f"The path {relative!r} is absolute; only paths inside the output folder are allowed."
        )
    real_root = os.path.realpath(os.path.abspath(os.fspath(root)))
    target = os.path.realpath(os.path.join(real_root, relative))
    try:
        common = os.path.commonpath([real_root, target])
    except ValueError:  # different drives on Windows
        common = ""
    if common != real_root or target == real_root:
        raise TemplateError(
            f"The path {relative!r} leads outside the output folder {real_root}; refused."
        )
    return target


def check_output_folder(path: str) -> str:
    """Check that ``path`` is (or can become) a writable folder, leaving nothing behind.

    The folder itself, or its nearest existing parent when it does not exist yet, gets a
    temporary folder created and removed at once (a real attempt: ``os.access`` says yes to root
    on ``/proc``). Returns the absolute path; raises :class:`OutputPathError` with a sentence.
    """
    folder = os.path.abspath(os.path.expanduser(os.fspath(path)))
    probe_in = folder
    while not os.path.exists(probe_in):
        parent = os.path.dirname(probe_in)
        if parent == probe_in:
            break
        probe_in = parent
    if not os.path.isdir(probe_in):
        where = "is" if probe_in == folder else f"is under {probe_in}, which is"
        raise OutputPathError(
            f"the output folder {folder} {where} a file, not a folder; choose another --output"
        )
    try:
        probe = tempfile.mkdtemp(prefix=".civitai-write-check-", dir=probe_in)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise OutputPathError(
            f"the output folder {folder} cannot be written ({reason} in {probe_in}); "
            "choose a folder you can write to"
        ) from None
    shutil.rmtree(probe, ignore_errors=True)
    for name in (".civitai_archive.lock", ARCHIVE_NAME):  # what every run opens first
        check_own_file(os.path.join(folder, name))
    return folder


def check_own_file(path: str) -> None:
    """OutputPathError when a file the tool keeps in the output folder (its lock, its archive)
    is a symbolic link, a folder or anything but a regular file: never opened, never replaced."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputPathError(f"{path} cannot be checked ({exc.strerror or exc})") from None
    if stat.S_ISLNK(mode):
        what = "a symbolic link"
    elif stat.S_ISDIR(mode):
        what = "a folder"
    elif not stat.S_ISREG(mode):
        what = "not a regular file"
    else:
        return
    raise OutputPathError(
        f"{path} is {what}; the tool keeps its own file there and never follows or replaces "
        "what it did not make. Remove it, or choose another --output"
    )
