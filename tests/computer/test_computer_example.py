"""examples/computer_use.py runs offline on its scripted model and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from computer_probe import png_size

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "computer_use.py"


def test_computer_use_example(need_browser: None, tmp_path: Path) -> None:
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
    lines = r.stdout.splitlines()
    assert lines[0] == "[ok] screenshot"
    assert lines[1] == "[ok] click left (240, 88), type 8 chars, keypress Enter"
    assert lines[2].startswith("[error] invalid computer_call: actions[0].x=5000 is off the screen")
    assert lines[3] == "[ok] click left (240, 88), type 12 chars, click left (510, 91)"
    assert "answer: Added 'Buy milk' and 'Walk the dog'." in lines
    assert "list on the page: Buy milk, Walk the dog" in lines
    assert png_size(shot.read_bytes()) == (1024, 768)


pytestmark = pytest.mark.timeout(240)


POLICY_EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "browser_policy.py"


def test_browser_policy_example(need_browser: None) -> None:
    r = subprocess.run(
        [sys.executable, str(POLICY_EXAMPLE)], capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 0, r.stderr
    runs = r.stdout.split("== ")[1:]
    assert len(runs) == 3
    default, allow, everything = runs
    assert "served: nothing" in default and "loopback addresses are not public" in default
    assert 'note: Blocked: the page\'s connection to "docs.example.test"' in default
    assert "address 127.0.0.1" in default
    assert "served: docs.example.test\n" in allow
    assert "intranet.example.test is blocked" in allow and "not in --browser-allow" in allow
    assert "page: Intranet: payroll" in everything
    assert "served: docs.example.test, intranet.example.test" in everything
