"""The gallery cache is capped (issue 24 item 11): ``gallery_cache_max_mb``, least recently used
files removed first, never the page being shown, nothing outside the cache folder."""

from __future__ import annotations

import os

import pytest
from test_gallery_action import env, image_urls  # noqa: F401 - the fixture is used by name

from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.store.cache_limit import trim
from scripts.civitai_manager_libs.ui.downloads import fetch_preview, fetch_thumbnails

MB = 1024 * 1024


def _file(folder, name, size, age):
    path = folder / name
    path.write_bytes(b"x" * size)
    os.utime(path, (1_000_000 - age, 1_000_000 - age))
    return path


def test_trim_removes_the_least_recently_used_first_down_to_the_low_water(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    old = _file(cache, "old.jpeg", 400_000, age=300)
    mid = _file(cache, "mid.jpeg", 400_000, age=200)
    new = _file(cache, "new.jpeg", 400_000, age=100)
    assert trim(str(cache), 2 * MB) == (0, 0)  # under the cap: nothing goes
    removed, freed = trim(str(cache), 1_000_000)
    assert (removed, freed) == (1, 400_000)
    assert not old.exists() and mid.exists() and new.exists()
    # a file in use stays even when it is the oldest
    removed, _ = trim(str(cache), 500_000, keep=[str(mid)])
    assert mid.exists() and not new.exists() and removed == 1


def test_trim_never_follows_a_link_out_of_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"y" * 900_000)
    os.symlink(outside, cache / "link.png")
    _file(cache, "a.jpeg", 600_000, age=10)
    trim(str(cache), 100_000)
    assert outside.exists() and outside.stat().st_size == 900_000


def test_pages_and_previews_keep_the_cache_under_its_cap(env):  # noqa: F811
    setting.set("gallery_cache_max_mb", 1)
    cache = setting.get("gallery_cache_path")
    os.makedirs(cache, exist_ok=True)
    for n in range(4):  # 2 MB of pictures seen long ago
        path = os.path.join(cache, f"old{n}.jpeg")
        with open(path, "wb") as fh:
            fh.write(b"z" * 512 * 1024)
        os.utime(path, (1000 + n, 1000 + n))
    urls = [url for _id, url in image_urls(env, 6)]
    paths, _ = fetch_thumbnails(urls)
    assert all(p and os.path.isfile(p) for p in paths)  # the page shown is kept
    total = sum(os.path.getsize(os.path.join(cache, f)) for f in os.listdir(cache))
    assert total <= 1 * 1024 * 1024
    assert not os.path.exists(os.path.join(cache, "old0.jpeg"))  # the oldest went first
    preview = fetch_preview(urls[0])
    assert preview and os.path.isfile(preview)


@pytest.mark.parametrize("limit", [0])
def test_zero_means_no_cap(env, limit):  # noqa: F811
    setting.set("gallery_cache_max_mb", limit)
    cache = setting.get("gallery_cache_path")
    os.makedirs(cache, exist_ok=True)
    big = os.path.join(cache, "big.jpeg")
    with open(big, "wb") as fh:
        fh.write(b"z" * 2 * 1024 * 1024)
    os.utime(big, (1000, 1000))
    fetch_thumbnails([url for _id, url in image_urls(env, 2)])
    assert os.path.exists(big)
