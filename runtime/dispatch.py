"""Dispatch: the call items of one turn to their executors, one output per call.

Calls of concurrent executors (function and custom tools) run at once, at most
`max_concurrency` at a time; calls of sequential executors (anything touching
the workspace: shell, apply_patch, ...) run one after another in call order, as
one lane beside them. Outputs come back in call order. Whatever happens —
unknown tool, an executor that raises, cancellation — each call gets exactly
one output (DESIGN.md, contract 2).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio

from itemloop.tools.base import (
    OUTPUT_TYPES,
    ExecResult,
    Executor,
    Item,
    call_id_of,
    call_name,
    error_output,
)

from .events import CallFinished, CallStarted, Event

Emit = Callable[[Event], None]
OnStart = Callable[[Item], Awaitable[None]]
OnFinish = Callable[[Item], None]


@dataclass(slots=True)
class _Batch:
    """One turn's calls and where their outputs go."""

    calls: Sequence[Item]
    outputs: list[Item | None]
    emit: Emit
    on_start: OnStart | None
    on_finish: OnFinish | None


class Dispatcher:
    def __init__(self, executors: Sequence[Executor], *, max_concurrency: int = 8) -> None:
        self.executors = list(executors)
        self.by_type: dict[str, Executor] = {}
        for ex in self.executors:
            for t in ex.item_types:
                self.by_type[t] = ex
        self.limiter = anyio.CapacityLimiter(max_concurrency)

    def definitions(self) -> list[Item]:
        return [d for ex in self.executors for d in ex.definitions()]

    @staticmethod
    def is_call(item: Item) -> bool:
        return item.get("type") in OUTPUT_TYPES

    async def run(
        self,
        calls: Sequence[Item],
        emit: Emit,
        on_start: OnStart | None = None,
        outputs: list[Item | None] | None = None,
        on_finish: OnFinish | None = None,
    ) -> list[Item]:
        """Execute `calls`; return their outputs in call order.

        `outputs`, when given, is filled in place, so a caller that is cancelled
        still holds one output per call. `on_start` runs before a call starts
        (to journal it), `on_finish` with each output as soon as it exists.
        """
        if outputs is None:
            outputs = [None] * len(calls)
        batch = _Batch(calls, outputs, emit, on_start, on_finish)
        try:
            if len(calls) == 1:  # the common case: no task group needed
                await self._one(batch, 0)
            else:
                lane: list[int] = []
                async with anyio.create_task_group() as tg:
                    for i, call in enumerate(calls):
                        ex = self.by_type.get(str(call.get("type")))
                        if ex is not None and ex.sequential:
                            lane.append(i)
                        else:
                            tg.start_soon(self._one_limited, batch, i)
                    if lane:
                        tg.start_soon(self._lane, batch, lane)
        finally:
            # Cancelled, or an executor escaped: whatever is unanswered still gets its one output.
            for i, call in enumerate(calls):
                if outputs[i] is None:
                    outputs[i] = error_output(
                        call, "error: the run was cancelled before this call finished"
                    )
        return [o for o in outputs if o is not None]

    async def _lane(self, batch: _Batch, indexes: list[int]) -> None:
        for i in indexes:
            await self._one(batch, i)

    async def _one_limited(self, batch: _Batch, i: int) -> None:
        async with self.limiter:
            await self._one(batch, i)

    async def _one(self, batch: _Batch, i: int) -> None:
        call = batch.calls[i]
        ctype = str(call.get("type"))
        cid = call_id_of(call)
        name = call_name(call)
        if batch.on_start is not None:
            await batch.on_start(call)
        batch.emit(CallStarted(call_id=cid, item_type=ctype, name=name))
        t0 = time.perf_counter()
        result = await self._execute(call)
        batch.outputs[i] = result.output
        if batch.on_finish is not None:
            batch.on_finish(result.output)
        batch.emit(
            CallFinished(
                call_id=cid,
                item_type=ctype,
                name=name,
                ok=result.ok,
                summary=result.summary,
                duration_s=time.perf_counter() - t0,
                output=result.output,
            )
        )

    async def _execute(self, call: Item) -> ExecResult:
        ctype = str(call.get("type"))
        ex = self.by_type.get(ctype)
        if ex is None:
            offered = sorted({str(d.get("name") or d.get("type")) for d in self.definitions()})
            msg = (
                f"error: the {ctype.removesuffix('_call')} tool is not enabled in this run. "
                f"Tools available: {', '.join(offered) or '(none)'}"
            )
            return ExecResult(output=error_output(call, msg), ok=False, summary=msg)
        try:
            return await ex.execute(call)
        except Exception as e:
            # The executor's own bug: the model still gets an answer, and the person a clue.
            msg = f"error: internal error in the {ctype} executor: {type(e).__name__}: {e}"
            return ExecResult(output=error_output(call, msg), ok=False, summary=msg)
