#!/usr/bin/env bash
# Builds the img2dataset venv: the real img2dataset (it pins old libraries: albumentations, opencv,
# webdataset, wandb) and Hugging Face `datasets`, in their own venv so they never touch the
# project's environment. tests/test_export.py and tests/test_listing.py run them in subprocesses.
# The venv is reused while its pins are unchanged (stamp file); a failed build leaves no venv.
# It lives outside the checkout (~850 MB), in $CIVITAI_GALLERY_TEST_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/civitai-gallery-tests), so clones and worktrees share one copy.
# Usage: bash tests/dataset_tools_venv.sh   (prints the venv's python, an absolute path, on success)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CACHE=${CIVITAI_GALLERY_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/civitai-gallery-tests}
VENV=$CACHE/venvs/img2dataset
PINS='img2dataset==1.47.0 datasets>=3.0,<5 Pillow>=9.5'
want=$(printf '%s\n' "$PINS" | sha256sum | cut -c1-16)
stamp="$VENV/.civitai-gallery-stamp"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$VENV/bin/python"
  exit 0
fi
echo "== building $VENV ($PINS)" >&2
mkdir -p "$(dirname "$VENV")"
rm -rf "$VENV"
$PY -m venv "$VENV"
read -ra args <<<"$PINS"
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${args[@]}" \
  >"$VENV.pip.log" 2>&1; then
  rm -rf "$VENV"
  echo "pip could not install ${PINS} into $VENV; see $VENV.pip.log" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "$VENV/bin/python"
