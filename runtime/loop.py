"""`Runtime`: the agent loop.

Each turn: maybe compact, call the model with the history and the tool
definitions, append its output items, execute the call items among them,
append one output per call in call order, persist, emit events, repeat — until
a turn calls nothing, `max_turns`, cancellation, or an error of the runtime's
own (a tool's error goes back to the model as that call's output).

    async with Runtime(model, Toolset(config, functions=[get_weather])) as rt:
        async for event in rt.run("What is the weather in Oslo?"):
            print(event)

The Runtime takes a model, a toolset (`tools/toolset.py`: the tools and the
sandbox, MCP servers and computer they need) and loop settings; it owns the
lifetimes of all three. Calls go through the `Dispatcher` (one gate in, one
out); the journal (`session.SessionStore`) makes a stopped run resumable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup

from itemloop.sandbox.base import SandboxError
from itemloop.tools.items import (
    Item,
    call_id_of,
    ensure_call_ids,
    error_output,
    is_call,
    output_text,
    unanswered_calls,
    user_message,
)
from itemloop.tools.toolset import Toolset

from .approvals import AbortRun, Approval, ApprovalRequest, Approver, Gate
from .compactor import Compactor
from .defaults import DEFAULT_MAX_TURNS
from .dispatch import Dispatcher
from .events import Event, ItemReceived, Notice, RunFinished, TextDelta, TurnStarted, Usage
from .model import Model, ModelError, ModelRequest, ModelResponse, parse_output_item
from .session import SessionStore

log = logging.getLogger("itemloop")


class Runtime:
    """Runs the agent loop. Owns the model's and the toolset's lifetimes: use `async with`."""

    def __init__(
        self,
        model: Model,
        toolset: Toolset | None = None,
        *,
        instructions: str | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        session: SessionStore | Path | str | None = None,
        compactor: Compactor | None = None,
        previous_response_id: bool = False,
        gate: Gate | None = None,
        approver: Approver | None = None,
    ) -> None:
        """`toolset` defaults to none at all (no built-ins, no sandbox). `gate` (the
        policy) decides which calls run, are denied or ask; `approver` answers those
        that ask — without one, or when it has no answer, the run pauses
        (`RunFinished.reason == "needs_approval"`) until a decision is recorded."""
        self.model = model
        self.toolset = toolset if toolset is not None else Toolset()
        self.instructions = instructions
        self.max_turns = max_turns
        self.compactor = compactor
        self.use_previous_response_id = previous_response_id
        self.store = SessionStore(session) if isinstance(session, (str, Path)) else session
        self.dispatcher = Dispatcher(self.toolset, journal=self.store, gate=gate, approver=approver)
        self.tool_definitions: list[Item] = []
        """Known once started: MCP tools are listed when their servers connect."""
        self.history: list[Item] = []
        self.response_id: str | None = None
        self._started: set[str] = set()
        self._finished: dict[str, Item] = {}
        self._sent = 0  # history[:_sent] is known to the server (previous_response_id mode)
        self._tg: TaskGroup | None = None
        self._turn_usage: list[Usage] = []  # of the current run
        self._current: Run | None = None
        self._journaled_loaded: set[tuple[str | None, str]] = set()

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            if self.store is not None:
                state = self.store.load()
                self.history = state.items
                self._started = state.started
                self._finished = state.finished
                self.response_id = state.response_id
                self._sent = state.sent
                for cid, decision in state.decisions.items():
                    self.dispatcher.decided[cid] = Approval.from_json(decision)
            await self.toolset.__aenter__()
            self.tool_definitions = self.toolset.definitions()
            if self.store is not None:
                self.toolset.loaded.update(state.tools_loaded)
            self._journaled_loaded = set(self.toolset.loaded)
        except BaseException:
            # Whatever started is stopped again: journal and client (the toolset
            # stops its own servers, sandbox and computer when it fails to start).
            try:
                if self.store is not None:
                    self.store.close()
            finally:
                await self.model.aclose()
            raise
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(et, e, tb)
        finally:
            self._tg = None
            # No shield scope around the toolset: the sandbox's and MCP's own task
            # groups were entered outside it and must exit outside it too; they
            # shield their own cleanup.
            try:
                await self.toolset.__aexit__(et, e, tb)
            finally:
                if self.store is not None:
                    self.store.close()
                await self.model.aclose()

    # -- running ---------------------------------------------------------------

    def run(self, prompt: str | None) -> Run:
        """Start the loop for `prompt` (or, with `None`, resume where the history stands).

        Iterate the result for its events. Leaving that `async for` (break,
        return, an exception) stops the run; so does `await run.cancel()`.
        One run at a time: a second while one is going is refused.
        """
        if self._tg is None:
            raise RuntimeError("use `async with Runtime(...) as rt:` before rt.run()")
        if self._current is not None and not self._current.done:
            raise RuntimeError(
                "this Runtime is already running; wait for that run to finish, or "
                "`await run.cancel()` it, before starting another"
            )
        run = self._current = Run()
        self._tg.start_soon(self._drive, prompt, run)
        return run

    @property
    def pending(self) -> list[ApprovalRequest]:
        """Calls of this run paused for a decision."""
        return list(self.dispatcher.waiting.values())

    def decide(self, call_id: str, decision: Approval) -> None:
        """Decide on a paused call (journaled); `run(None)` then continues the run."""
        if call_id not in self.dispatcher.waiting:
            waiting = ", ".join(self.dispatcher.waiting) or "none"
            raise ValueError(f"no call {call_id!r} waits for a decision (waiting: {waiting})")
        self.dispatcher.decide(call_id, decision)

    async def run_until_done(self, prompt: str | None) -> RunFinished:
        last: RunFinished | None = None
        async for event in self.run(prompt):
            if isinstance(event, RunFinished):
                last = event
        assert last is not None
        return last

    async def _drive(self, prompt: str | None, run: Run) -> None:
        channel, scope = run.channel, run.scope
        emit = channel.send
        turns = 0
        self._turn_usage = []
        final: RunFinished | None = None
        with channel:
            try:
                with scope:
                    for note in self.toolset.notices:
                        emit(Notice(note))
                    await self._answer_pending(emit)
                    if prompt is not None and not self.dispatcher.waiting:
                        self._append([user_message(prompt)])
                    while True:
                        if self.dispatcher.waiting:
                            final = RunFinished(
                                "needs_approval",
                                turns,
                                "",
                                pending=tuple(self.dispatcher.waiting.values()),
                            )
                            break
                        if turns >= self.max_turns:
                            final = RunFinished("max_turns", turns, "")
                            break
                        turns += 1
                        emit(TurnStarted(turns))
                        response = await self._model_turn(emit)
                        calls = [i for i in response.output if is_call(i)]
                        if not calls:
                            text = output_text(response.output)
                            final = RunFinished("completed", turns, text)
                            break
                        await self._execute(calls, emit)
                if final is None:
                    final = RunFinished("cancelled", turns, "", error="the run was cancelled")
            except (ModelError, SandboxError) as e:
                final = RunFinished("error", turns, "", error=str(e))
            except AbortRun as e:
                final = RunFinished("cancelled", turns, "", error=str(e))
            except Exception as e:
                # A bug of the runtime's own, or input it could not handle: the run
                # ends with the reason rather than a traceback through the caller.
                log.exception("itemloop run failed")
                final = RunFinished(
                    "error", turns, "", error=f"internal error: {type(e).__name__}: {e}"
                )
            finally:
                if self.store is not None:
                    self.store.sync()
                # The history is complete now (every call has its output), also when
                # the Runtime itself is closing and this task is cancelled.
                run.finished.set()
            usage = tuple(self._turn_usage)
            emit(dataclasses.replace(final, usage=sum(usage, Usage()), turn_usage=usage))

    async def _model_turn(self, emit: Callable[[Event], None]) -> ModelResponse:
        request = self._request()
        if self.compactor is not None:
            result = await self.compactor.maybe_compact(self.history, request)
            if result is not None:
                self.history = list(result.items)
                self.response_id = None
                self._sent = 0
                if self.store is not None:
                    self.store.replace(self.history)
                emit(result.event)
                for notice in result.notices:
                    emit(notice)
                request = self._request()
        if self.store is not None:
            self.store.sync()  # everything is on disk before the model sees it

        async def on_text(delta: str) -> None:
            emit(TextDelta(delta))

        response = await self.model.respond(request, on_text=on_text)
        self._turn_usage.append(Usage.of(response.usage))
        for note in ensure_call_ids(response.output):
            emit(Notice(note))
        self._append(response.output)
        for item in response.output:
            emit(ItemReceived(item, parse_output_item(item)))
        if self.use_previous_response_id:
            self.response_id = response.id
            self._sent = len(self.history)
            if self.store is not None:
                self.store.set_response_id(response.id, self._sent)
        if self.compactor is not None:
            self.compactor.observe(self.history, response)
        return response

    def _request(self) -> ModelRequest:
        stateful = self.use_previous_response_id and self.response_id is not None
        return ModelRequest(
            input=self.history[self._sent :] if stateful else self.history,
            tools=self.toolset.definitions_for(self.history),
            instructions=self.instructions,
            previous_response_id=self.response_id if stateful else None,
            # Stateful mode: every response is stored, or the next could not name it.
            store=True if self.use_previous_response_id else None,
            extra=self.compactor.request_extra() if self.compactor is not None else {},
        )

    async def _execute(self, calls: Sequence[Item], emit: Callable[[Event], None]) -> None:
        """Run `calls`; each start and each output is journaled as it happens."""
        outputs: list[Item | None] = [None] * len(calls)
        notes: list[Item] = []
        try:
            await self.dispatcher.run(calls, emit, outputs, notes)
        finally:
            # Also when cancelled: every call that was sent out gets its one output.
            self._append([o for o in outputs if o is not None] + notes)
            self._journal_loaded_tools()

    async def _answer_pending(self, emit: Callable[[Event], None]) -> None:
        """On resume, answer the calls the last stop left unanswered, in call order:
        an output saved when its call finished is used as it is; a call that
        started but never finished is not re-run; one that never started runs now."""
        pending = unanswered_calls(self.history)
        if not pending:
            return
        outputs: list[Item | None] = [None] * len(pending)
        fresh: list[int] = []
        interrupted = 0
        for i, call in enumerate(pending):
            cid = call_id_of(call)
            if cid in self._finished:
                outputs[i] = self._finished[cid]
            elif cid in self._started:
                interrupted += 1
                outputs[i] = error_output(call, INTERRUPTED)
            else:
                fresh.append(i)
        if interrupted:
            emit(Notice(f"{interrupted} call(s) were interrupted by the last stop; not re-run"))
        ran: list[Item | None] = [None] * len(fresh)
        notes: list[Item] = []
        try:
            if fresh:
                await self.dispatcher.run([pending[i] for i in fresh], emit, ran, notes)
        finally:
            for i, out in zip(fresh, ran, strict=True):
                outputs[i] = out
            self._append([o for o in outputs if o is not None] + notes)
            self._journal_loaded_tools()

    def _journal_loaded_tools(self) -> None:
        new = self.toolset.loaded - self._journaled_loaded
        if new and self.store is not None:
            self.store.record_tools_loaded(sorted(new, key=str))
        self._journaled_loaded |= new

    def _append(self, items: Sequence[Item]) -> None:
        self.history.extend(items)
        if self.store is not None:
            self.store.append(items)


class Run:
    """One run of the loop: an async iterator of its events, and its cancellation.

    Python tells an iterator nothing when an `async for` is left early, and an
    async generator is closed only when collected — which a reference held by
    the caller, or by a traceback, can postpone indefinitely. So `__aiter__`
    hands each loop a cursor of its own that nothing else references: when
    the loop is left, the cursor is freed at once (reference counting, not
    the garbage collector) and its finalizer cancels the run. The run then
    kills its commands, answers its calls "cancelled" and saves the journal;
    `await cancel()` waits for that to be done.
    """

    def __init__(self) -> None:
        self.channel = _EventChannel()
        self.scope = anyio.CancelScope()
        self.finished = anyio.Event()

    @property
    def done(self) -> bool:
        """True once `RunFinished` is emitted and the history is complete."""
        return self.finished.is_set()

    def __aiter__(self) -> _Cursor:
        return _Cursor(self)

    async def __anext__(self) -> Event:
        return await self.channel.next()

    def cancel_soon(self) -> None:
        """Ask the run to stop; it stops at once, but `cancel()` waits for it."""
        self.scope.cancel()

    async def cancel(self) -> None:
        """Stop the run: commands killed, calls answered, journal saved, then return."""
        self.scope.cancel()
        await self.finished.wait()


class _Cursor:
    """One `async for` over a `Run`; the run is cancelled when the loop lets go of it."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def __aiter__(self) -> _Cursor:
        return self

    async def __anext__(self) -> Event:
        return await self._run.channel.next()

    def __del__(self) -> None:
        if not self._run.done:
            # Freed after its event loop closed (collected late): nothing is left to stop.
            with contextlib.suppress(RuntimeError):
                self._run.cancel_soon()


class _EventChannel:
    """Unbounded single-consumer event queue.

    Lighter than a memory object stream: the consumer takes buffered events
    without a trip through the event loop each, which matters at ~5 events a turn.
    """

    def __init__(self) -> None:
        self._queue: deque[Event] = deque()
        self._wake = anyio.Event()
        self._closed = False

    def send(self, event: Event) -> None:
        if not self._closed:
            self._queue.append(event)
            self._wake.set()

    def __enter__(self) -> _EventChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._wake.set()

    async def next(self) -> Event:
        """The next event; `StopAsyncIteration` once the run is over and all were taken."""
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._wake = anyio.Event()
            await self._wake.wait()
        return self._queue.popleft()


INTERRUPTED = (
    "error: this call was started, but the runtime stopped before it finished; "
    "it was not run again. Check its effects before retrying it."
)
