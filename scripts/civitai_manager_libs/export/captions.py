"""A prompt made fit for training: the caption a LoRA trainer reads beside each image.

:func:`clean_caption` removes what only steers WebUI (extra-network tags such as ``<lora:x:0.8>``,
``<hypernet:y>``, ``<lyco:z>``; ``BREAK``), reduces attention syntax to its words (``(word:1.2)``,
``((word))``, ``[word]``, prompt editing ``[from:to:0.5]`` -> ``to``, alternation ``[a|b]`` ->
``a``), turns escaped brackets (``\\(``) into plain ones, drops repeated tags (case-insensitive,
first kept) and normalises whitespace; tags are joined with ``", "``. A prefix (a trigger word)
comes first, once.

:func:`build_caption` picks the caption's source (``--caption-source``): the prompt (the
default), Civitai's tags for the image (``tags`` in its record, kept when the download asked
with ``--with-tags``), or both (the prompt's tags, then the Civitai tags it lacks).
"""

from __future__ import annotations

import re
from typing import Any, List, Optional

_EXTRA_NETWORK = re.compile(r"<\s*[A-Za-z_][\w-]*\s*:[^<>]*>")
_BREAK = re.compile(r"\bBREAK\b")
_WEIGHT = re.compile(r"\s*:\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*$")
_INNER_ROUND = re.compile(r"\(([^()\[\]]*)\)")
_INNER_SQUARE = re.compile(r"\[([^()\[\]]*)\]")
_EDIT_STEP = re.compile(r"^(?:(.*?):)?(.*?):\s*[+-]?(?:\d+\.?\d*|\.\d+)\s*$", re.DOTALL)
_SPACES = re.compile(r"\s+")
# Escaped brackets are literal text in A1111 prompts: park them while the syntax is reduced.
_ESCAPES = {"\\(": "\x00", "\\)": "\x01", "\\[": "\x02", "\\]": "\x03"}
_RESTORE = {"\x00": "(", "\x01": ")", "\x02": "[", "\x03": "]"}


def _round(match: "re.Match[str]") -> str:
    """``(words:1.2)`` / ``(words)`` -> ``words``."""
    return _WEIGHT.sub("", match.group(1))


def _square(match: "re.Match[str]") -> str:
    """``[words]`` -> ``words``; ``[from:to:n]`` / ``[to:n]`` -> ``to``; ``[a|b]`` -> ``a``."""
    inner = match.group(1)
    edit = _EDIT_STEP.match(inner)
    if edit:
        return edit.group(2)
    if "|" in inner:
        return inner.split("|", 1)[0]
    return inner


def _reduce_attention(text: str) -> str:
    """Innermost brackets first, until none is left (unbalanced ones are dropped at the end)."""
    while True:
        reduced = _INNER_SQUARE.sub(_square, _INNER_ROUND.sub(_round, text))
        if reduced == text:
            break
        text = reduced
    return re.sub(r"[()\[\]]", " ", text)


def caption_tags(prompt: Optional[str]) -> List[str]:
    """The cleaned tags of ``prompt`` in order, each once (see the module docstring)."""
    if not prompt:
        return []
    text = _EXTRA_NETWORK.sub(" ", prompt)
    text = _BREAK.sub(",", text)
    for escaped, mark in _ESCAPES.items():
        text = text.replace(escaped, mark)
    text = _reduce_attention(text)
    for mark, plain in _RESTORE.items():
        text = text.replace(mark, plain)
    tags: List[str] = []
    seen = set()
    for part in re.split(r"[,\n]", text):
        tag = _SPACES.sub(" ", part).strip(" \t:")
        key = tag.lower()
        if tag and key not in seen:
            seen.add(key)
            tags.append(tag)
    return tags


def clean_caption(prompt: Optional[str], prefix: Optional[str] = None) -> str:
    """The training caption of ``prompt``: cleaned tags joined with ``", "``, ``prefix``'s tags
    (e.g. a trigger word) first and not repeated later; ``""`` when the prompt leaves nothing:
    a prefix alone describes no image (such an image is not exported as a captioned one)."""
    body = caption_tags(prompt)
    if not body:
        return ""
    head = caption_tags(prefix)
    seen = {tag.lower() for tag in head}
    tail = [tag for tag in body if tag.lower() not in seen]
    return ", ".join(head + tail)


#: Where a caption's words come from (``export --caption-source``).
CAPTION_SOURCES = ("prompt", "tags", "both")


def tag_names(tags: Any) -> List[str]:
    """The names of a record's ``tags`` (``[{id, name}]``, or plain names), in order."""
    names: List[str] = []
    for tag in tags if isinstance(tags, list) else ():
        name = tag.get("name") if isinstance(tag, dict) else tag
        if isinstance(name, str) and name.strip():
            names.append(_SPACES.sub(" ", name).strip())
    return names


def build_caption(
    prompt: Optional[str], tags: Any, source: str = "prompt", prefix: Optional[str] = None
) -> str:
    """The caption of one image from ``source``: ``prompt`` (:func:`clean_caption`), ``tags``
    (the Civitai tag names) or ``both`` (the prompt's tags, then the tag names not already in
    it); ``prefix`` first, every tag once (case-insensitive). ``""`` when the source gives no
    words: a prefix alone describes no image (such an image is not exported as a captioned one)."""
    if source not in CAPTION_SOURCES:
        raise ValueError(f"caption source must be one of {CAPTION_SOURCES}, not {source!r}")
    body: List[str] = []
    if source in ("prompt", "both"):
        body += caption_tags(prompt)
    if source in ("tags", "both"):
        body += tag_names(tags)
    if not body:
        return ""
    words = caption_tags(prefix) + body
    kept: List[str] = []
    seen = set()
    for word in words:
        if word.lower() not in seen:
            seen.add(word.lower())
            kept.append(word)
    return ", ".join(kept)
