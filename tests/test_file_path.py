"""One object names a file (store/file_path.FilePath) and one rule says why a file already there is
adopted, left alone, replaced or kept beside (engine/duplicates.by_name): issue 26 items 2 and 3."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from scripts.civitai_manager_libs.engine.duplicates import FileNames, by_name
from scripts.civitai_manager_libs.store import confined
from scripts.civitai_manager_libs.store.file_path import FilePath, chosen


def _png(path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, "PNG")
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def test_an_image_streams_under_a_placeholder_and_ends_under_its_real_extension(tmp_path):
    name = FilePath.for_image(str(tmp_path / "a" / "12"), str(tmp_path), "image")
    assert name.path.endswith("12.jpeg") and name.temp == name.path + ".part"
    assert FilePath.for_image(str(tmp_path / "12"), str(tmp_path), "video").path.endswith(".mp4")
    assert name.final(".png") == str(tmp_path / "a" / "12.png")
    # a suffix that is part of the name is kept: the extension is appended
    assert FilePath(str(tmp_path / "v1.5"), fix_extension=True).final(".png").endswith("v1.5.png")
    assert FilePath(str(tmp_path / "x.jpeg")).final(".png").endswith("x.jpeg")  # no fixing asked


def test_finalize_renames_the_part_into_place_inside_the_root(tmp_path):
    name = FilePath.for_image(str(tmp_path / "a" / "12"), str(tmp_path), None)
    name.prepare()
    with name.open_temp(append=False) as handle:
        handle.write(b"bytes")
    assert name.temp_size() == 5
    assert name.finalize(".webp") == str(tmp_path / "a" / "12.webp")
    assert os.listdir(tmp_path / "a") == ["12.webp"]


def test_a_name_outside_its_root_is_refused_before_anything_is_written(tmp_path):
    name = FilePath(str(tmp_path / "out" / "x.png"), root=str(tmp_path / "root"))
    with pytest.raises(confined.ConfinementError):
        name.prepare()
    assert not (tmp_path / "out").exists()


def test_exists_finds_the_saved_file_whatever_its_extension_but_never_a_link(tmp_path):
    name = FilePath.for_image(str(tmp_path / "12"), str(tmp_path), None)
    assert name.exists() is None
    os.symlink(tmp_path / "elsewhere.png", tmp_path / "12.png")
    (tmp_path / "elsewhere.png").write_bytes(b"x")
    assert name.exists() is None
    (tmp_path / "12.webp").write_bytes(b"x")
    assert name.exists() == str(tmp_path / "12.webp")


def test_a_name_the_caller_chose_is_a_folder_or_a_file_without_its_media_extension(tmp_path):
    assert chosen(str(tmp_path), 7) == str(tmp_path / "7")
    assert chosen(str(tmp_path / "new") + os.sep, 7) == str(tmp_path / "new" / "7")
    assert chosen(str(tmp_path / "cat.PNG"), 7) == str(tmp_path / "cat")
    assert chosen(str(tmp_path / "cat.v2"), 7) == str(tmp_path / "cat.v2")


@pytest.mark.parametrize(
    "readable, policy, skip_existing, expected",
    [
        (True, "skip", True, "adopt"),
        (True, "replace", True, "adopt"),
        (True, "keep_both", True, "adopt"),
        (True, "skip", False, "adopt"),
        (True, "replace", False, "replace"),
        (True, "keep_both", False, "copy"),
        (False, "skip", True, "left_alone"),
        (False, "skip", False, "left_alone"),
        (False, "replace", True, "replace"),
        (False, "keep_both", True, "copy"),
    ],
)
def test_one_rule_says_why_a_file_already_there_is_skipped_or_renamed(
    tmp_path, readable, policy, skip_existing, expected
):
    base = str(tmp_path / "12")
    if readable:
        _png(base + ".png")
    else:
        (tmp_path / "12.png").write_bytes(b"<html>not an image</html>")
    found = by_name(base, 12, policy, skip_existing, FileNames())
    outcome = {
        "adopt": (base, base + ".png", None, None),
        "left_alone": (base, None, "cannot be read", None),
        "replace": (base, None, None, base + ".png"),
        "copy": (base + " (1)", None, None, None),
    }[expected]
    assert found.target == outcome[0]
    assert found.adopt == outcome[1]
    assert (found.left_alone and "cannot be read" in found.left_alone) or outcome[2] is None
    assert (found.left_alone is None) == (outcome[2] is None)
    assert found.replaces == outcome[3]


def test_nothing_there_downloads_to_the_planned_name(tmp_path):
    found = by_name(str(tmp_path / "12"), 12, "skip", True, FileNames())
    assert (found.target, found.adopt, found.left_alone, found.replaces) == (
        str(tmp_path / "12"),
        None,
        None,
        None,
    )
