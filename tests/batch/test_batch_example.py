"""examples/batch.py runs offline on its scripted models and grades each task."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from batchkit import env

EXAMPLE = Path(__file__).parents[2] / "examples" / "batch.py"


@pytest.mark.bwrap
def test_batch_example() -> None:
    r = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env(), timeout=180
    )
    assert r.returncode == 0, r.stderr
    lines = set(r.stdout.splitlines())
    assert {"greet: passed, 2 turns", "sum: passed, 2 turns"} <= lines
    assert "capital: failed, 2 turns — capital.txt says: Bergen" in lines  # its check said why
    assert "3 tasks: 2 passed, 1 failed" in lines
    assert "  check_failed     1  capital" in lines
