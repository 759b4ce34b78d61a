#!/usr/bin/env bash
# Installs what Liandong needs on a fresh Debian 12 machine (run as root), and is quick when it is there.
# Usage: scripts/bootstrap.sh [runtime|test]
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-runtime}"
STAMP_DIR=.venv/.stamps
APT_RUNTIME=(python3 python3-venv python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  gstreamer1.0-plugins-bad gstreamer1.0-x ffmpeg nodejs npm)
# The WHEP interop tests: GStreamer's webrtcbin player (PyGObject), libnice, an H.264 decoder, `ip` for the veth pair.
APT_TEST=(redis-server chromium fonts-noto-cjk gir1.2-gst-plugins-bad-1.0 gstreamer1.0-nice gstreamer1.0-libav iproute2)

need_apt=()
pkgs=("${APT_RUNTIME[@]}")
[ "$MODE" = test ] && pkgs+=("${APT_TEST[@]}")
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
# node/npm may come from elsewhere (nvm, a tarball): only ask apt for them when missing from PATH.
filtered=()
for p in "${need_apt[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null || filtered+=("$p") ;;
    npm) command -v npm >/dev/null || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
need_apt=("${filtered[@]+"${filtered[@]}"}")
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages (run as root to install): ${need_apt[*]}" >&2; exit 1
  fi
  echo ">> apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv"
  "$PY" -m venv .venv
fi
mkdir -p "$STAMP_DIR"
hash=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$STAMP_DIR/pip-$hash" ]; then
  echo ">> pip install -e .[dev]"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f "$STAMP_DIR"/pip-*; touch "$STAMP_DIR/pip-$hash"
fi

# Browser-side libraries come from the npm registry, never copied by hand. --ignore-scripts: they are
# prebuilt files; no install script may run (swagger-ui-dist's @scarf/scarf would report the install).
if [ -f web/package.json ]; then
  whash=$(cat web/package.json web/package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  if [ ! -f "$STAMP_DIR/npm-$whash" ] || [ ! -d web/node_modules ]; then
    echo ">> npm ci (web/)"
    (cd web && if [ -f package-lock.json ]; then npm ci --ignore-scripts --no-audit --no-fund --silent; else npm install --ignore-scripts --no-audit --no-fund --silent; fi)
    rm -f "$STAMP_DIR"/npm-*; touch "$STAMP_DIR/npm-$whash"
  fi
fi
