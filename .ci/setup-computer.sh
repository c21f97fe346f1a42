#!/usr/bin/env bash
# Installs what the computer-use backends and their tests need on Debian 12, as
# root. Idempotent: packages already present are left as they are.
#
#   xvfb      XvfbComputer's virtual X display (Xvfb, started with -displayfd)
#   xdotool   XvfbComputer's mouse and keyboard (XTEST)
#   x11-utils xprop: XvfbComputer waits for the window manager with it (xdpyinfo
#             in the tests)
#   x11-apps  xlogo, a small X client the desktop tests and example start as apps
#   openbox   the default --computer-wm: small, places windows itself (twm would ask
#             for a click), gives focus and decorations
#   chromium  BrowserComputer's browser, driven by the `playwright` Python
#             package through executable_path=/usr/bin/chromium. Playwright's
#             own browser download (`playwright install`) is never used.
#   bubblewrap the browser's own sandbox (browser_jail.py)
#   python3-minimal  the jail's helper when itemloop's Python is out of uid 65534's reach
#   iproute2  `ip`: the browser tests' network namespace with its own addresses
#
# Screenshots of the X display are read from Xvfb's framebuffer file (-fbdir)
# and encoded by Pillow: no Debian package.
# The Python side (`playwright`, `pillow`) comes from the project's
# dependencies in .venv.
set -euo pipefail

packages=(xvfb xdotool x11-utils x11-apps openbox chromium bubblewrap python3-minimal iproute2)
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
for b in Xvfb xdotool xprop xlogo openbox chromium bwrap python3 ip; do
    command -v "$b" >/dev/null || { echo "setup-computer.sh: $b is not on PATH" >&2; exit 1; }
done
