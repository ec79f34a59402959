"""Test helper: the python of the img2dataset venv (img2dataset + Hugging Face ``datasets``),
built by ``tests/dataset_tools_venv.sh`` once and reused; tests that need it skip with the build's
reason when it cannot be built (no network and no wheels). CI builds it before pytest."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tests", "dataset_tools_venv.sh")


def build_venv() -> str:
    """The venv's python; raises RuntimeError with the build's last lines when it fails."""
    env = dict(os.environ, PYTHON=sys.executable)
    run = subprocess.run(
        ["bash", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    if run.returncode != 0:
        raise RuntimeError((run.stderr or run.stdout).strip()[-600:])
    python = run.stdout.strip().splitlines()[-1]
    if not os.access(python, os.X_OK):
        raise RuntimeError(f"the venv build printed {python!r}, which is not a python")
    return python


def offline_env(tmp: str) -> Dict[str, str]:
    """Environment for the tools: caches under ``tmp``, every "phone home" switched off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIVITAI_", "HF_"))}
    env.update(
        HF_HOME=os.path.join(tmp, "hf"),
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        NO_ALBUMENTATIONS_UPDATE="1",
        WANDB_MODE="disabled",
        PYTHONNOUSERSITE="1",
    )
    env.pop("PYTHONPATH", None)
    return env


def venv_python_or_skip() -> str:
    """The venv's python, or a pytest skip saying why it could not be built."""
    try:
        return build_venv()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"the img2dataset venv could not be built (offline, no wheels?): {exc}")
