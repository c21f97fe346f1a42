"""`itemloop demo`: the embedded default runs end to end, offline, and every
output item it builds is one the API accepts as input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_valid_input_item


@pytest.mark.bwrap
def test_demo_runs_every_executor(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-must-not-leak"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "itemloop.runtime.cli",
            "demo",
            "--json",
            "--workspace",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    finished = [e for e in events if e["kind"] == "call_finished"]
    by_id = {e["call_id"]: e for e in finished}
    assert len(by_id) == len(finished) == 11  # every call answered exactly once
    for e in finished:
        assert_valid_input_item(e["output"])
    types = {e["item_type"] for e in finished}
    assert types == {
        "function_call",
        "custom_tool_call",
        "shell_call",
        "local_shell_call",
        "apply_patch_call",
    }
    assert by_id["call_sh"]["output"]["output"] == "FREE-FORM INPUT"
    shell = by_id["call_s1"]["output"]["output"]
    assert "notes.md" in shell[0]["stdout"]
    assert "visible to tools: no" in shell[2]["stdout"]  # the key did not reach the sandbox
    assert by_id["call_s2"]["output"]["output"][0]["outcome"] == {"type": "timeout"}
    local = json.loads(by_id["call_l1"]["output"]["output"])
    assert "and patched it twice" in local["stdout"]
    assert not by_id["call_bad1"]["ok"] and "celsius" in by_id["call_bad1"]["summary"]
    assert "there is no function tool named 'stock_price'" in by_id["call_bad2"]["summary"]
    assert by_id["call_bad3"]["output"]["status"] == "failed"
    assert (tmp_path / "notes.md").read_text() == (
        "# Notes\n- itemloop ran this, sandboxed\n- and patched it twice\n"
    )
    assert events[-1]["kind"] == "run_finished" and events[-1]["reason"] == "completed"
