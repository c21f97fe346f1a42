"""examples/mcp_tools.py runs offline against its own stdio MCP server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "mcp_tools.py"


def test_mcp_example_runs_offline() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    r = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "MCP tools: atlas__capital, atlas__word_stats" in out
    assert '"words": 9' in out and '"distinct": 8' in out
    assert (
        "atlas__capital: error: tool 'atlas__capital' (MCP server 'atlas') reported an error" in out
    )
    assert "no capital on record for 'Atlantis'" in out
    assert "atlas__capital: Oslo" in out
    assert "shout: OSLO" in out
    assert "answer: The pangram has 9 words" in out
