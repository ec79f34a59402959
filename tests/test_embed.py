"""Embedding infotext in PNG/JPEG/WebP without re-encoding; read back exactly as WebUI does."""

import io
import os
import struct
import zlib

import piexif
import piexif.helper
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from scripts.civitai_manager_libs.metadata import embed
from scripts.civitai_manager_libs.store import confined
from scripts.civitai_manager_libs.metadata.embed import EmbedSkipped, embed_infotext, read_infotext

TEXT = (
    "a castle, sunset\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 64x48"
)
UNICODE_TEXT = "城堡, 夕阳 — ünïcödé\nNegative prompt: 模糊\nSteps: 20, Sampler: Euler a, Seed: 1"


def noise_image(mode="RGB", size=(64, 48)):
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))


def pixels(path, mode=None):
    with Image.open(path) as image:
        image.load()
        return image.convert(mode or image.mode).tobytes()


def webui_png_parameters(path):
    """How WebUI's PNG Info reads a PNG: Image.open(...).info['parameters']."""
    with Image.open(path) as image:
        return image.info.get("parameters")


def webui_exif_comment(path):
    """How WebUI reads JPEG/WebP: piexif.load(info['exif']) -> UserComment via the helper."""
    with Image.open(path) as image:
        exif = piexif.load(image.info["exif"])
    return piexif.helper.UserComment.load(exif["Exif"][piexif.ExifIFD.UserComment])


def png_chunks(path):
    data = open(path, "rb").read()
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(ctype + payload) & 0xFFFFFFFF, f"bad CRC on {ctype!r}"
        out.append((ctype, payload))
        pos += 12 + length
    return out


# ------------------------------------------------------------------------------------------- PNG


@pytest.fixture
def comfy_png(tmp_path):
    """A PNG carrying ComfyUI prompt/workflow chunks, a compressed text chunk and a gamma chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"3": {"class_type": "KSampler"}}')
    info.add_text("workflow", '{"nodes": [1, 2, 3]}', zip=True)
    info.add_itxt("Description", "описание", lang="ru")
    path = tmp_path / "comfy.png"
    noise_image("RGBA").save(path, "PNG", pnginfo=info)
    return str(path)


def test_png_gets_parameters_chunk_and_keeps_everything_else(comfy_png):
    before_chunks = png_chunks(comfy_png)
    before_pixels = pixels(comfy_png)
    assert embed_infotext(comfy_png, TEXT) == comfy_png
    after_chunks = png_chunks(comfy_png)
    added = [c for c in after_chunks if c not in before_chunks]
    assert added == [(b"tEXt", b"parameters\x00" + TEXT.encode("latin-1"))]
    assert [
        c for c in after_chunks if c in before_chunks
    ] == before_chunks  # same bytes, same order
    assert after_chunks.index(added[0]) < [t for t, _ in after_chunks].index(b"IDAT")
    assert webui_png_parameters(comfy_png) == TEXT
    with Image.open(comfy_png) as image:
        assert image.info["prompt"] == '{"3": {"class_type": "KSampler"}}'
        assert image.info["workflow"] == '{"nodes": [1, 2, 3]}'
    assert pixels(comfy_png) == before_pixels
    assert read_infotext(comfy_png) == TEXT


def test_png_non_latin_text_goes_in_an_itxt_chunk(tmp_path):
    path = str(tmp_path / "u.png")
    noise_image().save(path, "PNG")
    embed_infotext(path, UNICODE_TEXT)
    types = [t for t, payload in png_chunks(path) if payload.startswith(b"parameters\x00")]
    assert types == [b"iTXt"]
    assert webui_png_parameters(path) == UNICODE_TEXT


def test_png_with_its_own_parameters_is_left_untouched(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "original prompt\nSteps: 30, Sampler: DDIM, Seed: 7")
    path = str(tmp_path / "orig.png")
    noise_image().save(path, "PNG", pnginfo=info)
    before = open(path, "rb").read()
    with pytest.raises(EmbedSkipped) as caught:
        embed_infotext(path, TEXT)
    assert "already carries its own 'parameters'" in caught.value.reason
    assert open(path, "rb").read() == before


def test_embedding_the_same_text_twice_changes_nothing(tmp_path):
    path = str(tmp_path / "again.png")
    noise_image().save(path, "PNG")
    embed_infotext(path, TEXT)
    once = open(path, "rb").read()
    embed_infotext(path, TEXT)
    assert open(path, "rb").read() == once


def test_truncated_png_is_refused_not_broken(tmp_path):
    path = str(tmp_path / "cut.png")
    noise_image().save(path, "PNG")
    data = open(path, "rb").read()[:-30]
    open(path, "wb").write(data)
    with pytest.raises(EmbedSkipped, match="truncated|IEND"):
        embed_infotext(path, TEXT)
    assert open(path, "rb").read() == data


# ------------------------------------------------------------------------------------------ JPEG


def jpeg_scan(path):
    data = open(path, "rb").read()
    return data[data.index(b"\xff\xda") :]


def test_jpeg_usercomment_without_reencoding(tmp_path):
    path = str(tmp_path / "a.jpeg")
    noise_image().save(path, "JPEG", quality=90)
    before_pixels, before_scan = pixels(path), jpeg_scan(path)
    embed_infotext(path, UNICODE_TEXT)
    data = open(path, "rb").read()
    assert data[2:4] == b"\xff\xe0"  # the JFIF APP0 header is still first
    assert jpeg_scan(path) == before_scan  # entropy-coded data byte-identical
    assert pixels(path) == before_pixels
    assert webui_exif_comment(path) == UNICODE_TEXT
    raw = piexif.load(path)["Exif"][piexif.ExifIFD.UserComment]
    assert raw == b"UNICODE\x00" + UNICODE_TEXT.encode("utf-16-be")
    assert read_infotext(path) == UNICODE_TEXT


def test_jpeg_existing_exif_is_merged_not_replaced(tmp_path):
    path = str(tmp_path / "camera.jpeg")
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"Canon", piexif.ImageIFD.Orientation: 6},
            "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2024:01:02 03:04:05"},
            "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N"},
        }
    )
    noise_image().save(path, "JPEG", quality=85, exif=exif)
    before_pixels = pixels(path)
    embed_infotext(path, TEXT)
    loaded = piexif.load(path)
    assert loaded["0th"][piexif.ImageIFD.Make] == b"Canon"
    assert loaded["0th"][piexif.ImageIFD.Orientation] == 6
    assert loaded["Exif"][piexif.ExifIFD.DateTimeOriginal] == b"2024:01:02 03:04:05"
    assert loaded["GPS"][piexif.GPSIFD.GPSLatitudeRef] == b"N"
    assert webui_exif_comment(path) == TEXT
    assert pixels(path) == before_pixels
    assert open(path, "rb").read().count(b"Exif\x00\x00") == 1  # replaced in place, not doubled


def test_jpeg_exif_with_tags_piexif_would_drop_is_kept_untouched(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0xC000] = "private 0th tag"
    exif.get_ifd(0x8769)[0x9999] = "private Exif tag"
    path = str(tmp_path / "private.jpeg")
    noise_image().save(path, "JPEG", exif=exif.tobytes())
    before = open(path, "rb").read()
    with pytest.raises(EmbedSkipped, match="2 tag\\(s\\) that could not be carried over"):
        embed_infotext(path, TEXT)
    assert open(path, "rb").read() == before


def test_jpeg_with_its_own_usercomment_is_kept(tmp_path):
    path = str(tmp_path / "a1111.jpeg")
    noise_image().save(path, "JPEG")
    # Exactly how WebUI writes a JPEG's infotext.
    own = piexif.dump(
        {"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump("own", "unicode")}}
    )
    piexif.insert(own, path)
    before = open(path, "rb").read()
    assert read_infotext(path) == "own"
    with pytest.raises(EmbedSkipped, match="own EXIF UserComment"):
        embed_infotext(path, TEXT)
    assert open(path, "rb").read() == before


def test_jpeg_text_over_the_segment_limit_is_refused(tmp_path):
    path = str(tmp_path / "long.jpeg")
    noise_image().save(path, "JPEG")
    before = open(path, "rb").read()
    with pytest.raises(EmbedSkipped, match="65,533"):
        embed_infotext(path, "長" * 33000)  # 66,000 bytes of UTF-16
    assert open(path, "rb").read() == before
    embed_infotext(path, "長" * 32000)  # 64,000 bytes still fits
    assert webui_exif_comment(path) == "長" * 32000


# ------------------------------------------------------------------------------------------ WebP


@pytest.mark.parametrize(
    "mode, options, chunk",
    [
        ("RGB", {"quality": 80}, b"VP8 "),
        ("RGBA", {"lossless": True}, b"VP8L"),
        ("RGBA", {"quality": 80}, b"VP8X"),
    ],
)
def test_webp_exif_chunk_without_reencoding(tmp_path, mode, options, chunk):
    path = str(tmp_path / "w.webp")
    noise_image(mode, (63, 47)).save(path, "WEBP", **options)
    data = open(path, "rb").read()
    assert data[12:16] == chunk
    before_pixels = pixels(path)
    embed_infotext(path, UNICODE_TEXT)
    data = open(path, "rb").read()
    assert data[12:16] == b"VP8X"
    assert data[20] & 0x08, "VP8X EXIF flag"
    assert bool(data[20] & 0x10) == (mode == "RGBA"), "VP8X alpha flag"
    width = int.from_bytes(data[24:27], "little") + 1
    height = int.from_bytes(data[27:30], "little") + 1
    assert (width, height) == (63, 47)
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert pixels(path) == before_pixels
    assert webui_exif_comment(path) == UNICODE_TEXT
    assert read_infotext(path) == UNICODE_TEXT


def test_webp_existing_exif_is_merged(tmp_path):
    path = str(tmp_path / "e.webp")
    exif = piexif.dump({"0th": {piexif.ImageIFD.Artist: b"someone"}})
    noise_image().save(path, "WEBP", quality=70, exif=exif)
    before_pixels = pixels(path)
    embed_infotext(path, TEXT)
    with Image.open(path) as image:
        loaded = piexif.load(image.info["exif"])
    assert loaded["0th"][piexif.ImageIFD.Artist] == b"someone"
    assert webui_exif_comment(path) == TEXT
    assert pixels(path) == before_pixels
    assert open(path, "rb").read().count(b"EXIF") == 1


# --------------------------------------------------------------------------- sidecar-only files


def test_animated_webp_gif_and_video_are_refused(tmp_path):
    frames = [noise_image() for _ in range(3)]
    webp = str(tmp_path / "anim.webp")
    frames[0].save(webp, "WEBP", save_all=True, append_images=frames[1:], duration=50)
    gif = str(tmp_path / "anim.gif")
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50)
    video = str(tmp_path / "clip.mp4")
    with open(video, "wb") as handle:
        handle.write(b"\x00\x00\x00\x18ftypisom" + bytes(64))
    for path, reason in ((webp, "animated WebP"), (gif, "GIF"), (video, "video")):
        before = open(path, "rb").read()
        with pytest.raises(EmbedSkipped, match=reason):
            embed_infotext(path, TEXT)
        assert open(path, "rb").read() == before
    assert read_infotext(video) is None


def test_failed_replace_leaves_the_original_and_no_temp_file(tmp_path, monkeypatch):
    path = str(tmp_path / "keep.png")
    noise_image().save(path, "PNG")
    before = open(path, "rb").read()

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(embed.os, "replace", refuse)
    with pytest.raises(OSError):
        embed_infotext(path, TEXT)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["keep.png"]


def test_read_infotext_matches_what_webui_writes_for_png(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", UNICODE_TEXT)  # WebUI's own PNG writer
    path = str(tmp_path / "webui.png")
    noise_image().save(path, "PNG", pnginfo=info)
    assert read_infotext(path) == UNICODE_TEXT
    plain = str(tmp_path / "plain.png")
    noise_image().save(plain, "PNG")
    assert read_infotext(plain) is None


def test_png_bytes_level_helpers_do_not_need_files():
    buffer = io.BytesIO()
    noise_image().save(buffer, "PNG")
    data = buffer.getvalue()
    new = embed.embed_png(data, TEXT)
    assert len(new) == len(data) + 12 + len(b"parameters\x00") + len(TEXT)
    assert embed.embed_png(new, TEXT) is None


def test_atomic_write_keeps_mode_of_existing_files_and_umask_for_new_ones(tmp_path):
    existing = str(tmp_path / "img.png")
    noise_image().save(existing, "PNG")
    os.chmod(existing, 0o640)
    embed_infotext(existing, TEXT)
    assert os.stat(existing).st_mode & 0o777 == 0o640
    new = str(tmp_path / "new.txt")
    confined.write_atomic(new, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(new).st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.filterwarnings("ignore:Truncated File Read")  # Pillow notices the bad count too
def test_corrupt_exif_counts_are_refused_before_piexif_reads_them(tmp_path):
    """A hostile count would make piexif build a multi-gigabyte struct format (a hang)."""
    tiff = bytearray(piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon EOS"}})[6:])
    entry = 8 + 2  # first entry of IFD0 in piexif's big-endian layout
    assert tiff[entry : entry + 2] == piexif.ImageIFD.Make.to_bytes(2, "big")
    tiff[entry + 4 : entry + 8] = (0x7FFFFFFF).to_bytes(4, "big")
    path = str(tmp_path / "hostile.jpeg")
    noise_image().save(path, "JPEG", exif=b"Exif\x00\x00" + bytes(tiff))
    before = open(path, "rb").read()
    with pytest.raises(EmbedSkipped, match="cannot be read"):
        embed_infotext(path, TEXT)
    assert open(path, "rb").read() == before
    assert read_infotext(path) is None


@pytest.fixture(scope="module")
def tiny_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    sources = {}
    for name, fmt, options in (
        ("t.png", "PNG", {}),
        ("t.jpeg", "JPEG", {}),
        ("t.webp", "WEBP", {"lossless": True}),
    ):
        path = folder / name
        noise_image(size=(9, 7)).save(path, fmt, **options)
        sources[name] = path.read_bytes()
    return sources


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300))
def test_any_text_reads_back_exactly_as_webui_sees_it(tmp_path, tiny_images, text):
    for name, data in tiny_images.items():
        path = tmp_path / name
        path.write_bytes(data)
        embed_infotext(str(path), text)
        seen = webui_png_parameters(path) if name.endswith(".png") else webui_exif_comment(path)
        assert seen == text
        assert read_infotext(str(path)) == text
