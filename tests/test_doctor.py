"""``python main.py doctor``: small questions to the service, answered in plain words; exit 0 when
all match, 1 when something drifted (each of the fake's drifted shapes), 2 when Civitai cannot be
reached or the input is bad. Real processes against real local servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scripts.civitai_manager_libs.fake_civitai import FakeCivitai

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the fake's drifted shape -> the question whose answer changes
CHANGED_QUESTION = {
    "meta_stripped": "images with withMeta=true: no image carries generation data",
    "items_renamed": "images page: the answer is not {items, metadata} (top-level keys: data,",
    "unknown_hosts": "images page: image URLs on unknown hosts localhost",
    "packed": "images page: the answer is not {items, metadata} (tRPC-like result.data.json)",
    "mature_filtered": "mature images: Mature/X asked, none served",
}


def _doctor(tmp_path, *argv, **extra_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVITAI_")}
    env["CIVITAI_GALLERY_SETTINGS"] = str(tmp_path / "settings.json")
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "main.py"), "doctor", *map(str, argv)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_service_that_answers_as_expected_exits_0(fake_civitai, tmp_path):
    run = _doctor(tmp_path, "--base-url", fake_civitai.base_url)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    asked = [line.split(":")[0].split(None, 1)[1] for line in lines[1:-1]]
    assert asked == [
        "images page",
        "images without withMeta",
        "images with withMeta=true",
        "mature images",
        "model version",
        "model",
        "by-hash look-up",
        "original file",
    ]
    assert all(line.startswith("  ok") for line in lines[1:-1])
    assert lines[-1] == "All 8 answers match what this version expects."
    assert os.listdir(tmp_path) == []  # nothing written
    # one page without and one with withMeta, a mature page, version, model, by-hash: 6 API asks
    assert len(fake_civitai.api_requests()) == 6
    assert [r.headers.get("Range") for r in fake_civitai.image_requests()] == ["bytes=0-0"]


@pytest.mark.parametrize("shape", sorted(CHANGED_QUESTION))
def test_each_drifted_shape_is_named_and_exits_1(fake_civitai, tmp_path, shape):
    fake_civitai.faults.drift(shape)
    run = _doctor(tmp_path, "--base-url", fake_civitai.base_url)
    assert run.returncode == 1, run.stdout + run.stderr
    changed = [line for line in run.stdout.splitlines() if line.startswith("  CHANGED")]
    assert len(changed) == 1 and CHANGED_QUESTION[shape] in changed[0], run.stdout
    assert " -> " in changed[0]  # what to do
    assert "please report it" in run.stdout.splitlines()[-1]


def test_two_fronts_mature_levels_are_asked_of_the_red_one(fake_civitai, tmp_path):
    """civitai.com filters mature images out: not a change when a red front serves them."""
    fake_civitai.faults.drift("mature_filtered")
    with FakeCivitai(fake_civitai.dataset) as red:
        run = _doctor(tmp_path, "--base-url", fake_civitai.base_url, "--red-base-url", red.base_url)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"[{red.base_url}] mature images:" in run.stdout
        assert f"[{fake_civitai.base_url}] mature images" not in run.stdout
        red.faults.drift("mature_filtered")
        again = _doctor(
            tmp_path, "--base-url", fake_civitai.base_url, "--red-base-url", red.base_url
        )
        red_url = red.base_url
    assert again.returncode == 1
    assert f"CHANGED   [{red_url}] mature images" in again.stdout


@pytest.mark.parametrize("where", ["environment", "settings"])
def test_the_red_front_comes_from_where_downloads_take_it(fake_civitai, tmp_path, where):
    """``doctor`` asks the fronts a download would use (transport.client.front_urls): the red
    front from $CIVITAI_RED_BASE_URL or the setting civitai_red_base_url, not only the option."""
    fake_civitai.faults.drift("mature_filtered")  # the com front filters, as civitai.com does
    with FakeCivitai(fake_civitai.dataset) as red:
        env = {"CIVITAI_BASE_URL": fake_civitai.base_url}
        if where == "environment":
            env["CIVITAI_RED_BASE_URL"] = red.base_url
        else:
            settings = tmp_path / "conf" / "settings.json"
            settings.parent.mkdir()
            settings.write_text(json.dumps({"civitai_red_base_url": red.base_url}))
            env["CIVITAI_GALLERY_SETTINGS"] = str(settings)
        run = _doctor(tmp_path / "conf" if where == "settings" else tmp_path, **env)
        red_url = red.base_url
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[0] == f"Civitai doctor: {fake_civitai.base_url}, {red_url}"
    assert f"[{red_url}] mature images:" in run.stdout


def test_an_unreachable_service_exits_2(tmp_path):
    with FakeCivitai() as fake:
        gone = fake.base_url
    run = _doctor(tmp_path, "--base-url", gone)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "NO ANSWER" in run.stdout and "could not be reached" in run.stdout


def test_a_busy_service_is_not_a_change(fake_civitai, tmp_path):
    fake_civitai.faults.queue_status(
        "/api/v1/images", 503, headers={"Retry-After": "0"}, count=10, server="api"
    )
    run = _doctor(tmp_path, "--base-url", fake_civitai.base_url)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "CHANGED" not in run.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--base-url", "ftp://example.org"], "--base-url must start with https://"),
        (["--base-url", "http://127.0.0.1:1", "--red-base-url", "civitai.red"], "--red-base-url"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_input_exits_2_before_any_request(tmp_path, argv, message):
    run = _doctor(tmp_path, *argv)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert run.stdout == ""
