"""The package's layout is checked, not just described: at most 8 modules at the root, the layers
of ``.importlinter`` hold (and a violation is caught), and the root facades keep their API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "scripts", "civitai_manager_libs")
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=cwd)
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_package_root_holds_at_most_eight_modules():
    modules = sorted(f for f in os.listdir(PACKAGE) if f.endswith(".py"))
    assert len(modules) <= 8, modules
    assert {"setting.py", "http_client.py", "image_downloader.py"} <= set(modules)
    assert {"civitai_gallery_action.py", "errors.py", "records.py"} <= set(modules)


def test_every_stage_is_a_documented_subpackage():
    rooms = sorted(
        d for d in os.listdir(PACKAGE) if os.path.isfile(os.path.join(PACKAGE, d, "__init__.py"))
    )
    for room in rooms:
        with open(os.path.join(PACKAGE, room, "__init__.py"), encoding="utf-8") as fh:
            assert fh.read().lstrip().startswith('"""'), f"{room}/__init__.py says what it owns"
    with open(os.path.join(REPO, ".importlinter"), encoding="utf-8") as fh:
        contract = fh.read()
    for room in rooms:
        assert room in contract, f"{room}/ has its place in the .importlinter layers"


def test_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, bad_import, contract",
    [
        ("transport/host_gate.py", "from ..planning import downloader", "Shells over planning"),
        ("store/paths.py", "from ..ui import actions", "Nothing in the library imports"),
        ("fake_civitai/listing.py", "from ..transport import client", "The fake Civitai"),
        ("metadata/generation.py", "from . import record", "No import cycles"),
    ],
)
def test_a_violation_breaks_the_contract(tmp_path, module, bad_import, contract):
    copy = tmp_path / "repo"
    shutil.copytree(
        os.path.join(REPO, "scripts"),
        copy / "scripts",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(os.path.join(REPO, ".importlinter"), copy / ".importlinter")
    target = copy / "scripts" / "civitai_manager_libs" / module
    target.write_text(target.read_text() + textwrap.dedent(f"\n{bad_import}  # noqa\n"))
    result = lint_imports(str(copy))
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract[:20] in line for line in broken) or contract in result.stdout, broken


def test_facades_keep_the_backlog_and_spec_names():
    from scripts.civitai_manager_libs import (
        civitai_gallery_action,
        http_client,
        image_downloader,
        setting,
    )

    for name in ("get_http_client", "reset_http_client", "CivitaiHttpClient", "SHARED_HOST_GATE"):
        assert callable(getattr(http_client, name)) or name == "SHARED_HOST_GATE"
    for name in ("download_images", "GalleryDownloadManager", "get_http_client", "load_gallery"):
        assert getattr(civitai_gallery_action, name)
    for name in ("ImageDownloader", "ImageDownloadTask", "COMPLETED", "PENDING"):
        assert getattr(image_downloader, name)
    assert setting.get("http_timeout") == setting.http_timeout
    assert setting.images_output_path == setting.get("images.output_path")
    assert "set" in dir(setting) and "http_timeout" in dir(setting)
