"""Settings are read at the edges (issue 26, item 4): the shells (cli/, ui/) and the builders they
call read settings and pass values down; library code takes arguments.

The test walks every module's syntax tree and names file and line of each settings read outside
the allow-list below. A read is a use of the settings API (``get``, ``source``, ``revision``,
``as_dict``, ``get_image_url_to_gallery_file`` or a setting's attribute name such as
``setting.http_timeout``) through the ``setting`` facade or ``settings.state``; the validated
table (``SPECS``, its defaults) is data, not a read.
"""

from __future__ import annotations

import ast
import os
from typing import List, Tuple

import pytest

from scripts.civitai_manager_libs.settings.specs import ATTRIBUTE_KEYS

PACKAGE = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "civitai_manager_libs")

#: Folders whose every module is a shell.
SHELL_FOLDERS = ("cli/", "ui/")
#: Modules allowed to read settings, and why.
ALLOWED = {
    "setting.py": "the settings API itself (facade)",
    "transport/client_options.py": "the builder of ClientOptions, called by the shells and "
    "by the shared client",
    # ImageDownloader's constructor reads its options (the backlog's API: a shell calls it).
    "planning/downloader.py": "ImageDownloader's constructor options, and the user's default "
    "levels for the spec's download_*(nsfw_levels=None)",
}
READERS = {"get", "source", "revision", "as_dict", "get_image_url_to_gallery_file"}
SETTINGS_MODULES = ("setting", "settings.state")


def _settings_module(module: str) -> bool:
    """True for ``setting`` / ``settings.state`` named relative to anything (``..setting``)."""
    name = module.lstrip(".")
    name = name.split("civitai_manager_libs.", 1)[-1]
    return name in SETTINGS_MODULES


def settings_reads(source: str) -> List[Tuple[int, str]]:
    """(line, what) of every settings read in ``source``."""
    tree = ast.parse(source)
    bound = set()  # local names of the settings modules
    found: List[Tuple[int, str]] = []
    attributes = READERS | set(ATTRIBUTE_KEYS)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            for alias in node.names:
                if _settings_module(f"{module}.{alias.name}"):  # from .. import setting
                    bound.add(alias.asname or alias.name)
                elif _settings_module(module) and alias.name in attributes:
                    found.append((node.lineno, f"imports {alias.name} from {module}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _settings_module(alias.name):
                    bound.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and node.attr in attributes
        ):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(found)


def _modules() -> List[str]:
    out = []
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "fake_civitai"))
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                out.append(os.path.relpath(path, PACKAGE).replace(os.sep, "/"))
    return out


def _reads(relative: str) -> List[Tuple[int, str]]:
    with open(os.path.join(PACKAGE, relative), encoding="utf-8") as handle:
        return settings_reads(handle.read())


def _allowed(relative: str) -> bool:
    return relative.startswith(SHELL_FOLDERS) or relative in ALLOWED


def test_only_shells_and_builders_read_settings():
    offenders = [
        f"scripts/civitai_manager_libs/{relative}:{line}: {what}"
        for relative in _modules()
        if not _allowed(relative)
        for line, what in _reads(relative)
    ]
    assert not offenders, (
        "Library code reads settings; read them in the shell (cli/, ui/) or a builder and pass "
        "the value down:\n" + "\n".join(offenders)
    )


def test_every_allowed_module_still_reads_settings():
    """A stale allow-list entry hides the next deep read: remove it once the module is clean."""
    stale = [relative for relative in ALLOWED if not _reads(relative)]
    assert not stale, f"Allowed modules that no longer read settings: {stale}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from .. import setting\nx = setting.get('http_timeout')\n", [(2, "setting.get")]),
        ("from ... import setting as s\n\ns.revision()\n", [(3, "s.revision")]),
        ("from .. import setting\ny = setting.http_timeout\n", [(2, "setting.http_timeout")]),
        ("from ..settings import state\nstate.source('x')\n", [(2, "state.source")]),
        (
            "from ..settings.state import get\n",
            [(1, "imports get from ..settings.state")],
        ),
        (
            "import scripts.civitai_manager_libs.setting as setting\nsetting.get('a')\n",
            [(2, "setting.get")],
        ),
        ("from .. import setting\nz = setting.SPECS['a'].default\n", []),  # the table is data
        ("options = {}\noptions.get('http_timeout')\n", []),  # not the settings module
        ("from ..settings.specs import SPECS\nSPECS.get('a')\n", []),
    ],
)
def test_the_walk_finds_reads_and_only_reads(source, expected):
    assert settings_reads(source) == expected


def test_a_library_module_that_reads_a_setting_is_named_with_its_line(tmp_path, monkeypatch):
    """The check fails, naming file and line, for a read outside the allow-list."""
    package = tmp_path / "pkg"
    (package / "civitai").mkdir(parents=True)
    (package / "ui").mkdir()
    (package / "civitai" / "deep.py").write_text("from .. import setting\n\nsetting.get('a')\n")
    (package / "ui" / "shell.py").write_text("from .. import setting\nsetting.get('a')\n")
    monkeypatch.setitem(globals(), "PACKAGE", str(package))
    with pytest.raises(AssertionError, match=r"civitai/deep\.py:3: setting\.get"):
        test_only_shells_and_builders_read_settings()
