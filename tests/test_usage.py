"""Token usage: each model response's usage and the run's total, through the real
`openai` client and an HTTP Responses server, in the event, `--json` and the CLI's
last line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import fcall, message, toolset_of, write_script
from responses_server import ScriptedResponsesServer

from itemloop.runtime.events import RunFinished, Usage
from itemloop.runtime.loop import Runtime
from itemloop.runtime.openai_model import OpenAIModel

pytestmark = pytest.mark.anyio


def usage(inp: int, cached: int, out: int, reasoning: int) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def add(a: int, b: int) -> int:
    return a + b


TURNS = [
    {"output": [fcall("c1", "add", {"a": 1, "b": 2})], "usage": usage(100, 0, 20, 5)},
    {"output": [fcall("c2", "add", {"a": 3, "b": 4})], "usage": usage(150, 100, 30, 10)},
    {"output": [message("done")], "usage": usage(200, 150, 7, 0)},
]


async def test_run_finished_carries_each_turns_usage_and_the_total() -> None:
    with ScriptedResponsesServer(turns=TURNS) as server:
        model = OpenAIModel("gpt-test", base_url=server.url, api_key="sk-test", stream=True)
        async with Runtime(model, toolset_of(add)) as rt:
            final = await rt.run_until_done("go")
    assert isinstance(final, RunFinished) and final.reason == "completed"
    assert final.turn_usage == (
        Usage(100, 0, 20, 5),
        Usage(150, 100, 30, 10),
        Usage(200, 150, 7, 0),
    )
    assert final.usage == Usage(450, 250, 57, 15)


def test_cli_reports_the_total_in_json_and_on_its_last_line(tmp_path: Path) -> None:
    script = write_script(tmp_path / "t.jsonl", *TURNS)
    tools = tmp_path / "tools.py"
    tools.write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    base = [sys.executable, "-m", "itemloop.runtime.cli", "run", "go", "--script", str(script)]
    base += ["--tools", "", "--functions", str(tools)]
    r = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    last = json.loads(r.stdout.splitlines()[-1])
    assert last["kind"] == "run_finished"
    assert last["usage"] == {
        "input_tokens": 450,
        "cached_input_tokens": 250,
        "output_tokens": 57,
        "reasoning_tokens": 15,
    }
    assert len(last["turn_usage"]) == 3
    r = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "3 turns · tokens: 450 in (250 cached), 57 out (15 reasoning)"
    )
