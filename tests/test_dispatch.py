"""Dispatch: concurrent calls bounded, outputs in call order whatever order they
finish in, workspace-lane calls one at a time in order."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from helpers import fcall

from itemloop.runtime.dispatch import Dispatcher
from itemloop.runtime.events import Event
from itemloop.tools.base import ExecResult, Executor
from itemloop.tools.items import Item
from itemloop.tools.toolset import Toolset

pytestmark = pytest.mark.anyio


async def test_concurrency_is_bounded_and_outputs_keep_call_order() -> None:
    gates = [anyio.Event() for _ in range(4)]
    running: set[int] = set()
    peak = 0

    async def step(i: int) -> int:
        nonlocal peak
        running.add(i)
        peak = max(peak, len(running))
        await gates[i].wait()
        running.discard(i)
        return i

    calls = [fcall(f"c{i}", "step", {"i": i}) for i in range(4)]
    result: list[Item] = []

    async def go() -> None:
        async with Toolset(functions=[step]) as toolset:
            dispatcher = Dispatcher(toolset, max_concurrency=2)
            result.extend(await dispatcher.run(calls, lambda e: None))

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await wait_all_tasks_blocked()
        assert running == {0, 1}  # two at once, no more
        gates[1].set()  # finish out of order
        await wait_all_tasks_blocked()
        assert running == {0, 2}
        for i in (3, 2, 0):
            gates[i].set()
            await wait_all_tasks_blocked()
    assert peak == 2
    assert [o["call_id"] for o in result] == ["c0", "c1", "c2", "c3"]
    assert [o["output"] for o in result] == ["0", "1", "2", "3"]


class _Lane:
    """A sequential executor that records overlap."""

    item_types = ("shell_call",)
    sequential = True

    def __init__(self) -> None:
        self.active = 0
        self.overlap = False
        self.order: list[str] = []

    def definitions(self) -> list[Item]:
        return [{"type": "shell"}]

    async def execute(self, call: Item) -> ExecResult:
        self.active += 1
        self.overlap |= self.active > 1
        await anyio.lowlevel.checkpoint()
        self.order.append(call["call_id"])
        self.active -= 1
        out = {"type": "shell_call_output", "call_id": call["call_id"], "output": []}
        return ExecResult(out, True, "ok")


async def _dispatch(
    executor: Executor, calls: list[Item], emit: Callable[[Event], None]
) -> list[Item]:
    async with Toolset(executors=[executor]) as toolset:
        return await Dispatcher(toolset).run(calls, emit)


async def test_sequential_calls_run_one_at_a_time_in_order() -> None:
    lane = _Lane()
    calls = [
        {"type": "shell_call", "call_id": f"s{i}", "action": {"commands": ["true"]}}
        for i in range(5)
    ]
    events: list[Event] = []
    outs = await _dispatch(lane, calls, events.append)
    assert lane.order == ["s0", "s1", "s2", "s3", "s4"]
    assert not lane.overlap
    assert [o["call_id"] for o in outs] == lane.order
    assert [e.kind for e in events] == ["call_started", "call_finished"] * 5


async def test_an_executor_that_raises_still_answers() -> None:
    class Broken(_Lane):
        async def execute(self, call: Item) -> ExecResult:
            raise RuntimeError("bug")

    outs = await _dispatch(
        Broken(),
        [{"type": "shell_call", "call_id": "s1", "action": {"commands": ["x"]}}],
        lambda e: None,
    )
    assert len(outs) == 1
    assert "internal error in the shell_call executor: RuntimeError: bug" in str(outs[0])
