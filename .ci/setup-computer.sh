#!/usr/bin/env bash
# Installs what the computer-use backends and their tests need on Debian 12, as
# root. Idempotent: packages already present are left as they are.
#
#   xvfb      XvfbComputer's virtual X display (Xvfb, started with -displayfd)
#   xdotool   XvfbComputer's mouse and keyboard (XTEST)
#   chromium  BrowserComputer's browser, driven by the `playwright` Python
#             package through executable_path=/usr/bin/chromium. Playwright's
#             own browser download (`playwright install`) is never used.
#
# Screenshots of the X display are taken in-process by Pillow's ImageGrab
# (`xdisplay=`), whose PyPI wheels carry their own libxcb: no Debian package.
# The Python side (`playwright`, `pillow`) comes from the project's
# dependencies in .venv.
set -euo pipefail

packages=(xvfb xdotool chromium bubblewrap python3-minimal iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-computer.sh: needs root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for b in Xvfb xdotool chromium bwrap python3 ip; do
    command -v "$b" >/dev/null || { echo "setup-computer.sh: $b is not on PATH" >&2; exit 1; }
done
