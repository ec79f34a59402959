"""Docs that are true (issue 26 item 7): every module of the package is named in docs/DESIGN.md, and
no docstring or comment names a module that does not exist. Static reads only: fast."""

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "scripts", "civitai_manager_libs")
DESIGN = os.path.join(ROOT, "docs", "DESIGN.md")
# files of other programs a comment may name: WebUI's modules/
EXTERNAL_PREFIXES = ("modules/",)


def _modules():
    """(folder or "", module name, path relative to the package) for every module."""
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, PACKAGE).replace(os.sep, "/")
        for name in files:
            if name.endswith(".py") and name != "__init__.py":
                top = "" if rel == "." else rel.split("/")[0]
                yield top, name[:-3], name if rel == "." else f"{rel}/{name}"


def _design_tree():
    """The package tree of DESIGN.md: the whole block, and each folder's entry (its line and the
    continuation lines below it)."""
    text = open(DESIGN, encoding="utf-8").read()
    start = text.index("scripts/civitai_manager_libs/\n")
    tree = text[start : text.index("```", start)]
    entries, current = {}, None
    for line in tree.splitlines():
        match = re.match(r"[├└]── (\w+)/", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif re.match(r"[├└]── ", line):
            current = None
        elif current:
            entries[current] += "\n" + line
    return text, tree, entries


def _named(folder, name, rel, text, tree, entries):
    if rel in text:  # named by its path anywhere (a section title, a contract)
        return True
    if not folder:
        return re.search(rf"(?<![\w/]){re.escape(name)}\.py\b", tree) is not None
    return re.search(rf"(?<![\w/.]){re.escape(name)}\b", entries.get(folder, "")) is not None


def test_every_module_is_named_in_design_md():
    text, tree, entries = _design_tree()
    missing = [
        rel
        for folder, name, rel in _modules()
        if not _named(folder, name, rel, text, tree, entries)
    ]
    assert not missing, (
        "name these modules with their one job in docs/DESIGN.md's tree (under their folder's "
        f"line) or by their path: {missing}"
    )


def test_the_rule_sees_a_missing_module():
    text, tree, entries = _design_tree()
    assert _named("store", "archive", "store/archive.py", text, tree, entries)
    assert not _named("store", "no_such_room", "store/no_such_room.py", text, tree, entries)
    assert not _named("", "no_such.py", "no_such.py", text, tree, entries)


def _sources():
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)
    yield os.path.join(ROOT, "main.py")
    yield os.path.join(ROOT, "scripts", "civitai_gallery.py")


_PATH = re.compile(r"(?<![\w/.*-])((?:[A-Za-z_][\w.]*/)+[A-Za-z_]\w*\.py)\b")
_REF = re.compile(r":(mod|class|func|meth|data|attr|exc):`~?(\.*)([a-z_]\w*)(\.[\w.]*)?`")


def _path_exists(path, source):
    if path.startswith(EXTERNAL_PREFIXES):
        return True
    bases = (PACKAGE, ROOT, os.path.dirname(source))
    return any(os.path.exists(os.path.join(base, path)) for base in bases)


def _module_names():
    names = {name for _, name, _ in _modules()}
    for entry in os.scandir(PACKAGE):
        if entry.is_dir() and os.path.exists(os.path.join(entry.path, "__init__.py")):
            names.add(entry.name)
    return names


def _stale(source, names):
    text = open(source, encoding="utf-8").read()
    found = []
    for match in _PATH.finditer(text):
        if not _path_exists(match.group(1), source):
            found.append(match.group(1))
    for match in _REF.finditer(text):
        role, dots, first, rest = match.groups()
        if role != "mod" and not (dots or rest):  # a bare name: a function of this module
            continue
        if first in names or (not dots and importlib.util.find_spec(first) is not None):
            continue
        found.append(match.group(0))
    return found


def test_docstrings_and_comments_name_modules_that_exist():
    names = _module_names()
    stale = {}
    for source in _sources():
        found = _stale(source, names)
        if found:
            stale[os.path.relpath(source, ROOT)] = found
    assert not stale, f"these name a module that does not exist: {stale}"


def test_the_check_sees_a_stale_name(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        '"""See store/archive.py and store/no_such.py, :mod:`setting_specs`, :mod:`.settings`,\n'
        ':class:`civitai_api.CivitaiAPI`, :class:`..civitai.api.CivitaiAPI`, :func:`redact`."""\n'
    )
    assert _stale(str(source), _module_names()) == [
        "store/no_such.py",
        ":mod:`setting_specs`",
        ":class:`civitai_api.CivitaiAPI`",
    ]
