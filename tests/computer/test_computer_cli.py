"""`itemloop exec --tools computer`: a computer_call through the command line,
on a real headless Chromium, answered with a real screenshot."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

from computer_probe import CHROMIUM, require


def test_exec_clicks_in_the_browser_and_returns_the_screenshot(site: str) -> None:
    require(binaries=(CHROMIUM,), modules=("playwright", "PIL"))
    from PIL import Image

    call = {
        "type": "computer_call",
        "id": "cu_1",
        "call_id": "c1",
        "status": "completed",
        "pending_safety_checks": [],
        "action": {"type": "click", "button": "left", "x": 120, "y": 65},
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "itemloop.runtime.cli",
            "exec",
            "--tools",
            "computer",
            "--start-url",
            site,
            "--browser-network",
            "all",  # the site is on 127.0.0.1
            "--display-size",
            "800x600",
        ],
        input=json.dumps(call) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["type"] == "computer_call_output" and out["call_id"] == "c1"
    url = out["output"]["image_url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    assert image.size == (800, 600)
    # The click hit the button: the page turned green (#88ff88) behind it.
    assert image.getpixel((600, 500)) == (0x88, 0xFF, 0x88)
