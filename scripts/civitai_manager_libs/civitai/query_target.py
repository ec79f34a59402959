"""What to list (:class:`Target`) and the checked values a user's query is made of: ids,
Civitai usernames, tag names, and a value shown back in a message."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from ..errors import InvalidQueryError

KINDS = (
    "model",
    "version",
    "user",
    "image",
    "filter",
    "collection",
    "post",
    "user_posts",
    "gallery",
    "reactions",
    "tag",
)
MAX_USERNAME_LENGTH = 100
MAX_ID = 2**63 - 1
DIGITS = re.compile(r"[0-9]+", re.ASCII)

#: Civitai answers 400 for a username that does not match this (letters, digits, underscore).
_USERNAME = re.compile(r"[A-Za-z0-9_]+")
#: A tag name as Civitai's links carry it (letters of any script, digits, spaces, - _ . ' & +).
_TAG = re.compile(r"[\w][\w .'&+-]{0,99}")


@dataclass(frozen=True)
class Target:
    """What to list: ``kind`` is one of model/version/user/image/filter.

    ``value`` is the id (int) for model/version/image, the username (str) for user, and the
    canonical query string for filter (stable: usable as a checkpoint key). ``version_id`` narrows a
    model link to one version. ``params`` holds a filter's validated parameters.
    """

    kind: str
    value: Any
    version_id: Optional[int] = None
    params: Optional[Dict[str, Any]] = field(default=None, compare=True, hash=False)

    def describe(self) -> str:
        """Short human wording used in messages and logs: ``model 123``, ``creator 'x'``."""
        if self.kind == "model" and self.version_id is not None:
            return f"model {self.value} (version {self.version_id})"
        if self.kind == "version":
            return f"model version {self.value}"
        if self.kind == "user":
            return f"creator '{self.value}'"
        if self.kind == "filter":
            return f"images matching {self.value}"
        if self.kind == "user_posts":
            return f"the posts of '{self.value}'"
        if self.kind == "gallery":
            return f"the gallery {self.value}"
        if self.kind == "reactions":
            return f"the images you reacted to ({self.value})"
        if self.kind == "tag":
            return f"the images of tag '{self.value}'"
        return f"{self.kind} {self.value}"


def validate_username(name: str) -> str:
    """Return ``name`` if it is a plausible Civitai username, else raise InvalidQueryError.

    Refused: empty, longer than 100 characters, and anything but ASCII letters, digits and ``_``
    (Civitai's own rule, ``^[A-Za-z0-9_]+$``: it answers 400 otherwise).
    """
    shown = show(name)
    if not name:
        raise InvalidQueryError("The creator's username is empty; enter a name such as '@name'.")
    if len(name) > MAX_USERNAME_LENGTH:
        raise InvalidQueryError(
            f"The username {shown} is longer than {MAX_USERNAME_LENGTH} characters; "
            "check that you copied only the name."
        )
    if any(ch in name for ch in "/\\") or ".." in name or name in (".",):
        raise InvalidQueryError(
            f"The username {shown} contains a path separator or '..', which no Civitai username "
            "has; enter just the name, e.g. '@name'."
        )
    if not _USERNAME.fullmatch(name):
        raise InvalidQueryError(
            f"The username {shown} is not a Civitai username: Civitai accepts only letters "
            "A-Z and a-z, digits and '_' in a username; enter just the name, e.g. '@name'."
        )
    return name


def validate_tag(name: str) -> str:
    """A tag name as a link or the user gives it; InvalidQueryError for anything else."""
    text = name.strip()
    if not _TAG.fullmatch(text):
        raise InvalidQueryError(
            f"The tag {show(name)} is not a tag name; use the name from a civitai.com/tag/... "
            "link, e.g. 'tag landscape'."
        )
    return text


def show(value: str, limit: int = 80) -> str:
    """repr() of a user value, shortened: control characters become visible escapes."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def parse_id(value: str, what: str) -> int:
    if not DIGITS.fullmatch(value or ""):
        raise InvalidQueryError(
            f"The {what} id {show(value)} is not a number; use the digits from the Civitai link, "
            f"e.g. '{what} 123'."
        )
    number = int(value)
    if number <= 0 or number > MAX_ID:
        raise InvalidQueryError(f"The {what} id {value} is out of range; use a positive id.")
    return number
