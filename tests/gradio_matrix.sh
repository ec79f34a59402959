#!/usr/bin/env bash
# Runs the browser suite on the Gradio lines WebUI ships, each in its own venv (.venvs/).
# Filled in by the gallery-tab work (issue #5).
set -euo pipefail
echo "gradio matrix: not yet configured"
