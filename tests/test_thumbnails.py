"""Thumbnails: aspect, EXIF orientation, transparency, videos, location and atomic writes."""

import os

import pytest
from PIL import Image

from scripts.civitai_manager_libs.metadata import embed
from scripts.civitai_manager_libs.metadata.thumbnails import ThumbnailError, make_thumbnail


def test_jpeg_thumbnail_keeps_aspect_and_goes_in_dot_thumbnails(tmp_path):
    path = str(tmp_path / "123.jpeg")
    Image.new("RGB", (1600, 900), (200, 30, 30)).save(path, "JPEG")
    thumb = make_thumbnail(path)
    assert thumb == str(tmp_path / ".thumbnails" / "123.jpg")
    with Image.open(thumb) as image:
        assert image.format == "JPEG"
        assert image.size == (256, 144)
        r, g, b = image.getpixel((128, 72))
        assert r > 180 and g < 60 and b < 60


def test_exif_orientation_is_applied(tmp_path):
    path = str(tmp_path / "rotated.jpeg")
    image = Image.new("RGB", (400, 200), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 200, 200))  # left half white as stored
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(path, "JPEG", exif=exif)
    thumb = make_thumbnail(path, (100, 100))
    with Image.open(thumb) as out:
        assert out.size == (50, 100)  # portrait once orientation is applied
        top = out.getpixel((25, 10))
        bottom = out.getpixel((25, 90))
    assert sum(top) > 600 and sum(bottom) < 100  # stored left half ends up on top


def test_small_images_are_not_enlarged_and_size_is_configurable(tmp_path):
    path = str(tmp_path / "small.png")
    Image.new("RGB", (40, 30)).save(path, "PNG")
    with Image.open(make_thumbnail(path, (512, 512))) as out:
        assert out.size == (40, 30)
    big = str(tmp_path / "big.png")
    Image.new("RGB", (1000, 2000)).save(big, "PNG")
    with Image.open(make_thumbnail(big, [128, 64])) as out:
        assert out.size == (32, 64)


def test_transparency_is_kept_in_a_webp_thumbnail(tmp_path):
    path = str(tmp_path / "alpha.png")
    image = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    image.paste((0, 255, 0, 255), (100, 100, 200, 200))
    image.save(path, "PNG")
    thumb = make_thumbnail(path, (150, 150))
    assert thumb == str(tmp_path / ".thumbnails" / "alpha.webp")
    with Image.open(thumb) as out:
        assert out.mode == "RGBA"
        assert out.getpixel((5, 5))[3] == 0 and out.getpixel((75, 75))[3] == 255


def test_animated_gif_uses_first_frame_and_webp_works(tmp_path):
    gif = str(tmp_path / "anim.gif")
    frames = [Image.new("RGB", (80, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50)
    with Image.open(make_thumbnail(gif, (40, 40))) as out:
        assert out.size == (40, 20)
        assert out.convert("RGB").getpixel((20, 10))[0] > 200
    webp = str(tmp_path / "w.webp")
    Image.new("RGB", (64, 64), (9, 9, 9)).save(webp, "WEBP")
    assert make_thumbnail(webp).endswith(os.path.join(".thumbnails", "w.jpg"))


def test_videos_get_no_thumbnail(tmp_path):
    video = str(tmp_path / "clip.mp4")
    with open(video, "wb") as handle:
        handle.write(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    assert make_thumbnail(video) is None
    assert not os.path.exists(tmp_path / ".thumbnails")


def test_unreadable_file_and_bad_size_raise(tmp_path):
    html = str(tmp_path / "oops.jpeg")
    with open(html, "w") as handle:
        handle.write("<html>rate limited</html>")
    with pytest.raises(ThumbnailError, match="not a readable image"):
        make_thumbnail(html)
    good = str(tmp_path / "ok.png")
    Image.new("RGB", (10, 10)).save(good, "PNG")
    with pytest.raises(ValueError):
        make_thumbnail(good, (0, 10))
    with pytest.raises(ValueError):
        make_thumbnail(good, "big")


def test_failed_write_leaves_no_partial_thumbnail(tmp_path, monkeypatch):
    path = str(tmp_path / "p.png")
    Image.new("RGB", (50, 50)).save(path, "PNG")

    def refuse(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(embed.os, "replace", refuse)
    with pytest.raises(ThumbnailError, match="No space left"):
        make_thumbnail(path)
    assert os.listdir(tmp_path / ".thumbnails") == []


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    path = str(tmp_path / "depth.png")
    Image.new("I;16", (120, 60), 32768).save(path, "PNG")  # mid-grey at 16 bits
    with Image.open(make_thumbnail(path, (60, 60))) as out:
        low, high = out.convert("L").getextrema()
    assert 120 <= low <= high <= 136
