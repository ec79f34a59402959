"""store/confined.py: the one place files are created, appended, renamed and deleted."""

from __future__ import annotations

import os

import pytest

from scripts.civitai_manager_libs.errors import ConfinementError, OutputPathError
from scripts.civitai_manager_libs.store import confined


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    victim = outside / "victim"
    victim.write_bytes(b"keep")
    return root, outside, victim


def test_open_write_refuses_a_link_to_a_file_and_a_dangling_link(layout):
    root, outside, victim = layout
    os.symlink(victim, root / "a.part")
    os.symlink(outside / "new", root / "b.part")
    for name in ("a.part", "b.part"):
        for append in (False, True):
            with pytest.raises(ConfinementError, match="symbolic link"):
                confined.open_write(str(root / name), str(root), append=append)
    assert victim.read_bytes() == b"keep"
    assert sorted(os.listdir(outside)) == ["victim"]
    assert issubclass(ConfinementError, OutputPathError)


def test_open_read_refuses_a_link(layout):
    root, _outside, victim = layout
    os.symlink(victim, root / "c.part")
    with pytest.raises(ConfinementError):
        confined.open_read(str(root / "c.part"), str(root))


def test_ensure_dir_refuses_a_level_linked_outside_before_creating_under_it(layout):
    root, outside, _victim = layout
    os.symlink(outside, root / "model", target_is_directory=True)
    with pytest.raises(ConfinementError, match="outside the output folder"):
        confined.ensure_dir(str(root / "model" / "sub" / "deeper"), str(root))
    assert sorted(os.listdir(outside)) == ["victim"]
    made = confined.ensure_dir(str(root / "a" / "b"), str(root))
    assert os.path.isdir(made)


def test_a_link_inside_the_root_is_followed_when_it_stays_inside(layout):
    root, _outside, _victim = layout
    (root / "real").mkdir()
    os.symlink(root / "real", root / "alias", target_is_directory=True)
    with confined.open_write(str(root / "alias" / "x.bin"), str(root)) as handle:
        handle.write(b"ok")
    assert (root / "real" / "x.bin").read_bytes() == b"ok"


def test_remove_and_replace_stay_inside_the_root(layout):
    root, outside, victim = layout
    with pytest.raises(ConfinementError):
        confined.remove(str(victim), str(root))
    assert victim.exists()
    (root / "src").write_bytes(b"new")
    os.symlink(victim, root / "dst")
    with pytest.raises(ConfinementError):
        confined.replace(str(root / "src"), str(root / "dst"), str(root))
    assert victim.read_bytes() == b"keep"
    assert confined.remove(str(root / "src"), str(root)) is True
    assert confined.remove(str(root / "src"), str(root)) is False


def test_write_atomic_never_writes_through_a_link(layout):
    root, _outside, victim = layout
    os.symlink(victim, root / "side.json")
    with pytest.raises(ConfinementError):
        confined.write_atomic(str(root / "side.json"), b"{}")
    assert victim.read_bytes() == b"keep"
    confined.write_atomic(str(root / "other.json"), b"{}")
    assert (root / "other.json").read_bytes() == b"{}"
    assert [n for n in os.listdir(root) if n.endswith(".tmp")] == []


def test_relative_to(layout):
    root, outside, victim = layout
    assert confined.relative_to(str(root / "a" / "b.png"), str(root)) == os.path.join("a", "b.png")
    assert confined.relative_to(str(victim), str(root)) is None
    assert confined.relative_to(str(root), str(root)) is None


def test_a_pipe_in_the_way_is_refused_without_blocking(layout):
    root, _outside, _victim = layout
    os.mkfifo(root / "x.part")
    with pytest.raises(ConfinementError, match="not a regular file"):
        confined.open_write(str(root / "x.part"), str(root))
