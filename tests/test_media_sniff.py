"""media_kind: magic bytes first, then Content-Type; text never counts as media."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from scripts.civitai_manager_libs.transport.media_sniff import (
    MEDIA_EXTENSIONS,
    describe_non_media,
    media_kind,
    mime_for,
)


def _pillow(fmt):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt, ext", [("PNG", ".png"), ("JPEG", ".jpeg"), ("WEBP", ".webp"), ("GIF", ".gif")]
)
def test_real_images_are_recognised_whatever_the_content_type(fmt, ext):
    data = _pillow(fmt)
    assert media_kind(data[:64], None) == ext
    assert media_kind(data[:64], "text/html") == ext
    assert media_kind(data[:64], "application/octet-stream") == ext


@pytest.mark.parametrize(
    "head, ext",
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", ".mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", ".mp4"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", ".avif"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", ".mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm\x42\x87", ".webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", ".mkv"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", ".mp3"),
        (b"OggS\x00\x02\x00\x00", ".ogg"),
        (b"fLaC\x00\x00\x00\x22", ".flac"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", ".wav"),
    ],
)
def test_video_and_audio_signatures(head, ext):
    assert media_kind(head, "text/plain") == ext


@pytest.mark.parametrize(
    "body, ctype",
    [
        (b"<!DOCTYPE html><html><body>Just a moment...</body></html>", "image/jpeg"),
        (b"<html><head></head></html>", "text/html; charset=utf-8"),
        (b'{"error": "Not found"}', "application/json"),
        (b'  \n{"error": "x"}', "image/png"),
        (b"[1, 2, 3]", "video/mp4"),
        (b"\xef\xbb\xbf<?xml version='1.0'?><Error/>", "application/xml"),
        (b"Access denied", "image/webp"),
        (b"", "image/png"),
    ],
)
def test_text_bodies_are_never_media(body, ctype):
    assert media_kind(body, ctype) is None


def test_unknown_binary_falls_back_to_the_content_type():
    blob = bytes(range(128, 192))
    assert media_kind(blob, "image/png") == ".png"
    assert media_kind(blob, "video/webm; codecs=vp9") == ".webm"
    assert media_kind(blob, "application/octet-stream") is None
    assert media_kind(blob, "text/html") is None
    assert media_kind(blob, None) is None


def test_describe_non_media():
    assert "HTML page" in describe_non_media(b"<!doctype html><p>", "text/html")
    assert "JSON" in describe_non_media(b'{"a":1}', "application/json")
    assert "empty" in describe_non_media(b"", None)


def test_mime_for_every_extension():
    for ext in MEDIA_EXTENSIONS:
        assert "/" in mime_for(ext)
    assert mime_for(None) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.one_of(st.none(), st.text(max_size=30)))
def test_media_kind_is_total(data, ctype):
    kind = media_kind(data, ctype)
    assert kind is None or kind in MEDIA_EXTENSIONS
