"""Per-turn loop overhead: itemloop against openai-agents, same process, same run.

Each of N turns is one function call to a trivial tool, answered by an
in-process scripted model (itemloop's `ScriptedModel`; a minimal fake `Model`
for openai-agents), so what is timed is the runtime itself: parsing the turn,
dispatching the call, building the output, growing the history.

    .venv/bin/python bench/loop_overhead.py            # N = 200 and 2000
    .venv/bin/python bench/loop_overhead.py --n 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio


def noop(x: int) -> int:
    """Return x."""
    return x


def summarize(stamps: list[float]) -> dict[str, float]:
    per_turn = [b - a for a, b in itertools.pairwise(stamps)]
    k = max(1, len(per_turn) // 10)
    return {
        "mean_ms": statistics.fmean(per_turn) * 1e3,
        "first10_ms": statistics.fmean(per_turn[:k]) * 1e3,
        "last10_ms": statistics.fmean(per_turn[-k:]) * 1e3,
    }


# -- itemloop --------------------------------------------------------------------


async def run_itemloop(n: int) -> list[float]:
    return await run_itemloop_with(n, lambda toolset: None)


async def run_itemloop_with(n: int, make_gate: Any) -> list[float]:
    """`run_itemloop`, with the gate `make_gate(toolset)` returns (None: no gate)."""
    from itemloop.runtime.loop import Runtime
    from itemloop.runtime.model import ModelRequest
    from itemloop.runtime.scripted import ScriptedModel
    from itemloop.tools.toolset import Toolset

    stamps: list[float] = []

    def turn(i: int) -> Any:
        def make(_: ModelRequest) -> list[dict[str, Any]]:
            stamps.append(time.perf_counter())
            if i == n:
                return [
                    {
                        "type": "message",
                        "role": "assistant",
                        "id": "m",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": "done", "annotations": []}],
                    }
                ]
            return [
                {
                    "type": "function_call",
                    "id": f"fc_{i}",
                    "call_id": f"call_{i}",
                    "name": "noop",
                    "arguments": json.dumps({"x": i}),
                    "status": "completed",
                }
            ]

        return make

    model = ScriptedModel([turn(i) for i in range(n + 1)])
    toolset = Toolset(functions=[noop])
    async with Runtime(model, toolset, max_turns=n + 1, gate=make_gate(toolset)) as rt:
        result = await rt.run_until_done("go")
    assert result.reason == "completed", result
    assert len(rt.history) == 2 * n + 2
    return stamps


# -- openai-agents -----------------------------------------------------------------


def run_agents(n: int) -> list[float]:
    from agents import Agent, Runner, function_tool, set_tracing_disabled
    from agents.items import ModelResponse
    from agents.models.interface import Model
    from agents.usage import Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    set_tracing_disabled(True)
    stamps: list[float] = []

    class FakeModel(Model):
        def __init__(self) -> None:
            self.i = 0

        async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
            stamps.append(time.perf_counter())
            i = self.i
            self.i += 1
            if i == n:
                out: list[Any] = [
                    ResponseOutputMessage(
                        id="m",
                        type="message",
                        role="assistant",
                        status="completed",
                        content=[
                            ResponseOutputText(type="output_text", text="done", annotations=[])
                        ],
                    )
                ]
            else:
                out = [
                    ResponseFunctionToolCall(
                        id=f"fc_{i}",
                        call_id=f"call_{i}",
                        type="function_call",
                        name="noop",
                        arguments=json.dumps({"x": i}),
                        status="completed",
                    )
                ]
            return ModelResponse(output=out, usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    agent = Agent(name="bench", model=FakeModel(), tools=[function_tool(noop)])
    result = Runner.run_sync(agent, "go", max_turns=n + 5)
    assert result.final_output == "done"
    return stamps


# -- startup ------------------------------------------------------------------------


def startup() -> dict[str, float]:
    py = sys.executable

    def wall(cmd: list[str], reps: int = 5) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1e3

    def rss(module: str) -> float:
        # VmRSS, not ru_maxrss: the latter survives exec and reports the parent's peak.
        code = (
            f"import {module}\nfor line in open('/proc/self/status'):\n"
            "    line.startswith('VmRSS') and print(line.split()[1])"
        )
        out = subprocess.run([py, "-c", code], check=True, capture_output=True, text=True).stdout
        return int(out) / 1024

    baseline = "sys"
    return {
        "itemloop_help_ms": wall([py, "-m", "itemloop.runtime.cli", "--help"]),
        "python_bare_ms": wall([py, "-c", "pass"]),
        "import_itemloop_ms": wall([py, "-c", "import itemloop.runtime.loop"]),
        "import_agents_ms": wall([py, "-c", "import agents"]),
        "rss_python_mb": rss(baseline),
        "rss_itemloop_mb": rss("itemloop.runtime.loop"),
        "rss_agents_mb": rss("agents"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, action="append")
    args = parser.parse_args()
    sizes = args.n or [200, 2000]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    print(
        f"{'N':>6} {'runtime':<14} {'per turn':>10} {'first 10%':>10} {'last 10%':>10} {'last/first':>10}"
    )
    # Warm-up for both: one-time costs (imports, building pydantic validators)
    # are startup, reported below, not per-turn overhead.
    anyio.run(run_itemloop, 20)
    run_agents(20)
    for n in sizes:
        ours = summarize(anyio.run(run_itemloop, n))
        theirs = summarize(run_agents(n))
        for name, s in (("itemloop", ours), ("openai-agents", theirs)):
            print(
                f"{n:>6} {name:<14} {s['mean_ms']:>8.3f}ms {s['first10_ms']:>8.3f}ms "
                f"{s['last10_ms']:>8.3f}ms {s['last10_ms'] / s['first10_ms']:>10.2f}"
            )
        print(
            f"{n:>6} ratio (openai-agents / itemloop per turn): {theirs['mean_ms'] / ours['mean_ms']:.1f}x"
        )
    s = startup()
    print()
    print(
        f"itemloop --help: {s['itemloop_help_ms']:.0f} ms (bare python: {s['python_bare_ms']:.0f} ms)"
    )
    print(
        f"import itemloop.runtime.loop: {s['import_itemloop_ms']:.0f} ms, "
        f"RSS {s['rss_itemloop_mb']:.0f} MB"
    )
    print(
        f"import agents:                {s['import_agents_ms']:.0f} ms, RSS {s['rss_agents_mb']:.0f} MB"
    )
    print(f"bare python RSS: {s['rss_python_mb']:.0f} MB")


if __name__ == "__main__":
    main()
