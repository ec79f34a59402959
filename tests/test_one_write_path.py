"""One write path: no module of the tool creates, replaces or deletes a file but through store/.

Walks the syntax tree of every module of the package (``store/`` and the fake Civitai, which is not
the tool, excepted) and fails, naming file and line, on a raw write: ``open()`` in a writing mode,
``os.replace/rename/remove/unlink/makedirs/mkdir/rmdir``, ``shutil.*``, ``Path.write_text/
write_bytes/unlink/mkdir/rename/touch/replace/rmdir``, ``tempfile.*`` creating files, PIL's
``save`` and piexif handed a path, and third-party writers handed a path (pyarrow writers,
``sqlite3.connect``).
"""

from __future__ import annotations

import ast
import os
from typing import List

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "scripts", "civitai_manager_libs")
EXEMPT = ("store", "fake_civitai")
EXTRA = [
    os.path.join(os.path.dirname(__file__), "..", "main.py"),
    os.path.join(os.path.dirname(__file__), "..", "scripts", "civitai_gallery.py"),
]

OS_WRITES = {
    "replace",
    "rename",
    "renames",
    "remove",
    "unlink",
    "makedirs",
    "mkdir",
    "rmdir",
    "removedirs",
    "truncate",
    "link",
    "symlink",
    "mkfifo",
    "mknod",
}
PATH_WRITES = {
    "write_text",
    "write_bytes",
    "unlink",
    "mkdir",
    "rename",
    "touch",
    "replace",
    "rmdir",
    "symlink_to",
    "hardlink_to",
}
TEMPFILE_WRITES = {
    "mkstemp",
    "mkdtemp",
    "NamedTemporaryFile",
    "TemporaryFile",
    "SpooledTemporaryFile",
    "TemporaryDirectory",
}
SHUTIL_READS = {"disk_usage", "which", "get_terminal_size"}
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND", "O_TRUNC")
PYARROW_WRITERS = {
    "write_table",
    "ParquetWriter",
    "write_to_dataset",
    "write_feather",
    "write_csv",
    "CSVWriter",
    "new_file",
    "new_stream",
    "OSFile",
    "create_memory_map",
}


def _dotted(node: ast.AST) -> str:
    parts: List[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _const_str(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _open_mode(call: ast.Call, position: int) -> str | None:
    """The mode of an open() call: the constant, '' when absent (read), None when not constant."""
    for kw in call.keywords:
        if kw.arg == "mode":
            return _const_str(kw.value)
    if len(call.args) > position:
        return _const_str(call.args[position])
    return ""


def _writes(mode: str | None) -> bool:
    return mode is None or any(c in mode for c in "wax+")


def _is_buffer(node: ast.AST) -> bool:
    """An argument of ``X.save(...)`` that is an in-memory buffer (by name), not a path."""
    text = ast.unparse(node).lower()
    return "buf" in text or "bytesio" in text or "handle" in text


def _is_pathlike_arg(node: ast.AST) -> bool:
    """A first argument that is a path (a str, a name or an expression), not an open file object.
    ``sqlite3.connect(":memory:")`` is allowed."""
    if isinstance(node, ast.Constant) and node.value == ":memory:":
        return False
    return True


def raw_writes(source: str, filename: str) -> List[str]:
    tree = ast.parse(source, filename)
    found: List[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        last = name.rsplit(".", 1)[-1]
        what = None
        if name in ("io.open", "builtins.open", "codecs.open") or (
            isinstance(node.func, ast.Name) and name == "open"
        ):
            if _writes(_open_mode(node, 1)):
                what = f"{name}() in a writing mode"
        elif isinstance(node.func, ast.Attribute) and last == "open" and name != "os.open":
            # Path(...).open("w") / p.open(mode="a"); PIL's Image.open only reads
            if name.endswith("Image.open"):
                continue
            if node.args or node.keywords:
                if _writes(_open_mode(node, 0)):
                    what = f"{name}() in a writing mode"
        elif name == "os.open":
            flags = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
            to_devnull = bool(node.args) and ast.unparse(node.args[0]) == "os.devnull"
            if not to_devnull and any(f in flags for f in WRITE_FLAGS):
                what = "os.open() for writing (use store/confined)"
        elif name.startswith("os.") and last in OS_WRITES and name.count(".") == 1:
            what = name + "()"
        elif name.startswith("shutil.") and last not in SHUTIL_READS:
            what = name + "()"
        elif name.startswith("piexif.") and last in ("insert", "remove", "transplant"):
            what = name + "() writes a file"
        elif (
            last == "save"
            and isinstance(node.func, ast.Attribute)
            and node.args
            and not _is_buffer(node.args[0])
        ):
            what = f"{name}() handed a path (save to a buffer, write through store/confined)"
        elif name.startswith("tempfile.") and last in TEMPFILE_WRITES:
            what = name + "()"
        elif last in PYARROW_WRITERS and (
            "pq" in name or "pa" in name or "arrow" in name or "parquet" in name or "ipc" in name
        ):
            if node.args and not _is_buffer(node.args[0]):
                what = name + "() handed a path (hand it a file from store/confined)"
        elif name.endswith("sqlite3.connect"):
            if node.args and _is_pathlike_arg(node.args[0]):
                what = "sqlite3.connect() on a path"
        elif (
            isinstance(node.func, ast.Attribute)
            and last in PATH_WRITES
            and not name.startswith(("os.", "str.", "dataclasses."))
        ):
            # Path methods; str.replace / dict-ish .replace with two string args are not paths
            if last == "replace" and len(node.args) != 1:
                continue
            if last == "rename" and len(node.args) != 1:
                continue
            what = f"Path.{last}()"
        if what:
            found.append(f"{filename}:{node.lineno}: {what}")
    return found


def _modules():
    for folder, dirs, files in os.walk(PACKAGE):
        rel = os.path.relpath(folder, PACKAGE)
        top = rel.split(os.sep)[0]
        if top in EXEMPT:
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(folder, name)
    for path in EXTRA:
        if os.path.exists(path):
            yield path


def test_no_raw_write_outside_store():
    found: List[str] = []
    for path in _modules():
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        found.extend(raw_writes(source, os.path.relpath(path, os.path.join(PACKAGE, "..", ".."))))
    assert not found, "raw writes outside store/ (go through store/confined):\n" + "\n".join(found)


SAMPLES = {
    "open(p, 'w')": True,
    "open(p, mode='ab')": True,
    "open(p, 'r+b')": True,
    "open(p, m)": True,  # a mode that is not a constant: counted as a write
    "open(p)": False,
    "open(p, 'rb')": False,
    "io.open(p, 'x')": True,
    "Path(p).open('w')": True,
    "Path(p).write_text('x')": True,
    "p.write_bytes(b'')": True,
    "p.unlink()": True,
    "p.mkdir(parents=True)": True,
    "p.touch()": True,
    "p.rename(q)": True,
    "p.replace(q)": True,
    "'a'.replace('b', 'c')": False,
    "dataclasses.replace(item, id=1)": False,
    "os.replace(a, b)": True,
    "os.rename(a, b)": True,
    "os.remove(a)": True,
    "os.unlink(a)": True,
    "os.makedirs(a, exist_ok=True)": True,
    "os.mkdir(a)": True,
    "os.rmdir(a)": True,
    "os.open(a, os.O_WRONLY | os.O_CREAT)": True,
    "os.open(a, os.O_RDONLY)": False,
    "shutil.copyfile(a, b)": True,
    "shutil.rmtree(a)": True,
    "shutil.disk_usage(a)": False,
    "tempfile.mkstemp(dir=a)": True,
    "tempfile.NamedTemporaryFile()": True,
    "pq.ParquetWriter(path, schema)": True,
    "pq.write_table(table, path)": True,
    "pq.ParquetWriter(handle, schema)": False,
    "sqlite3.connect(path)": True,
    "sqlite3.connect(':memory:')": False,
    "image.save(path, 'PNG')": True,
    "image.save(buffer, 'PNG')": False,
    "piexif.insert(exif, path)": True,
}


def test_the_scanner_finds_every_kind_of_raw_write():
    wrong = []
    for code, is_write in SAMPLES.items():
        found = raw_writes(code + "\n", "sample.py")
        if bool(found) != is_write:
            wrong.append(f"{code}: {'missed' if is_write else 'false alarm'}")
    assert not wrong, wrong
