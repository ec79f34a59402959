"""Size caps and whole files (issue 10, items 5, 6 and 16): an image host or API that sends too
much, sends it encoded, or sends a truncated picture gets a clear per-task (or per-run) error,
never a full disk, a memory spike or a damaged file reported as saved."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import time
import zlib

import pytest
from cli_harness import cli_command, cli_env, download_model_args, media_files, part_files
from cli_harness import run_cli
from PIL import Image

pytestmark = pytest.mark.slow

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def _settings(tmp_path, **values):
    (tmp_path / "settings.json").write_text(json.dumps(values), "utf-8")


def _original_path(fake, image_id):
    return fake.dataset.image(image_id).path("original=true")


def _ids(fake):
    return sorted(image.id for image in fake.dataset.images)


def _disk_use(root) -> int:
    total = 0
    for folder, _dirs, names in os.walk(str(root)):
        for name in names:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _report(tmp_path):
    return json.loads((tmp_path / "report.json").read_text("utf-8"))


def _failures(report):
    return {int(f["image_id"]): f["reason"] for f in report["failures"]}


@pytest.mark.parametrize(
    "shape",
    ["endless_without_length", "ten_terabytes_announced"],
)
def test_an_oversized_body_is_refused_or_stopped_at_the_cap(generated_fake, tmp_path, shape):
    fake = generated_fake(n_images=3, image_kb=16)
    _settings(tmp_path, **{"images.max_file_size_mb": 5, "http_max_retries": 1})
    victim = _ids(fake)[0]
    kwargs = {
        "endless_without_length": dict(content_length=None, endless=True),
        "ten_terabytes_announced": dict(content_length=10 * 2**40, endless=True),
    }[shape]
    fake.faults.serve_raw(
        _original_path(fake, victim),
        JPEG_HEAD,
        headers={"Content-Type": "image/jpeg"},
        server="image",
        **kwargs,
    )
    output = tmp_path / "out"
    started = time.monotonic()
    run = run_cli(
        download_model_args(fake, output, 2, "--report", tmp_path / "report.json"),
        tmp_path,
        timeout=90,
    )

    assert time.monotonic() - started < 60
    assert run.returncode == 1, (run.stdout, run.stderr)
    failures = _failures(_report(tmp_path))
    assert set(failures) == {victim}, failures
    assert "largest file accepted" in failures[victim], failures
    assert victim not in media_files(output)
    assert part_files(output) == []
    assert _disk_use(output) < 4 * 2**20
    assert len(media_files(output)) == 2


def test_a_content_length_over_the_free_space_is_refused_before_writing(generated_fake, tmp_path):
    fake = generated_fake(n_images=2, image_kb=16)
    free = shutil.disk_usage(str(tmp_path)).free
    _settings(tmp_path, **{"images.max_file_size_mb": 1_000_000, "http_max_retries": 0})
    victim = _ids(fake)[0]
    fake.faults.serve_raw(
        _original_path(fake, victim),
        JPEG_HEAD,
        headers={"Content-Type": "image/jpeg"},
        content_length=free + 2**30,
        endless=True,
        server="image",
    )
    output = tmp_path / "out"
    run = run_cli(
        download_model_args(fake, output, 2, "--report", tmp_path / "report.json"),
        tmp_path,
        timeout=90,
    )
    assert run.returncode == 1, (run.stdout, run.stderr)
    failures = _failures(_report(tmp_path))
    assert victim in failures and "free" in failures[victim], failures
    assert _disk_use(output) < 2**20


def test_free_space_is_kept_while_streaming(generated_fake, tmp_path):
    fake = generated_fake(n_images=1, image_kb=16)
    free_mb = shutil.disk_usage(str(tmp_path)).free // 2**20
    if free_mb < 200:
        pytest.skip("needs some free disk space")
    keep = free_mb - 40  # the run may start, but a 40 MB+ stream must stop
    _settings(
        tmp_path,
        **{"images.max_file_size_mb": 300, "images.min_free_space_mb": keep, "http_max_retries": 0},
    )
    (victim,) = _ids(fake)
    fake.faults.serve_raw(
        _original_path(fake, victim),
        JPEG_HEAD,
        headers={"Content-Type": "image/jpeg"},
        content_length=None,
        endless=True,
        server="image",
    )
    output = tmp_path / "out"
    run = run_cli(
        download_model_args(fake, output, 1, "--report", tmp_path / "report.json"),
        tmp_path,
        timeout=90,
    )
    assert run.returncode == 1, (run.stdout, run.stderr)
    text = json.dumps(_report(tmp_path)) + run.stdout + run.stderr
    assert "images.min_free_space_mb" in text, text
    assert part_files(output) == []
    assert _disk_use(output) < 2**20


def test_a_gzip_encoded_media_body_is_never_inflated(generated_fake, tmp_path):
    fake = generated_fake(n_images=2, image_kb=16)
    _settings(tmp_path, **{"http_max_retries": 0})
    victim = _ids(fake)[0]
    # 64 MB once inflated, about 64 KB on the wire.
    bomb = gzip.compress(JPEG_HEAD + bytes(64 * 2**20), compresslevel=9)
    assert len(bomb) < 200_000
    fake.faults.serve_raw(
        _original_path(fake, victim),
        bomb,
        headers={"Content-Type": "image/jpeg", "Content-Encoding": "gzip"},
        server="image",
    )
    output = tmp_path / "out"
    run = run_cli(
        download_model_args(fake, output, 2, "--report", tmp_path / "report.json"), tmp_path
    )
    assert run.returncode == 1, (run.stdout, run.stderr)
    failures = _failures(_report(tmp_path))
    assert victim in failures and "Content-Encoding" in failures[victim], failures
    assert victim not in media_files(output)
    assert _disk_use(output) < 2**20


_PEAK_WRAPPER = """
import atexit, os, runpy, sys

def _dump():
    with open("/proc/self/status") as status, open(os.environ["PEAK_FILE"], "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM")))

atexit.register(_dump)
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_measured(args, tmp_path, timeout=120):
    """Run the CLI; (returncode, stdout, stderr, peak RSS in MB of that process alone: its own
    VmHWM, which a fork does not inherit the way ru_maxrss does)."""
    peak_file = tmp_path / "peak.txt"
    command = cli_command(args)
    command = [command[0], "-c", _PEAK_WRAPPER, *command[1:]]
    env = cli_env(tmp_path, {"PEAK_FILE": str(peak_file)})
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    peak_kb = int(peak_file.read_text().split()[1])
    return proc.returncode, proc.stdout, proc.stderr, peak_kb / 1024


def _gzip_stream(pieces, total_pieces):
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [packer.compress(pieces[0])]
    for _ in range(total_pieces):
        chunks.append(packer.compress(pieces[1]))
    chunks.append(packer.compress(pieces[2]) + packer.flush())
    return b"".join(chunks)


def test_an_api_json_bomb_is_a_clear_error_without_a_memory_spike(fake_civitai, tmp_path):
    model = fake_civitai.dataset.models[0]
    # 512 MB of JSON once inflated (whitespace inside a valid page), about 500 KB on the wire.
    bomb = _gzip_stream([b'{"items": [', b" " * 2**20, b'], "metadata": {}}'], 512)
    assert len(bomb) < 2 * 2**20
    fake_civitai.faults.serve_raw(
        "/api/v1/images",
        bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        count=20,
        server="api",
    )
    output = tmp_path / "out"
    started = time.monotonic()
    code, stdout, stderr, peak_mb = _run_measured(
        [
            "download",
            "model",
            model.id,
            "--base-url",
            fake_civitai.base_url,
            "--output",
            output,
            "--nsfw",
            "all",
            "-q",
        ],
        tmp_path,
    )
    elapsed = time.monotonic() - started
    assert code in (1, 2), (stdout, stderr)
    assert "MB of data" in stderr, stderr
    assert "Traceback" not in stderr
    assert peak_mb < 250, f"peak memory {peak_mb:.0f} MB"
    assert elapsed < 30
    print(f"json bomb: {elapsed:.1f} s, peak {peak_mb:.0f} MB")


def test_an_api_answer_nested_too_deep_is_cut_and_its_item_skipped(fake_civitai, tmp_path):
    """Depth is capped while decoding (what is deeper than any real answer is cut, in linear
    time); the item that held it is skipped as malformed with a reason (item 7), not a crash."""
    model = fake_civitai.dataset.models[0]
    deep = b'{"items": [{"id": 1, "meta": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    fake_civitai.faults.serve_raw(
        "/api/v1/images",
        deep,
        headers={"Content-Type": "application/json"},
        count=20,
        server="api",
    )
    output = tmp_path / "out"
    run = run_cli(
        ["download", "model", model.id, "--base-url", fake_civitai.base_url, "--output", output],
        tmp_path,
    )
    assert run.returncode in (0, 1), (run.stdout, run.stderr)
    assert "nested" in run.stdout + run.stderr, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    assert not [f for _d, _s, files in os.walk(output) for f in files if f.endswith(".jpeg")]


def _truncated(kind: str) -> bytes:
    image = Image.effect_noise((256, 256), 64).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, kind)
    data = buffer.getvalue()
    return data[: len(data) * 2 // 3]


@pytest.mark.parametrize(
    "kind, content_type",
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_a_truncated_picture_with_a_matching_length_is_a_failed_task(
    generated_fake, tmp_path, kind, content_type
):
    fake = generated_fake(n_images=2, image_kb=16)
    _settings(tmp_path, **{"http_max_retries": 0})
    victim = _ids(fake)[0]
    fake.faults.serve_raw(
        _original_path(fake, victim),
        _truncated(kind),  # served with its own (matching) Content-Length
        headers={"Content-Type": content_type},
        server="image",
    )
    output = tmp_path / "out"
    run = run_cli(
        download_model_args(fake, output, 2, "--report", tmp_path / "report.json"), tmp_path
    )
    assert run.returncode == 1, (run.stdout, run.stderr)
    failures = _failures(_report(tmp_path))
    assert victim in failures and "does not decode" in failures[victim], failures
    assert victim not in media_files(output)
    assert part_files(output) == []
    assert len(media_files(output)) == 1


def test_a_truncated_video_with_a_matching_length_is_a_failed_task(generated_fake, tmp_path):
    from scripts.civitai_manager_libs.fake_civitai.media import tiny_mp4

    fake = generated_fake(n_images=2, image_kb=16)
    _settings(tmp_path, **{"http_max_retries": 0})
    victim = _ids(fake)[0]
    video = tiny_mp4(1, payload_size=50_000)
    fake.faults.serve_raw(
        _original_path(fake, victim),
        video[:30_000],
        headers={"Content-Type": "video/mp4"},
        server="image",
    )
    output = tmp_path / "out"
    run = run_cli(
        download_model_args(fake, output, 2, "--report", tmp_path / "report.json"), tmp_path
    )
    assert run.returncode == 1, (run.stdout, run.stderr)
    failures = _failures(_report(tmp_path))
    assert victim in failures and "cut short" in failures[victim], failures
    assert part_files(output) == []
