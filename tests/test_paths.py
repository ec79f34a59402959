"""paths.py: template validation, field sanitization (Linux and Windows rules), safe_join."""

import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.civitai_manager_libs.errors import TemplateError
from scripts.civitai_manager_libs.store.paths import (
    FIELDS,
    MAX_SEGMENT_BYTES,
    PathTemplate,
    fields_from_item,
    safe_join,
    sanitize_segment,
)
from scripts.civitai_manager_libs.records import ImageItem

ALL = "/".join("{%s}" % f for f in FIELDS)
WINDOWS_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$"} | {
    f"{b}{n}" for b in ("com", "lpt") for n in "123456789¹²³"
}


def assert_valid_segment(seg):
    """Independent check of the rules a segment must meet on Linux and on Windows."""
    # Linux
    assert seg not in ("", ".", ".."), repr(seg)
    assert "/" not in seg and "\0" not in seg, repr(seg)
    assert len(seg.encode("utf-8")) <= MAX_SEGMENT_BYTES, repr(seg)
    # Windows
    assert not any(ch in '<>:"/\\|?*' or ord(ch) < 32 for ch in seg), repr(seg)
    assert not seg.endswith((".", " ")), repr(seg)
    assert seg.split(".", 1)[0].rstrip(" ").lower() not in WINDOWS_RESERVED, repr(seg)
    # ours: no hidden files, NFC
    assert not seg.startswith("."), repr(seg)
    assert unicodedata.normalize("NFC", seg) == seg, repr(seg)


def segments(rel):
    return rel.split(os.sep)


# --------------------------------------------------------------------------- template validation


def test_unknown_field_is_named_with_the_valid_ones():
    with pytest.raises(TemplateError) as info:
        PathTemplate("{model_id}/{username}/{id}")
    message = str(info.value)
    assert "{username}" in message
    for field in FIELDS:
        assert "{%s}" % field in message


@pytest.mark.parametrize(
    "template, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/abs/{id}", "relative"),
        ("\\{id}", "relative"),
        ("C:\\imgs\\{id}", "relative"),
        ("c:{id}", "relative"),
        ("~/{id}", "relative"),
        ("../{id}", "'..'"),
        ("{model_id}/../{id}", "'..'"),
        ("{model_id}\\..\\{id}", "'..'"),
        ("./{id}", "'.'"),
        ("{model_id}//{id}", "empty folder"),
        ("{model_id}/", "file name"),
        ("{id!r}", "conversion"),
        ("{id:zz}", "does not fit a number"),
        ("{model_name:d}", "does not fit text"),
        ("{id:>100000}", "at most 200"),
        ("{date:%Y/%m}", "folder separator"),
        ("{id!r}", "format"),
        ("{id", "braces"),
        ("{}", "field"),
        ("{0}", "field"),
    ],
)
def test_bad_templates_are_refused(template, fragment):
    with pytest.raises(TemplateError, match=fragment):
        PathTemplate(template)


def test_non_text_template_is_refused():
    with pytest.raises(TemplateError):
        PathTemplate(None)


def test_template_reports_its_fields():
    assert PathTemplate("{creator}/{model_id}_{id}/{creator}").fields == (
        "creator",
        "model_id",
        "id",
    )
    assert PathTemplate("{model_id}/{id}") == PathTemplate("{model_id}/{id}")


# --------------------------------------------------------------------------- rendering


def test_default_template_renders_plain_ids():
    rel = PathTemplate("{model_id}/{id}").render({"model_id": 12, "id": 345})
    assert rel == os.path.join("12", "345")


def test_spec_presets_and_image_id_alias():
    fields = {"model_id": 1, "image_id": 99, "creator": "alice", "nsfw_level": "Soft"}
    assert PathTemplate("{creator}/{image_id}").render(fields) == os.path.join("alice", "99")
    assert PathTemplate("{nsfw_level}/{id}").render(fields) == os.path.join("Soft", "99")
    assert PathTemplate("{image_id}").render({"id": 7}) == "7"


def test_backslash_is_a_separator_in_templates():
    assert PathTemplate("{model_id}\\{id}").render({"model_id": 1, "id": 2}) == os.path.join(
        "1", "2"
    )


def test_missing_values_render_as_unknown():
    rel = PathTemplate("{creator}/{post_id}/{id}").render({"id": 5, "creator": None})
    assert rel == os.path.join("unknown", "unknown", "5")
    assert PathTemplate("{creator}").render({"creator": ""}) == "unknown"


@pytest.mark.parametrize(
    "creator, expected",
    [
        ("../../x", "_.._x"),
        ("..", "unknown"),
        ("a/b\\c:*?", "a_b_c___"),
        ("con", "_con"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Lpt9.tar.gz", "_Lpt9.tar.gz"),
        ("com1 ", "_com1"),
        ("console", "console"),
        (".hidden", "hidden"),
        ("...", "unknown"),
        ("name. . ", "name"),
        ("tab\there\nnew", "tab_here_new"),
        ("null\x00byte", "null_byte"),
        ("rtl\u202eevil", "rtlevil"),
        ("a\ud800b", "a_b"),
        ("line\u2028sep", "line_sep"),
        ("e\u0301t\u00e9", "\u00e9t\u00e9"),
        ('<a>"b"|', "_a__b__"),
    ],
)
def test_hostile_field_values(creator, expected):
    rel = PathTemplate("{creator}/{id}").render({"creator": creator, "id": 1})
    first, last = segments(rel)
    assert first == expected
    assert last == "1"
    assert_valid_segment(first)


def test_long_names_are_capped_in_bytes_without_splitting_characters():
    for char in ("a", "é", "日", "😀"):
        rel = PathTemplate("{model_name}/{id}").render({"model_name": char * 300, "id": 1})
        seg = segments(rel)[0]
        size = len(seg.encode("utf-8"))
        assert MAX_SEGMENT_BYTES - len(char.encode("utf-8")) < size <= MAX_SEGMENT_BYTES
        assert set(seg) == {char}


def test_reserved_name_revealed_by_the_cut_is_still_escaped():
    seg = sanitize_segment("con" + " " * 200 + "x")
    assert seg == "_con"
    assert_valid_segment(seg)


def test_literal_text_in_the_template_is_sanitized_too():
    rel = PathTemplate("img:{model_id}/{creator} - {id}").render(
        {"model_id": 3, "creator": "bob", "id": 9}
    )
    assert segments(rel) == ["img_3", "bob - 9"]


def test_fields_from_an_image_item():
    item = ImageItem(
        id=42,
        url="http://x/42.jpeg",
        nsfw_level="X",
        creator="../evil",
        post_id=7,
        model_id=1,
        model_name="My Model",
        version_id=2,
    )
    first = "{model_id}/{model_name}/{version_id}/{id}/{image_id}/{creator}/{nsfw_level}/{post_id}"
    rel = PathTemplate(first).render(fields_from_item(item))
    assert segments(rel) == ["1", "My Model", "2", "42", "42", "_evil", "X", "7"]
    assert PathTemplate(first).render(item) == rel  # the item itself works too
    assert PathTemplate("{creator}.{id}").render({"creator": "con", "id": 5}) == "_con.5"


# --------------------------------------------------------------------------- safe_join


def test_safe_join_accepts_paths_inside_root(tmp_path):
    assert safe_join(str(tmp_path), os.path.join("a", "b")) == str(tmp_path / "a" / "b")
    assert safe_join(tmp_path, "a/./c") == str(tmp_path / "a" / "c")


@pytest.mark.parametrize("rel", ["../x", "a/../../x", "/etc/passwd", "\\x", "C:x", ".", "a/..", ""])
def test_safe_join_refuses_leaving_root(tmp_path, rel):
    with pytest.raises(TemplateError):
        safe_join(str(tmp_path / "root"), rel)


def test_safe_join_refuses_a_symlink_out_of_root(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TemplateError, match="outside"):
        safe_join(str(root), "link/x")


def test_safe_join_refuses_a_sibling_with_a_common_prefix(tmp_path):
    with pytest.raises(TemplateError):
        safe_join(str(tmp_path / "img"), "../img2/x")


# --------------------------------------------------------------------------- property


HOSTILE = st.sampled_from(
    ["..", ".", "../../x", "con", "NUL.txt", "a/b\\c:*?", " ", "", "com1", "\x00", "é" * 300, "~"]
)
VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=300), HOSTILE)
TEMPLATES = st.sampled_from(
    [
        "{model_id}/{id}",
        "{creator}/{image_id}",
        "{nsfw_level}/{id}",
        ALL,
        "{model_name} ({model_id})/{version_id}/{creator}-{id}",
        ".{creator}./{id}.",
        "{creator}{creator}{creator}/{id}",
        "{creator}.{id}",
        "{model_name}/{creator}.txt",
    ]
)


@pytest.fixture(scope="module")
def prop_root(tmp_path_factory):
    return tmp_path_factory.mktemp("prop_root")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=TEMPLATES, values=st.fixed_dictionaries({f: VALUES for f in FIELDS}))
def test_rendered_paths_stay_inside_root_and_are_valid_everywhere(prop_root, template, values):
    rel = PathTemplate(template).render(values)
    for seg in segments(rel):
        assert_valid_segment(seg)
    target = safe_join(str(prop_root), rel)
    assert os.path.commonpath([str(prop_root), target]) == str(prop_root)
    assert target != str(prop_root)
    # The name really works on this file system.
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".jpeg", "wb") as fh:
        fh.write(b"x")
    assert os.path.isfile(target + ".jpeg")


# -- issue 23: the collector's fields and format specs ----------------------------------------


def _collector_item(**raw_extra):
    raw = {"postTitle": "Sunset study", "listedIn": {"collection_id": 7001, "tag": "sci-fi"}}
    raw["listedIn"]["collection_name"] = "Landscapes"
    raw.update(raw_extra)
    return ImageItem(
        id=42,
        url="http://x/42.jpeg",
        width=832,
        height=1216,
        type="video",
        nsfw_level="Soft",
        created_at="2025-03-04T05:06:07.890Z",
        base_model="SDXL 1.0",
        version_id=2,
        version_name="v2.0",
        raw=raw,
    )


def test_every_new_field_renders():
    template = (
        "{created_at}/{date}/{base_model}/{version_name}/{type}/{width}x{height}/"
        "{collection_id}/{collection_name}/{post_title}/{tag}"
    )
    rel = PathTemplate(template).render(_collector_item())
    assert segments(rel) == [
        "2025-03-04T05_06_07.890Z",
        "2025-03-04",
        "SDXL 1.0",
        "v2.0",
        "video",
        "832x1216",
        "7001",
        "Landscapes",
        "Sunset study",
        "sci-fi",
    ]


def test_format_specs_on_any_field():
    item = _collector_item()
    rel = PathTemplate("{date:%Y-%m}/{id:>010}_{base_model:.4}_{width:05d}").render(item)
    assert segments(rel) == ["2025-03", "0000000042_SDXL_00832"]
    # a value of another type than the field's is formatted as text, a missing one is 'unknown'
    assert PathTemplate("{id:>05}").render({"id": "42"}) == "00042"
    assert PathTemplate("{date:%Y}/{id}").render({"id": 1}) == os.path.join("unknown", "1")


def test_hostile_new_values_stay_in_the_root(tmp_path):
    item = _collector_item(
        postTitle="../../../etc/passwd",
        listedIn={"collection_name": "..\\..\\win", "tag": ["not", "text"], "collection_id": "/"},
    )
    template = "{collection_name}/{post_title:.>30}/{tag}/{collection_id}/{id}"
    rel = PathTemplate(template).render(item)
    parts = segments(rel)
    assert parts[2] == "unknown" and parts[3] == "unknown"
    assert all(".." != p and "/" not in p and "\\" not in p for p in parts)
    target = safe_join(str(tmp_path), rel)
    assert target.startswith(str(tmp_path) + os.sep)


def test_bad_spec_on_the_command_line_is_exit_2(tmp_path, capsys):
    import io

    from scripts.civitai_manager_libs.cli import command as cli

    code = cli.main(
        ["download", "collection", "7001", "--template", "{id:zz}", "-o", str(tmp_path / "o")],
        out=io.StringIO(),
    )
    assert code == 2
    assert "does not fit a number" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")
