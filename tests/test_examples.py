"""Every example runs offline on its scripted model and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_every_example_has_a_test() -> None:
    tested = {
        "function_tools.py",
        "shell_agent.py",
        "patch_files.py",
        "compaction.py",
        "mcp_tools.py",  # tests/mcp/test_mcp_example.py
        "computer_use.py",  # tests/computer/
        "browser_policy.py",  # tests/computer/test_computer_example.py
        "desktop_apps.py",  # tests/computer/test_xvfb_example.py
        "tool_search.py",
        "approvals.py",
        "batch.py",  # tests/batch/test_batch_example.py
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} <= tested


def test_function_tools_example() -> None:
    out = run_example("function_tools.py")
    assert "convert: 26.2 mi" in out
    assert "KeyError" in out and "Trondheim" in out  # the tool's error went back to the model
    assert "reverse: poolmeti" in out
    assert "lookup_population: 291940" in out


@pytest.mark.bwrap
def test_shell_example() -> None:
    out = run_example("shell_agent.py")
    assert "[0] 3 words.txt" in out
    assert "key: none" in out
    assert "Read-only file system" in out
    assert "[timeout]" in out


@pytest.mark.bwrap
def test_patch_example() -> None:
    out = run_example("patch_files.py")
    assert out.count("[completed]") == 3
    assert "[failed]" in out
    assert "def greet(name: str) -> str:\n    return f'Hello, {name}!'\n" in out


def test_compaction_example() -> None:
    out = run_example("compaction.py")
    assert out.count("compacted (local)") >= 2
    assert "does not offer /responses/compact" in out
    assert "answer: Read 20 pages" in out


def test_tool_search_example() -> None:
    out = run_example("tool_search.py")
    assert "sent up front: convert_units, tool_search" in out  # 38 deferred tools held back
    assert 'tool_search: "tide times for a harbour" → 1 tool' in out
    assert "tide_times: ok" in out


@pytest.mark.bwrap
def test_approvals_example() -> None:
    out = run_example("approvals.py")
    assert "c1 shell: exit 0" in out  # allowed by rule, not asked
    assert "c2: approved by the example's approver" in out
    assert "c3 shell: denied" in out and "asked: $ rm" not in out  # denied by rule
    assert "c4: denied by the example's approver" in out
    assert "workspace: greeting.txt" in out  # nothing moved, nothing deleted
