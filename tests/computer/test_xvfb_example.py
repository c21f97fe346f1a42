"""examples/desktop_apps.py runs offline on its scripted model and does what it says."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from computer_probe import png_size

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "desktop_apps.py"
LIGHTYELLOW, LIGHTBLUE = (255, 255, 224), (173, 216, 230)  # xclock's and xmessage's -bg


def colours(png: bytes) -> set[tuple[int, int, int]]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or ()}


def test_desktop_apps_example(tmp_path: Path) -> None:
    from computer_probe import require

    require(
        binaries=("Xvfb", "xdotool", "xclock", "xmessage", "openbox", "bwrap"), modules=("PIL",)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    shot = tmp_path / "last.png"
    r = subprocess.run(
        [sys.executable, str(EXAMPLE), "--save-screenshot", str(shot)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:4] == [
        "[ok] screenshot",
        "[ok] shell: xclock, xmessage",
        "[ok] screenshot",
        "answer: The clock is open; xmessage is open next to it.",
    ], r.stdout
    png = shot.read_bytes()
    assert png_size(png) == (1024, 768)
    seen = colours(png)
    assert LIGHTYELLOW in seen, "the app started with the session shows"
    assert LIGHTBLUE in seen, "the app the shell command started shows"


pytestmark = pytest.mark.timeout(240)
