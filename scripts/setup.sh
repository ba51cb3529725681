#!/usr/bin/env bash
# Create or update .venv with earmark and its dependencies (add "test" to include the test tools).
# torch is pinned by constraints.txt: on this project's machines that pin resolves to the CPU wheel
# they carry; on a machine with a GPU, pip picks that version's CUDA build as usual.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-}
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "earmark needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
spec="."
[ -n "$extras" ] && spec=".[$extras]"
stamp="$VENV/.earmark-installed-$extras"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>/dev/null || true
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e "$spec"
  echo "$want" > "$stamp"
fi

# The test tools render pages in headless Chromium (report and serve tests): Debian's chromium package,
# driven by playwright (which then downloads no browser of its own).
if [ "$extras" = "test" ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    echo "installing Debian's chromium for the browser tests"
    { $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
      || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }; } \
      || echo "warning: could not install chromium; the browser tests will fail (set EARMARK_CHROMIUM=/path/to/chromium)" >&2
  else
    echo "warning: no chromium and no apt-get; the browser tests need EARMARK_CHROMIUM=/path/to/chromium" >&2
  fi
fi
