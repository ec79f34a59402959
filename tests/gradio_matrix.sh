#!/usr/bin/env bash
# Runs the browser suite and the simulated WebUI load on the Gradio lines WebUI ships, each in its
# own venv under $CIVITAI_GALLERY_TEST_CACHE/venvs/, outside the checkout (A1111 1.10: gradio 3.41.2;
# Forge: gradio 4.44.1), with the pins from
# ../shared/gradio-and-webui-notes.md. A venv is reused while its pins are unchanged (stamp file).
# Usage: bash tests/gradio_matrix.sh [3|4 ...]   (default: both lines)
#        MATRIX_BUILD_ONLY=1 bash tests/gradio_matrix.sh   (only build the venvs)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${CIVITAI_GALLERY_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/civitai-gallery-tests}
mkdir -p "$CACHE/venvs"
LINES=("$@")
[ ${#LINES[@]} -eq 0 ] && LINES=(3 4)

pins_for() {
  case "$1" in
    3) echo 'gradio==3.41.2 fastapi==0.94.0 httpx==0.24.1 httpcore==0.15.0 pydantic<2 numpy<2 huggingface_hub<1' ;;
    4) echo 'gradio==4.44.1 fastapi==0.112.2 pydantic<2.11 huggingface_hub<1.0' ;;
    *) echo "unknown gradio line: $1" >&2; return 1 ;;
  esac
}
# The test tools every line needs (playwright uses Debian's chromium; never `playwright install`).
TOOLS='pytest>=8 playwright>=1.40 pytest-playwright>=0.4 requests-mock>=1.11 psutil>=5.9'

ensure_venv() {
  local line=$1 venv="$CACHE/venvs/gradio$1" pins stamp want
  pins=$(pins_for "$line")
  want=$(printf '%s\n%s\n' "$pins" "$TOOLS" | cat - requirements.txt | sha256sum | cut -c1-16)
  stamp="$venv/.civitai-gallery-stamp"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "== building $venv ($pins)"
  rm -rf "$venv"
  $PY -m venv "$venv"
  # One resolve with the pins, so requirements.txt cannot pull a newer gradio than the line's.
  local -a args
  read -ra args <<<"$pins $TOOLS"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt "${args[@]}" \
    >"$venv.pip.log" 2>&1 || { echo "pip failed for $venv; see $venv.pip.log" >&2; return 1; }
  echo "$want" >"$stamp"
}

status=0
for line in "${LINES[@]}"; do
  ensure_venv "$line"
  [ "${MATRIX_BUILD_ONLY:-}" = 1 ] && continue
  venv="$CACHE/venvs/gradio$line"
  version=$("$venv/bin/python" -c 'import gradio; print(gradio.__version__)')
  echo "== pytest browser + webui load (gradio $version)"
  start=$(date +%s)
  if ! "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/browser tests/test_webui_load.py; then
    status=1
  fi
  echo "== gradio $version: $(( $(date +%s) - start )) s"
done
exit $status
