"""`Runtime`: the agent loop.

Each turn: maybe compact, call the model with the history and the tool
definitions, append its output items, execute the call items among them,
append one output per call in call order, persist, emit events, repeat — until
a turn calls nothing, `max_turns`, cancellation, or an error of the runtime's
own (a tool's error goes back to the model as that call's output).

    async with Runtime(model, sandbox=sandbox, tools=[get_weather]) as rt:
        async for event in rt.run("What is the weather in Oslo?"):
            print(event)
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import TaskGroup

from itemloop.sandbox.base import Sandbox, SandboxError
from itemloop.tools.base import Executor, Item, call_id_of, check_unique_names, error_output
from itemloop.tools.custom import CustomExecutor, CustomTool
from itemloop.tools.function import FunctionExecutor, FunctionTool
from itemloop.tools.mcp_approval import ApprovalPolicy, McpApprovalExecutor
from itemloop.tools.router import function_call_executor

from .builtin import DEFAULT_TOOLS, builtin_executors
from .compactor import Compactor
from .dispatch import Dispatcher
from .events import Event, ItemReceived, RunFinished, TextDelta, TurnStarted, Warning
from .items import ensure_call_ids, parse_output_item
from .model import Model, ModelError, ModelRequest, ModelResponse
from .session import SessionStore, unanswered_calls

if TYPE_CHECKING:
    from itemloop.tools.mcp import McpTools
    from itemloop.tools.mcp_config import McpServer

ToolLike = FunctionTool | CustomTool | Callable[..., Any]

log = logging.getLogger("itemloop")


def user_message(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def output_text(items: Sequence[Item]) -> str:
    """The assistant text among `items`."""
    parts = []
    for item in items:
        if item.get("type") == "message" and item.get("role") == "assistant":
            for c in item.get("content", ()):
                if c.get("type") == "output_text":
                    parts.append(str(c.get("text", "")))
    return "\n".join(parts)


class Runtime:
    """Runs the agent loop. Owns the sandbox's lifetime: use `async with`."""

    def __init__(
        self,
        model: Model,
        *,
        tools: Sequence[ToolLike] = (),
        sandbox: Sandbox | None = None,
        builtin_tools: Sequence[str] | None = None,
        executors: Sequence[Executor] = (),
        hosted_tools: Sequence[Item] = (),
        instructions: str | None = None,
        max_turns: int = 50,
        max_concurrency: int = 8,
        tool_timeout_s: float | None = 600.0,
        session: SessionStore | Path | str | None = None,
        compactor: Compactor | None = None,
        previous_response_id: bool = False,
        approve_mcp: ApprovalPolicy | None = None,
        shell_timeout_s: float | None = None,
        shell_output_limit: int | None = None,
        mcp_servers: Sequence[McpServer] = (),
    ) -> None:
        self.model = model
        self.sandbox = sandbox
        self.instructions = instructions
        self.max_turns = max_turns
        self.compactor = compactor
        self.use_previous_response_id = previous_response_id
        self.hosted_tools = list(hosted_tools)
        if builtin_tools is None:
            builtin_tools = DEFAULT_TOOLS if sandbox is not None else ()
        functions = [t for t in tools if not isinstance(t, CustomTool)]
        customs = [t for t in tools if isinstance(t, CustomTool)]
        all_executors: list[Executor] = [
            e for e in executors if "function_call" not in e.item_types
        ]
        # Python functions, MCP tools and any user executor all answer function_call:
        # one router in front of them picks by name.
        answering: list[Executor] = [e for e in executors if "function_call" in e.item_types]
        if functions:
            answering.append(FunctionExecutor(functions, default_timeout_s=tool_timeout_s))
        self.mcp: McpTools | None = None
        if mcp_servers:
            from itemloop.tools.mcp import McpTools  # the mcp package is a large import

            self.mcp = McpTools(mcp_servers)
            answering.append(self.mcp)
        function_calls = function_call_executor(answering)
        if function_calls is not None:
            all_executors.append(function_calls)
        if customs:
            all_executors.append(CustomExecutor(customs, default_timeout_s=tool_timeout_s))
        if builtin_tools:
            if sandbox is None:
                raise ValueError(f"built-in tools {list(builtin_tools)} need a sandbox")
            all_executors += builtin_executors(
                builtin_tools, sandbox, timeout_s=shell_timeout_s, output_limit=shell_output_limit
            )
        all_executors.append(McpApprovalExecutor(approve_mcp))
        self.dispatcher = Dispatcher(all_executors, max_concurrency=max_concurrency)
        # MCP tools are known only once connected: definitions are built on enter.
        self.tool_definitions: list[Item] = []
        self.store = SessionStore(session) if isinstance(session, (str, Path)) else session
        self.history: list[Item] = []
        self.response_id: str | None = None
        self._started: set[str] = set()
        self._finished: dict[str, Item] = {}
        self._sent = 0  # history[:_sent] is known to the server (previous_response_id mode)
        self._tg: TaskGroup | None = None
        self._resources = AsyncExitStack()

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
            if self.mcp is not None:
                await self._resources.enter_async_context(self.mcp)
            if self.sandbox is not None:
                await self._resources.enter_async_context(self.sandbox)
            self.tool_definitions = self.dispatcher.definitions() + self.hosted_tools
            check_unique_names(self.tool_definitions)
        except BaseException:
            # Whatever started is stopped again: servers, sandbox, journal, client.
            # (No shield scope: the resources' task groups were entered outside it.)
            try:
                await self._resources.aclose()
            finally:
                if self.store is not None:
                    self.store.close()
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
            # No shield scope around these: the sandbox's and MCP's own task groups
            # were entered outside it and must exit outside it too; they shield
            # their own cleanup.
            try:
                await self._resources.__aexit__(et, e, tb)
            finally:
                if self.store is not None:
                    self.store.close()
                await self.model.aclose()

    # -- running ---------------------------------------------------------------

    async def run(self, prompt: str | None) -> AsyncIterator[Event]:
        """Run the loop for `prompt` (or, with `None`, resume where the history stands)."""
        if self._tg is None:
            raise RuntimeError("use `async with Runtime(...) as rt:` before rt.run()")
        channel = _EventChannel()
        scope = anyio.CancelScope()
        self._tg.start_soon(self._drive, prompt, channel, scope)
        try:
            async for event in channel:
                yield event
        finally:
            scope.cancel()  # the consumer stopped listening: stop the run

    async def run_until_done(self, prompt: str | None) -> RunFinished:
        last: RunFinished | None = None
        async for event in self.run(prompt):
            if isinstance(event, RunFinished):
                last = event
        assert last is not None
        return last

    async def _drive(
        self, prompt: str | None, channel: _EventChannel, scope: anyio.CancelScope
    ) -> None:
        emit = channel.send
        turns = 0
        final: RunFinished | None = None
        with channel:
            try:
                with scope:
                    if self.mcp is not None:
                        for note in self.mcp.warnings:
                            emit(Warning(note))
                    await self._answer_pending(emit)
                    if prompt is not None:
                        self._append([user_message(prompt)])
                    while True:
                        if turns >= self.max_turns:
                            final = RunFinished("max_turns", turns, "")
                            break
                        turns += 1
                        emit(TurnStarted(turns))
                        response = await self._model_turn(emit)
                        calls = [i for i in response.output if Dispatcher.is_call(i)]
                        if not calls:
                            text = output_text(response.output)
                            final = RunFinished("completed", turns, text, usage=_usage(response))
                            break
                        await self._execute(calls, emit)
                if final is None:
                    final = RunFinished("cancelled", turns, "", error="the run was cancelled")
            except (ModelError, SandboxError) as e:
                final = RunFinished("error", turns, "", error=str(e))
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
            emit(final)

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
                for w in result.warnings:
                    emit(w)
                request = self._request()
        if self.store is not None:
            self.store.sync()  # everything is on disk before the model sees it

        async def on_text(delta: str) -> None:
            emit(TextDelta(delta))

        response = await self.model.respond(request, on_text=on_text)
        for note in ensure_call_ids(response.output):
            emit(Warning(note))
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
            tools=self.tool_definitions,
            instructions=self.instructions,
            previous_response_id=self.response_id if stateful else None,
            extra=self.compactor.request_extra() if self.compactor is not None else {},
        )

    async def _execute(self, calls: Sequence[Item], emit: Callable[[Event], None]) -> None:
        outputs: list[Item | None] = [None] * len(calls)
        try:
            await self._dispatch(calls, emit, outputs)
        finally:
            # Also when cancelled: every call that was sent out gets its one output.
            self._append([o for o in outputs if o is not None])

    async def _dispatch(
        self, calls: Sequence[Item], emit: Callable[[Event], None], outputs: list[Item | None]
    ) -> None:
        """Run `calls`, journaling each start and each output as it happens."""
        store = self.store

        async def on_start(call: Item) -> None:
            if store is not None:
                store.mark_started(call_id_of(call))

        def on_finish(output: Item) -> None:
            if store is not None:
                store.mark_finished(output)

        await self.dispatcher.run(calls, emit, on_start, outputs, on_finish)

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
            emit(Warning(f"{interrupted} call(s) were interrupted by the last stop; not re-run"))
        ran: list[Item | None] = [None] * len(fresh)
        try:
            if fresh:
                await self._dispatch([pending[i] for i in fresh], emit, ran)
        finally:
            for i, out in zip(fresh, ran, strict=True):
                outputs[i] = out
            self._append([o for o in outputs if o is not None])

    def _append(self, items: Sequence[Item]) -> None:
        self.history.extend(items)
        if self.store is not None:
            self.store.append(items)


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

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            while self._queue:
                yield self._queue.popleft()
            if self._closed:
                return
            self._wake = anyio.Event()
            await self._wake.wait()


INTERRUPTED = (
    "error: this call was started, but the runtime stopped before it finished; "
    "it was not run again. Check its effects before retrying it."
)


def _usage(response: ModelResponse) -> dict[str, int] | None:
    if not response.usage:
        return None
    return {k: v for k, v in response.usage.items() if isinstance(v, int)}
