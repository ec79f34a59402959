""" "Did you mean ...?" for a mistyped command, choice or option: one place for every parser
(the CLI's commands and the standalone app's options).

Python 3.14's ``ArgumentParser(suggest_on_error=True)`` suggests a close choice or sub-command
itself; :class:`SuggestingParser` turns it on where it exists and does the same with ``difflib`` on
older versions (3.11+). No version suggests a close *option* (``--limt``): that part is ours on
every version.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from typing import Any, Iterable, List, Optional, Sequence

_NATIVE = sys.version_info >= (3, 14)


def close_matches(word: str, candidates: Iterable[str], n: int = 3) -> List[str]:
    """The candidates closest to ``word`` (difflib's ratio >= 0.6), best first."""
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'download'?"`` (or ``""`` when nothing is close)."""
    found = close_matches(word, candidates, n=1)
    return f"; did you mean {found[0]!r}?" if found else ""


def _tree(parser: argparse.ArgumentParser) -> List[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in (action.choices or {}).values():
                found += _tree(sub)
    return found


def _chosen_subparser(parser: argparse.ArgumentParser, namespace: Any):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(namespace, action.dest, None) if action.dest else None
            if name in (action.choices or {}):
                return action.choices[name]
    return None


class SuggestingParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors suggest the closest command, choice or option."""

    def __init__(self, *args: Any, **kwargs: Any):
        if _NATIVE:
            kwargs.setdefault("suggest_on_error", True)
        super().__init__(*args, **kwargs)

    _option_hint = ""

    def _note_unknown_options(self, args: List[str]) -> None:
        """Remember "did you mean" for options no parser of this tree knows, for whichever
        error comes first (see :meth:`with_hint`)."""
        parsers = _tree(self)
        known = {option for parser in parsers for option in parser._option_string_actions}
        hints = []
        for arg in args:
            if arg == "--":
                break
            stem = arg.split("=", 1)[0]
            if not stem.startswith("--") or stem in known:
                continue
            if any(option.startswith(stem) for option in known):  # an abbreviation argparse takes
                continue
            found = close_matches(stem, known, n=1)
            if found:
                hints.append(f"{stem}: did you mean {found[0]}?")
        for parser in parsers:
            if isinstance(parser, SuggestingParser):
                parser._option_hint = "; ".join(hints)

    def with_hint(self, message: str) -> str:
        """``message`` with the "did you mean" of a mistyped option, when it does not have it."""
        if self._option_hint and "did you mean" not in message:
            return f"{message} ({self._option_hint})"
        return message

    def error(self, message: str):
        super().error(self.with_hint(message))

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if _NATIVE or choices is None or value in choices or not isinstance(value, str):
            super()._check_value(action, value)
            return
        names = [str(choice) for choice in choices]
        raise argparse.ArgumentError(
            action,
            f"invalid choice: {value!r}{did_you_mean(value, names)} "
            f"(choose from {', '.join(names)})",
        )

    def parse_args(  # type: ignore[override]
        self, args: Optional[Sequence[str]] = None, namespace: Any = None
    ) -> argparse.Namespace:
        # An error found first (a required argument missing) still names a mistyped option
        self._note_unknown_options(list(sys.argv[1:] if args is None else args))
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            where = _chosen_subparser(self, parsed) or self
            options = list(where._option_string_actions)
            hints = []
            for extra in extras:
                if extra.startswith("-"):
                    found = close_matches(extra.split("=", 1)[0], options, n=1)
                    if found:
                        hints.append(found[0])
            message = "unrecognized arguments: " + " ".join(extras)
            if hints:
                message += "; did you mean " + " or ".join(hints) + "?"
            where.error(message)
        return parsed
