"""Root confinement: every file the tool creates, appends to, renames or deletes goes through here.

The rules, for a ``path`` and the output ``root`` it belongs to:

* the folder holding ``path`` resolves (symlinks included) to ``root`` or a folder inside it;
* ``path`` itself is never a symbolic link: files are opened with ``O_NOFOLLOW`` (and ``O_EXCL``
  for temporary files), so a link found where a file goes is refused, never written through;
* folders are created one level at a time, and an existing level that is a link leading outside
  ``root`` is refused before anything is created under it.

A refusal is a :class:`~..errors.ConfinementError` (an ``OutputPathError``) naming the file; nothing
was written. ``root`` defaults to the file's own folder (the caller already confined that folder,
e.g. the sidecars and thumbnails of a saved image).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from typing import BinaryIO, Optional, Tuple

from ..errors import ConfinementError

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_BINARY = getattr(os, "O_BINARY", 0)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def is_inside(path: str, root: str) -> bool:
    """True when ``path`` (already resolved) is ``root`` (resolved) or inside it."""
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:  # different drives on Windows
        return False


def _root_of(path: str, root: Optional[str]) -> str:
    return _real(root if root is not None else os.path.dirname(os.path.abspath(path)))


def check_target(path: str, root: Optional[str] = None) -> str:
    """``path`` made absolute, after checking it may be written: its folder resolves inside
    ``root`` and it is not a symbolic link. ConfinementError otherwise."""
    path = os.path.abspath(os.fspath(path))
    real_root = _root_of(path, root)
    folder = _real(os.path.dirname(path))
    if not is_inside(folder, real_root):
        raise ConfinementError(
            f"Refused to write {path}: its folder leads to {folder}, outside the output folder "
            f"{real_root} (a symbolic link?). Remove the link or choose another output folder."
        )
    if os.path.islink(path):
        raise ConfinementError(
            f"Refused to write {path}: it is a symbolic link (to {os.readlink(path)!r}); the tool "
            "never writes through a link it did not create. Remove the link and run again."
        )
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(mode):
        # a FIFO would block the writer for ever, a device would take the bytes elsewhere
        raise ConfinementError(
            f"Refused to write {path}: it is not a regular file (a folder, pipe or device is in "
            "the way). Move it away and run again."
        )
    return path


def ensure_dir(folder: str, root: str) -> str:
    """Create ``folder`` (inside ``root``) one level at a time; a level that is a link leading
    outside ``root`` is refused before anything is created under it. Returns ``folder``."""
    folder = os.path.abspath(os.fspath(folder))
    if os.path.isdir(folder) and os.path.isdir(root):  # the usual case: nothing to create
        if is_inside(_real(folder), _real(root)):
            return folder
    os.makedirs(os.path.abspath(os.fspath(root)), exist_ok=True)  # the root itself is trusted
    real_root = _real(root)
    if not is_inside(_real(folder), real_root) and not _lexically_inside(folder, root):
        raise ConfinementError(
            f"Refused to create {folder}: it is outside the output folder {real_root}."
        )
    base = os.path.abspath(os.fspath(root))
    rel = os.path.relpath(folder, base) if _lexically_inside(folder, root) else ""
    current = base
    for part in [p for p in rel.split(os.sep) if p and p != "."]:
        current = os.path.join(current, part)
        if os.path.islink(current) and not is_inside(_real(current), real_root):
            raise ConfinementError(
                f"Refused to write into {current}: it is a symbolic link to {_real(current)}, "
                f"outside the output folder {real_root}. Remove the link and run again."
            )
        try:
            os.mkdir(current)
        except FileExistsError:
            if not os.path.isdir(current):
                raise
    if not is_inside(_real(folder), real_root):
        raise ConfinementError(
            f"Refused to write into {folder}: it leads to {_real(folder)}, outside the output "
            f"folder {real_root}."
        )
    return folder


def _lexically_inside(path: str, root: str) -> bool:
    base = os.path.abspath(os.fspath(root))
    try:
        return os.path.commonpath([base, os.path.abspath(path)]) == base
    except ValueError:
        return False


def _open_flags(append: bool, exclusive: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | O_NOFOLLOW | O_BINARY
    flags |= os.O_APPEND if append else os.O_TRUNC
    if exclusive:
        flags |= os.O_EXCL
    return flags


def _refused_link(path: str, exc: OSError) -> ConfinementError:
    err = ConfinementError(
        f"Refused to open {path}: it is a symbolic link; the tool never writes through a link it "
        "did not create. Remove the link and run again."
    )
    err.errno = exc.errno
    return err


def open_write(
    path: str, root: Optional[str] = None, *, append: bool = False, exclusive: bool = False
) -> BinaryIO:
    """A binary file object writing ``path`` (truncated, or appended to), never through a link."""
    fd = _open_no_link(check_target(path, root), _open_flags(append, exclusive))
    return os.fdopen(fd, "ab" if append else "wb")


def _open_no_link(path: str, flags: int) -> int:
    """``os.open(path, flags)``; ConfinementError when ``path`` is a symbolic link."""
    try:
        return os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and os.path.islink(path)):
            raise _refused_link(path, exc) from None
        raise


def open_read(path: str, root: Optional[str] = None) -> BinaryIO:
    """A binary file object reading ``path`` (a file the tool wrote), never through a link."""
    fd = _open_no_link(check_target(path, root), os.O_RDONLY | O_NOFOLLOW | O_BINARY)
    return os.fdopen(fd, "rb")


def regular_size(path: str) -> Optional[int]:
    """The size of ``path`` when it is a regular file (links are not followed), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def replace(src: str, dst: str, root: Optional[str] = None) -> None:
    """``os.replace(src, dst)`` with both names checked (``root`` defaults to ``dst``'s folder)."""
    check_target(src, root if root is not None else os.path.dirname(os.path.abspath(dst)))
    check_target(dst, root)
    os.replace(src, dst)


def remove(path: str, root: Optional[str] = None) -> bool:
    """Delete the file ``path`` inside ``root``; True when something was removed (a missing file
    is not an error). A path outside ``root`` or a link is refused (ConfinementError)."""
    try:
        path = check_target(path, root)
    except ConfinementError:
        if not os.path.lexists(path):
            return False
        raise
    try:
        os.remove(path)
    except FileNotFoundError:
        return False
    return True


def write_atomic(
    path: str, data: bytes, root: Optional[str] = None, *, private: bool = False
) -> None:
    """Write ``data`` to ``path`` through a new temporary file (``O_EXCL``) in the same folder,
    fsync and ``os.replace``; the existing file's mode is kept, a new one gets the umask mode
    (``private``: 0600 whatever the old file's mode)."""
    path = check_target(path, root)
    handle, tmp = open_temp(path, root)  # the umask mode, as open() would give a new file
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if private:
            os.chmod(tmp, 0o600)
        elif regular_size(path) is not None:
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        check_target(path, root)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def ensure_root(folder: str) -> str:
    """Create ``folder``, a root the user named (an output, export or cache folder), with its
    missing parents; an existing one is used as it is (a link the user made there is followed:
    it is configuration). Returns ``folder`` made absolute."""
    folder = os.path.abspath(os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    return folder


def open_temp(path: str, root: Optional[str] = None) -> Tuple[BinaryIO, str]:
    """A new temporary file beside ``path`` (random name, ``O_EXCL``: no link can be planted at
    it) and its name, for a writer that fills a file to :func:`replace` over ``path`` later. The
    file gets the umask mode."""
    path = check_target(path, root)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path)
    )
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
    except OSError:  # pragma: no cover - a file system without modes
        pass
    return os.fdopen(fd, "w+b"), tmp


def discard_temp(tmp: str) -> None:
    """Remove a temporary file made by :func:`open_temp` (gone already: nothing to do)."""
    try:
        if not os.path.islink(tmp):
            os.unlink(tmp)
    except FileNotFoundError:
        pass


def truncate(path: str, size: int, root: Optional[str] = None) -> None:
    """Cut the regular file ``path`` back to ``size`` bytes, never through a link."""
    fd = _open_no_link(check_target(path, root), os.O_WRONLY | O_NOFOLLOW | O_BINARY)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def place_copy(source: str, target: str, root: Optional[str] = None) -> str:
    """``target`` holds ``source``'s bytes: a hard link when the file system allows it, else a
    copy; ``"link"``, ``"copy"`` or ``"kept"`` (already the same file). Written through a
    temporary name made with ``O_EXCL``, renamed over ``target`` (which must not be a link)."""
    target = check_target(target, root)
    if os.path.lexists(target) and os.path.samefile(source, target):
        return "kept"
    folder = os.path.dirname(target)
    tmp = os.path.join(folder, f".{os.path.basename(target)}.{os.urandom(6).hex()}.tmp")
    how = "link"
    try:
        os.link(source, tmp, follow_symlinks=False)  # fails (EEXIST) on anything already there
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        how = "copy"
        try:
            with open(source, "rb") as src, open_write(tmp, root, exclusive=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
        except BaseException:
            discard_temp(tmp)
            raise
    try:
        replace(tmp, target, root)
    except BaseException:
        discard_temp(tmp)
        raise
    return how


def fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable where the platform allows it (not an error if not)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def relative_to(path: str, root: str) -> Optional[str]:
    """``path`` relative to ``root`` when it is inside it (lexically or resolved), else None."""
    path = os.path.abspath(os.fspath(path))
    for base in (os.path.abspath(os.fspath(root)), _real(root)):
        if _lexically_inside(path, base) and path != base:
            return os.path.relpath(path, base)
    real = _real(path)
    real_root = _real(root)
    if is_inside(real, real_root) and real != real_root:
        return os.path.relpath(real, real_root)
    return None
