"""A run's lifetime from the embedding program's side (issue 9, items 11-13): leaving the
`async for` stops the run even while the caller holds the iterator, a second run at once
is refused, and once a run is over its history is complete. Through a real sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
from helpers import message

from itemloop.runtime.events import CallStarted, RunFinished
from itemloop.runtime.loop import Runtime
from itemloop.runtime.scripted import ScriptedModel
from itemloop.tools.config import SandboxConfig, ToolsetConfig
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio

HANG_GUARD_S = 20  # far below the command's 60 s: only a killed command ends in time


def slow_shell(cid: str) -> dict[str, object]:
    script = "echo started > started.fifo; sleep 60; echo done > after"
    return {"type": "shell_call", "call_id": cid, "action": {"commands": [script]}}


async def command_running(workspace: Path) -> None:
    """Return once the command is running: it has written to the FIFO (no polling)."""

    def read() -> str:
        with open(workspace / "started.fifo") as fifo:
            return fifo.readline()

    with anyio.fail_after(HANG_GUARD_S):
        assert await anyio.to_thread.run_sync(read) == "started\n"


def runtime(tmp_path: Path) -> tuple[Runtime, ScriptedModel]:
    os.mkfifo(tmp_path / "started.fifo")
    model = ScriptedModel([[slow_shell("s1")], [message("never asked")]])
    config = ToolsetConfig(builtins=("shell",), sandbox=SandboxConfig(workspace=tmp_path))
    return Runtime(model, Toolset(config)), model


def assert_stopped(rt: Runtime, model: ScriptedModel, workspace: Path) -> None:
    outs = [i for i in rt.history if i["type"] == "shell_call_output"]
    assert len(outs) == 1, "the history is complete once the run is over"
    assert "cancelled" in outs[0]["output"][0]["stderr"]
    assert len(model.requests) == 1, "the model was not called again"
    assert not (workspace / "after").exists(), "the command was killed"


async def test_break_stops_the_run_while_the_caller_holds_the_iterator(tmp_path: Path) -> None:
    rt, model = runtime(tmp_path)
    async with rt:
        run = rt.run("go")  # held by the caller for the whole test
        async for event in run:
            if isinstance(event, CallStarted):
                await command_running(tmp_path)
                break
        with anyio.fail_after(HANG_GUARD_S):
            await run.finished.wait()
        assert_stopped(rt, model, tmp_path)
        assert run.done


async def test_an_exception_in_the_loop_body_stops_the_run(tmp_path: Path) -> None:
    rt, model = runtime(tmp_path)
    async with rt:
        run = rt.run("go")
        with pytest.raises(LookupError) as caught:  # the traceback is kept in `caught`
            async for event in run:
                if isinstance(event, CallStarted):
                    await command_running(tmp_path)
                    raise LookupError("the caller's own error")
        with anyio.fail_after(HANG_GUARD_S):
            await run.finished.wait()
        assert_stopped(rt, model, tmp_path)
        assert caught.value.args == ("the caller's own error",)


async def test_cancel_returns_with_the_history_complete(tmp_path: Path) -> None:
    rt, model = runtime(tmp_path)
    async with rt:
        run = rt.run("go")
        async for event in run:
            if isinstance(event, CallStarted):
                await command_running(tmp_path)
                with anyio.fail_after(HANG_GUARD_S):
                    await run.cancel()
                assert_stopped(rt, model, tmp_path)  # at once, not eventually
        events = [e async for e in run]
        assert events == [] or isinstance(events[-1], RunFinished)


async def test_a_second_run_while_one_is_going_is_refused(tmp_path: Path) -> None:
    rt, _ = runtime(tmp_path)
    async with rt:
        run = rt.run("go")
        with pytest.raises(RuntimeError, match="already running"):
            rt.run("again")
        await run.cancel()
        finished = await rt.run_until_done(None)  # after it, a new run is fine
        assert finished.reason == "completed"
