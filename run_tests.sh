#!/usr/bin/env bash
# The whole test run: installs what it needs, then style checks, the test suite on the default
# Gradio, and the browser suite on the Gradio lines WebUI ships (A1111 1.10: 3.41.2, Forge: 4.44.1).
# Usage: bash run_tests.sh [--quick]   (--quick: skip the extra Gradio lines)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -q && apt-get install -y -q chromium) >/tmp/civitai-gallery-apt.log 2>&1 \
      || { echo "apt-get install chromium failed; see /tmp/civitai-gallery-apt.log"; exit 1; }
  else
    echo "chromium is missing: install Debian's chromium (sudo apt-get install chromium)" >&2
  fi
fi
$PY -m pip install -q -r requirements-dev.txt
# img2dataset + Hugging Face datasets in their own venv (outside the checkout, see tests/dataset_tools_venv.sh; old pins, ~850 MB):
# the export and listing tests run the real tools from it. Reused while its pins are unchanged.
echo "== dataset tools venv"; bash tests/dataset_tools_venv.sh >/dev/null

echo "== black"; $PY -m black --check -q --line-length=100 --skip-string-normalization .
echo "== flake8"; $PY -m flake8 .
echo "== import layers (lint-imports, .importlinter)"; $PY -c "from importlinter.cli import lint_imports_command; lint_imports_command()" | tail -n 3
echo "== mypy"; $PY -m mypy scripts/civitai_manager_libs main.py scripts/civitai_gallery.py
echo "== pytest (gradio $($PY -c 'import gradio; print(gradio.__version__)'))"
$PY -m pytest -q -p no:cacheprovider

if [ "${1:-}" != "--quick" ]; then
  bash tests/gradio_matrix.sh
fi
