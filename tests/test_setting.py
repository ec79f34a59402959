"""setting.py: specs, validation, atomic JSON persistence, env overrides, secrets, revision."""

import json
import logging
import os
import stat
import subprocess
import sys
import threading

import pytest

from scripts.civitai_manager_libs.util import logging_setup
from scripts.civitai_manager_libs import setting
from scripts.civitai_manager_libs.errors import SettingsError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def clean_settings(tmp_path, monkeypatch):
    """Each test starts from the defaults, with no env overrides and a settings file in tmp_path."""
    for name in ("CIVITAI_BASE_URL", "CIVITAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CIVITAI_GALLERY_SETTINGS", str(tmp_path / "settings.json"))
    setting.reset()
    yield
    setting.reset()


def read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --------------------------------------------------------------------------- defaults and specs


def test_defaults_follow_the_design_table():
    expected = {
        "http_timeout": 30.0,
        "http_connect_timeout": 10.0,
        "http_max_retries": 5,
        "http_host_down_after": 5,
        "http_backoff_factor": 0.5,
        "http_retry_after_cap": 120.0,
        "http_sleep_request": "0",  # issue 22: pacing, off
        "http_limit_rate": "",
        "civitai_base_url": "https://civitai.com",
        "civitai_api_key": "",
        "civitai_red_base_url": "https://civitai.red",  # issue 20: the front for Mature/X
        "civitai_video_base_url": "https://image-b2.civitai.com",  # issue 20
        "gallery_download_batch_size": 5,
        "gallery_download_timeout": 30.0,
        "gallery_max_concurrent_downloads": 3,
        "gallery_page_size": 40,
        "gallery_cache_path": os.path.join(REPO, "data", "gallery_cache"),
        "images.output_path": "./images",
        "images.path_template": "{model_id}/{id}",
        "images.metadata_format": "json",
        "images.save_metadata": True,
        "images.default_nsfw_filter": ["None", "Soft"],
        "images.max_concurrent": 5,
        "images.skip_existing": True,
        "images.generate_thumbnails": False,
        "images.thumbnail_size": (256, 256),
        "images.duplicate_policy": "skip",
        "images.min_free_space_mb": 200,
        "images.max_file_size_mb": 2048,
        "models_path": "",  # issue 13
        "resources.confirm_over_mb": 1024,
        "gallery_cache_max_mb": 500,  # issue 24
        "ui_language": "",  # issue 24
        "resources.lookup_max_age_hours": 24.0,  # issue 20: cached look-ups age
        "resources.max_unknown_size_mb": 8192,
    }
    assert set(setting.SPECS) == set(expected)
    for key, value in expected.items():
        assert setting.get(key) == value, key
        assert type(setting.get(key)) is type(value), key
    assert setting.repo_root() == REPO


def test_every_spec_is_described_and_its_default_is_valid():
    for key, spec in setting.SPECS.items():
        assert spec.key == key
        assert spec.type in {"int", "float", "bool", "str", "list", "tuple"}
        assert len(spec.description) > 15, key
        assert spec.validate(spec.default) == spec.default, key
        if spec.min is not None and spec.type in ("int", "float"):
            with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
                spec.validate(spec.min - 1)
    assert setting.SPECS["civitai_api_key"].secret
    assert setting.SPECS["civitai_api_key"].env == "CIVITAI_API_KEY"
    assert setting.SPECS["civitai_base_url"].env == "CIVITAI_BASE_URL"
    assert setting.SPECS["images.duplicate_policy"].choices == ("skip", "replace", "keep_both")


def test_module_attributes_for_plain_and_dotted_keys():
    assert setting.http_timeout == 30.0
    assert setting.gallery_download_batch_size == 5
    assert setting.images_output_path == "./images"
    setting.set("images.output_path", "/data/pics")
    assert setting.images_output_path == "/data/pics"
    assert "images_max_concurrent" in dir(setting)
    with pytest.raises(AttributeError):
        setting.no_such_setting  # noqa: B018


def test_returned_lists_are_copies():
    value = setting.get("images.default_nsfw_filter")
    value.append("X")
    assert setting.get("images.default_nsfw_filter") == ["None", "Soft"]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "key, value",
    [
        ("http_timeout", "30"),
        ("http_timeout", 0),
        ("http_timeout", float("nan")),
        ("http_max_retries", 2.5),
        ("http_max_retries", True),
        ("http_max_retries", -1),
        ("images.save_metadata", "yes"),
        ("images.save_metadata", 1),
        ("images.output_path", ""),
        ("images.output_path", 5),
        ("images.max_concurrent", 0),
        ("civitai_base_url", "civitai.com"),
        ("civitai_base_url", "ftp://civitai.com"),
        ("civitai_base_url", "https://civitai.com/?x=1"),
        ("images.path_template", "{model_id}/{nope}"),
        ("images.path_template", "/etc/{id}"),
    ],
)
def test_bad_values_are_refused_naming_the_key_and_change_nothing(key, value):
    before = setting.get(key)
    rev = setting.revision()
    with pytest.raises(SettingsError) as info:
        setting.set(key, value)
    assert f"'{key}'" in str(info.value)
    assert setting.get(key) == before
    assert setting.revision() == rev


def test_unknown_key_is_refused_with_the_known_keys():
    with pytest.raises(
        SettingsError, match="Unknown setting 'images.outputpath'.*images.output_path"
    ):
        setting.set("images.outputpath", "x")
    with pytest.raises(SettingsError, match="Unknown setting"):
        setting.get("nope")


def test_numbers_are_normalized():
    assert setting.set("http_timeout", 12) == 12.0
    assert isinstance(setting.http_timeout, float)
    assert setting.set("images.max_concurrent", 4.0) == 4  # a slider's float
    assert isinstance(setting.images_max_concurrent, int)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("json", "json"),
        ("json,txt,exif", "json,txt,exif"),
        ("EXIF, json", "json,exif"),
        (["txt", "json", "txt"], "json,txt"),
        (("exif",), "exif"),
        ({"exif", "json"}, "json,exif"),
    ],
)
def test_metadata_format_accepts_text_or_list_and_normalizes(value, expected):
    assert setting.set("images.metadata_format", value) == expected
    assert setting.get("images.metadata_format") == expected


@pytest.mark.parametrize("value", ["xml", "json,xml", "", " , ", ["json", 3], 7])
def test_metadata_format_refuses_unknown_or_empty(value):
    with pytest.raises(SettingsError, match="images.metadata_format"):
        setting.set("images.metadata_format", value)


@pytest.mark.parametrize(
    "value, expected",
    [
        ((128, 64), (128, 64)),
        ([300, 200], (300, 200)),
        ("256x256", (256, 256)),
        ("96 X 48", (96, 48)),
    ],
)
def test_thumbnail_size_forms(value, expected):
    assert setting.set("images.thumbnail_size", value) == expected
    assert setting.images_thumbnail_size == expected


@pytest.mark.parametrize("value", ["big", "256", (1, 2, 3), (0, 0), (256, 99999), ("a", "b"), 256])
def test_thumbnail_size_refusals(value):
    with pytest.raises(SettingsError, match="images.thumbnail_size"):
        setting.set("images.thumbnail_size", value)


def test_nsfw_filter_is_a_normalized_subset():
    assert setting.set("images.default_nsfw_filter", ["x", "None", "soft", "X"]) == [
        "None",
        "Soft",
        "X",
    ]
    assert setting.set("images.default_nsfw_filter", "Mature") == ["Mature"]
    for bad in (["None", "Spicy"], [], "", [None]):
        with pytest.raises(SettingsError, match="images.default_nsfw_filter"):
            setting.set("images.default_nsfw_filter", bad)
    assert setting.get("images.default_nsfw_filter") == ["Mature"]


def test_duplicate_policy_choices():
    assert setting.set("images.duplicate_policy", "keep-both") == "keep_both"
    assert setting.set("images.duplicate_policy", "REPLACE") == "replace"
    with pytest.raises(SettingsError, match="skip, replace, keep_both"):
        setting.set("images.duplicate_policy", "delete")
    assert setting.get("images.duplicate_policy") == "replace"


def test_base_url_loses_its_trailing_slash():
    assert setting.set("civitai_base_url", "http://127.0.0.1:8765/") == "http://127.0.0.1:8765"


def test_update_is_all_or_nothing():
    with pytest.raises(SettingsError, match="http_max_retries"):
        setting.update({"http_timeout": 5, "http_max_retries": "many"})
    assert setting.http_timeout == 30.0
    setting.update({"http_timeout": 5, "http_max_retries": 2})
    assert (setting.http_timeout, setting.http_max_retries) == (5.0, 2)


# --------------------------------------------------------------------------- persistence


def test_save_then_load_round_trip_on_disk(tmp_path):
    path = tmp_path / "conf" / "s.json"
    setting.update(
        {
            "images.thumbnail_size": "128x96",
            "images.metadata_format": "txt,json",
            "images.default_nsfw_filter": ["X"],
            "http_max_retries": 1,
        }
    )
    assert setting.save(str(path)) == str(path)
    data = read_json(path)
    assert set(data) == set(setting.SPECS) - {"civitai_api_key"}
    assert data["images.thumbnail_size"] == [128, 96]
    assert data["images.metadata_format"] == "json,txt"
    assert data["http_max_retries"] == 1
    assert os.listdir(path.parent) == ["s.json"]  # no temp file left behind

    setting.reset()
    assert setting.http_max_retries == 5
    assert setting.load(str(path)) == str(path)
    assert setting.images_thumbnail_size == (128, 96)
    assert setting.images_default_nsfw_filter == ["X"]
    assert setting.http_max_retries == 1


def test_default_path_comes_from_the_environment(tmp_path):
    assert setting.settings_path() == str(tmp_path / "settings.json")
    setting.set("gallery_page_size", 60)
    setting.save()
    assert read_json(tmp_path / "settings.json")["gallery_page_size"] == 60
    setting.reset()
    setting.load()
    assert setting.gallery_page_size == 60


def test_default_path_without_environment(monkeypatch):
    monkeypatch.delenv("CIVITAI_GALLERY_SETTINGS")
    assert setting.settings_path() == os.path.join(REPO, "data", "settings.json")


def test_load_of_a_missing_file_keeps_the_settings(tmp_path):
    setting.set("gallery_page_size", 10)
    assert setting.load(str(tmp_path / "absent.json")) is None
    assert setting.gallery_page_size == 10


def test_load_replaces_values_missing_keys_take_defaults(tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"images.max_concurrent": 2}))
    setting.set("gallery_page_size", 10)
    setting.load(str(path))
    assert setting.images_max_concurrent == 2
    assert setting.gallery_page_size == 40


@pytest.mark.parametrize(
    "content, message",
    [
        ({"images.max_concurrent": 2, "images.bogus": 1}, "images.bogus"),
        ({"images.max_concurrent": "two"}, "images.max_concurrent"),
        ({"images.thumbnail_size": [1, 2, 3]}, "images.thumbnail_size"),
        ({"images.metadata_format": "json,pdf"}, "images.metadata_format"),
        ([1, 2], "JSON object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_file_is_refused_and_nothing_changes(tmp_path, content, message):
    path = tmp_path / "bad.json"
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text)
    setting.set("gallery_page_size", 33)
    rev = setting.revision()
    with pytest.raises(SettingsError, match=message) as info:
        setting.load(str(path))
    assert str(path) in str(info.value)
    assert setting.gallery_page_size == 33
    assert setting.images_max_concurrent == 5
    assert setting.revision() == rev
    assert path.read_text() == text  # the file is not touched either


def test_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    setting.set("gallery_page_size", 11)
    setting.save(str(path))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(setting.os, "replace", broken_replace)
    setting.set("gallery_page_size", 22)
    with pytest.raises(SettingsError, match="No space left on device"):
        setting.save(str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.json"]  # temp file cleaned up


def test_save_into_an_impossible_folder_is_a_settings_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SettingsError, match="CIVITAI_GALLERY_SETTINGS"):
        setting.save(str(blocker / "settings.json"))


def test_concurrent_saves_never_leave_a_half_written_file(tmp_path):
    path = tmp_path / "s.json"
    setting.save(str(path))
    errors = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                read_json(path)
            except (ValueError, OSError) as exc:  # pragma: no cover - the failure we look for
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(60):
            setting.set("gallery_page_size", 1 + i % 100)
            setting.save(str(path))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert read_json(path)["gallery_page_size"] == 60


# --------------------------------------------------------------------------- secrets


def test_api_key_is_masked_and_not_saved_by_default(tmp_path):
    secret = "abcd1234secretkey"
    setting.set("civitai_api_key", secret)
    assert setting.get("civitai_api_key") == secret
    assert setting.as_dict()["civitai_api_key"] == "***"
    assert setting.as_dict(redact=False)["civitai_api_key"] == secret
    path = tmp_path / "s.json"
    setting.save(str(path))
    assert secret not in path.read_text()
    assert "civitai_api_key" not in read_json(path)
    # registered with the log filter
    assert secret not in logging_setup.redact(f"using key {secret}")


def test_api_key_saved_only_on_request_and_private(tmp_path):
    secret = "zzzz9876secretkey"
    setting.set("civitai_api_key", secret)
    path = tmp_path / "s.json"
    setting.save(str(path), include_secrets=True)
    assert read_json(path)["civitai_api_key"] == secret
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    setting.reset()
    setting.load(str(path))
    assert setting.civitai_api_key == secret


def test_a_bad_api_key_is_refused_without_echoing_it():
    with pytest.raises(SettingsError) as info:
        setting.set("civitai_api_key", "abc def-secretpart")
    assert "secretpart" not in str(info.value)
    assert "civitai_api_key" in str(info.value)


def test_empty_key_is_masked_as_empty():
    assert setting.as_dict()["civitai_api_key"] == ""


def test_settings_log_lines_do_not_carry_the_key(tmp_path, caplog):
    secret = "kkkk5555secretkey"
    setting.set("civitai_api_key", secret)
    # No SecretFilter installed here: the raw records themselves must not carry the key.
    with caplog.at_level(logging.DEBUG, logger="scripts.civitai_manager_libs.settings.state"):
        setting.save(str(tmp_path / "s.json"), include_secrets=True)
        setting.load(str(tmp_path / "s.json"))
    assert caplog.records  # save and load do log
    assert all(secret not in record.getMessage() for record in caplog.records)


# --------------------------------------------------------------------------- environment


def test_env_overrides_beat_set_and_file(tmp_path, monkeypatch):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"civitai_base_url": "http://file.example:1"}))
    setting.load(str(path))
    assert setting.civitai_base_url == "http://file.example:1"
    assert setting.source("civitai_base_url") == "set"
    monkeypatch.setenv("CIVITAI_BASE_URL", "http://127.0.0.1:9999/")
    assert setting.civitai_base_url == "http://127.0.0.1:9999"
    assert setting.source("civitai_base_url") == "env"
    setting.set("civitai_base_url", "http://other.example")
    assert setting.civitai_base_url == "http://127.0.0.1:9999"
    # the override is not written to the file
    setting.save(str(path))
    assert read_json(path)["civitai_base_url"] == "http://other.example"
    monkeypatch.delenv("CIVITAI_BASE_URL")
    assert setting.civitai_base_url == "http://other.example"
    assert setting.source("images.output_path") == "default"


def test_env_api_key_is_used_masked_and_never_saved(tmp_path, monkeypatch):
    secret = "envkey0000secret"
    monkeypatch.setenv("CIVITAI_API_KEY", secret)
    assert setting.civitai_api_key == secret
    assert setting.as_dict()["civitai_api_key"] == "***"
    path = tmp_path / "s.json"
    setting.save(str(path), include_secrets=True)
    assert secret not in path.read_text()
    assert secret not in logging_setup.redact(f"key={secret} and {secret}")


def test_invalid_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("CIVITAI_BASE_URL", "not a url")
    with pytest.raises(SettingsError, match="CIVITAI_BASE_URL"):
        setting.get("civitai_base_url")


def test_env_override_reaches_a_fresh_process(tmp_path):
    env = dict(os.environ, CIVITAI_BASE_URL="http://127.0.0.1:4321")
    env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "s.json")
    (tmp_path / "s.json").write_text(json.dumps({"civitai_base_url": "http://file.example"}))
    code = (
        "from scripts.civitai_manager_libs import setting; setting.load(); "
        "print(setting.civitai_base_url, setting.source('civitai_base_url'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["http://127.0.0.1:4321", "env"]


# --------------------------------------------------------------------------- revision


def test_revision_bumps_on_every_change(tmp_path, monkeypatch):
    rev = setting.revision()
    setting.set("http_timeout", 7)
    assert setting.revision() == rev + 1
    setting.set("http_timeout", 7)  # same value: no change
    assert setting.revision() == rev + 1
    setting.update({"http_timeout": 8, "http_max_retries": 1})
    assert setting.revision() == rev + 2
    path = tmp_path / "s.json"
    setting.save(str(path))
    assert setting.revision() == rev + 2  # saving changes nothing
    setting.reset()
    assert setting.revision() == rev + 3
    setting.load(str(path))
    assert setting.revision() == rev + 4
    monkeypatch.setenv("CIVITAI_API_KEY", "rotatedkey123")
    assert setting.revision() == rev + 5
    monkeypatch.setenv("CIVITAI_API_KEY", "rotatedkey456")
    assert setting.revision() == rev + 6
    assert setting.revision() == rev + 6


def test_revision_is_thread_safe():
    keys = [
        "http_max_retries",
        "gallery_download_batch_size",
        "gallery_max_concurrent_downloads",
        "gallery_page_size",
        "images.max_concurrent",
        "images.min_free_space_mb",
        "http_timeout",
        "http_connect_timeout",
    ]
    start = setting.revision()
    barrier = threading.Barrier(len(keys))
    rounds = 200

    def worker(key):
        barrier.wait()
        for i in range(rounds):
            setting.set(key, 1 + (i % 2))  # alternates, so every call is a change
            setting.get(key)

    threads = [threading.Thread(target=worker, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert setting.revision() == start + len(keys) * rounds
    for key in keys:
        assert setting.get(key) == 2


# --------------------------------------------------------------------------- gallery cache


def test_gallery_cache_file_keeps_the_real_extension(tmp_path):
    setting.set("gallery_cache_path", str(tmp_path / "cache"))
    base = "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/0b1c-uuid/width=450"
    cases = {
        f"{base}/12345.jpeg": ".jpeg",
        f"{base}/12345.PNG": ".png",
        f"{base}/clip.mp4": ".mp4",
        f"{base}/x.webp?token=abc": ".webp",
        f"{base}/noext": ".jpeg",
        f"{base}/weird.exe": ".jpeg",
    }
    for url, ext in cases.items():
        path = setting.get_image_url_to_gallery_file(url)
        assert os.path.dirname(path) == str(tmp_path / "cache"), url
        assert path.endswith(ext), url
        assert "token" not in os.path.basename(path)


def test_gallery_cache_file_is_stable_collision_free_and_safe(tmp_path):
    setting.set("gallery_cache_path", str(tmp_path))
    base = "http://127.0.0.1:1/xG1nkqKTMzGDvpLrqFT7WA"
    url = f"{base}/u1/width=450/77.jpeg"
    assert setting.get_image_url_to_gallery_file(url) == setting.get_image_url_to_gallery_file(url)
    # same image, other size -> other file; same path on another host -> same file
    assert setting.get_image_url_to_gallery_file(url) != setting.get_image_url_to_gallery_file(
        f"{base}/u1/original=true/77.jpeg"
    )
    assert setting.get_image_url_to_gallery_file(url) == setting.get_image_url_to_gallery_file(
        url.replace("127.0.0.1:1", "127.0.0.1:2")
    )
    names = {
        setting.get_image_url_to_gallery_file(f"{base}/u{i}/width=450/{i % 7}.jpeg")
        for i in range(2000)
    }
    assert len(names) == 2000
    hostile = setting.get_image_url_to_gallery_file(f"{base}/%2E%2E%2F..%5Ccon%00:*%3F.png")
    assert os.path.dirname(hostile) == str(tmp_path)
    name = os.path.basename(hostile)
    assert name.endswith(".png")
    assert all(ch.isalnum() or ch in "_-." for ch in name)
    with pytest.raises(ValueError):
        setting.get_image_url_to_gallery_file("")
