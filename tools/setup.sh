#!/usr/bin/env bash
# Set up avsuite on a fresh Debian machine (idempotent: a second run takes seconds).
#   1. Debian packages (libsndfile1, ffmpeg, the offline corpora's sources, TTS voices, Chromium)
#   2. the pinned Python set (requirements/lock.txt) in a venv cached OUTSIDE the clone, keyed by
#      the lock file's hash:  ${AVSUITE_CACHE:-~/.cache/avsuite}/env-<hash>
#   3. a small per-clone .venv that layers on the cached one and holds avsuite itself (editable)
# Afterwards use .venv/bin/avsuite and .venv/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=${AVSUITE_CACHE:-$HOME/.cache/avsuite}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

APT_PKGS=(libsndfile1 ffmpeg fluidsynth fluid-soundfont-gm tuxpaint-stamps-default gcompris-qt-data
  asterisk-core-sounds-en asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722
  asterisk-core-sounds-fr asterisk-core-sounds-es festival festvox-kallpc16k festvox-us-slt-hts
  flite espeak-ng sox chromium chromium-driver opencv-doc apertium apertium-eng-spa)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# lock.txt: the full pinned set; nodeps.txt: data-only packages (intent templates, ...) installed
# without their dependencies, which avsuite never imports.
touch requirements/nodeps.txt
HASH=$(cat requirements/lock.txt requirements/nodeps.txt <("$PY" -c 'import sys; print(sys.version_info[:2])') | sha256sum | cut -c1-16)
ENV="$CACHE/env-$HASH"
mkdir -p "$CACHE"
exec 9>"$CACHE/.setup.lock"
flock 9   # two set-ups at once (CI jobs, clones) wait for each other instead of racing on one env
if [ ! -f "$ENV/.complete" ]; then
  echo "[setup] creating the pinned environment $ENV (torch is ~8.5 GB: a few minutes, once)"
  rm -rf "$ENV"; mkdir -p "$CACHE"
  "$PY" -m venv "$ENV"
  "$ENV/bin/pip" install -q --upgrade pip
  "$ENV/bin/pip" install -q -r requirements/lock.txt
  if grep -q '[^[:space:]]' requirements/nodeps.txt; then
    "$ENV/bin/pip" install -q --no-deps -r requirements/nodeps.txt
  fi
  touch "$ENV/.complete"
fi

VENV="$ROOT/.venv"
if [ ! -f "$VENV/.base" ] || [ "$(cat "$VENV/.base")" != "$ENV" ]; then
  rm -rf "$VENV"
  "$PY" -m venv --without-pip "$VENV"   # pip and setuptools come from the cached env
  SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  BASE_SITE=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$BASE_SITE')" > "$SITE/_avsuite_base.pth"
  # native libraries that wheels put in <env>/lib (oneTBB for fairseq2n) are looked up under sys.prefix
  mkdir -p "$VENV/lib"
  for so in "$ENV"/lib/*.so*; do ln -sf "$so" "$VENV/lib/"; done
  echo "$ENV" > "$VENV/.base"
fi
if ! "$VENV/bin/python" -c 'import avsuite, sys; sys.exit(0 if avsuite.__file__.startswith(sys.argv[1]) else 1)' "$ROOT" 2>/dev/null \
   || [ ! -x "$VENV/bin/avsuite" ]; then
  "$ENV/bin/python" -m pip --python "$VENV/bin/python" install -q --no-deps --no-build-isolation -e "$ROOT" >"$VENV/.install.log" 2>&1 || { cat "$VENV/.install.log"; exit 1; }
fi
echo "[setup] ready: $VENV/bin/avsuite  (python: $VENV/bin/python)"
