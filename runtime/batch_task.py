"""One batch task, from its line to its result: workspace, setup, agent, check.

A task is a `BatchTask`: an `id`, a `prompt`, optional `setup` and `check`
commands, and any setting of `itemloop run` at top level (the `RunConfig`
schema, the same one a session records). `run_task` runs it in its own
directory (`<sessions>/<task key>/`):

    workspace/      a copy of `tools.sandbox.workspace` when the line gives one, else empty
    session.jsonl   the agent's session (`session.py`): settings and prompt first
    task.jsonl      the rest of the task (`batch_journal.py`)

Order: the workspace is made; one sandbox is opened for the task (when it has
`setup`, `check` or a tool that needs one) and kept for all of it; `setup`
commands run in it, in order, each with `sh -c` in the workspace, stopping at
the first that fails; the agent runs, its tools in that same sandbox; then the
`check` commands, the same way: their exit status and the tail of their output
are the task's grade.

Resuming (the same directory again, after any stop): a setup or check command
that finished is not run again; the agent's run continues from its session
(calls that finished are not run again, one cut off is answered as
interrupted: `Runtime._answer_pending`) with the settings the session
recorded, and with what is left of `max_turns`; a run that had ended is not
run again. A setup or check command that a stop cut off is run again: such
commands prepare and grade, and have to be safe to repeat.

What it does not keep across a stop: anything outside the workspace (a
container's or the sandbox's own files, processes). A resumed task gets a new
sandbox; what setup prepared outside the workspace is gone, so a setup whose
effects the agent needs after a stop keeps them in the workspace.

Every failure becomes the task's result (`status="error"` with its `cause`),
never an exception, except cancellation, which stops the task where it is.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import anyio
import pydantic

from itemloop.sandbox.base import CommandResult, Sandbox, SandboxError
from itemloop.tools.items import Item, output_text, unanswered_calls, user_message

from .batch_defaults import (
    DEFAULT_STEP_TIMEOUT_S,
    FINAL_MESSAGE_CHARS,
    STEP_OUTPUT_LIMIT,
    TAIL_CHARS,
)
from .batch_journal import Phase, StepOutcome, TaskJournal, TaskJournalError, TaskState
from .config import NoModel, RunConfig
from .events import RunFinished, Usage
from .loop import Run
from .model import Model, ModelRequest, ModelResponse, OnText
from .session import SessionError, SessionStore

log = logging.getLogger("itemloop.batch")

Status = Literal["passed", "failed", "completed", "error"]
Cause = Literal[
    "check_failed",
    "setup_failed",
    "max_turns",
    "agent_error",
    "sandbox_error",
    "config_error",
    "journal_error",
    "worker_lost",
    "internal_error",
]


class BatchTask(RunConfig):
    """One line of a tasks file: `id`, `prompt`, `setup`, `check`, and any `RunConfig` field.

    `tools.sandbox.workspace`, when given, is a directory copied for the task;
    when not given, the task's workspace starts empty.
    """

    id: str = pydantic.Field(min_length=1, max_length=500)
    prompt: str
    setup: tuple[str, ...] = ()
    """Commands run in the task's sandbox before the agent starts (`sh -c`, in the workspace)."""
    check: tuple[str, ...] = ()
    """Commands run after the agent finishes: their exit status and output tail are the grade."""
    setup_timeout_s: float = pydantic.Field(default=DEFAULT_STEP_TIMEOUT_S, gt=0)
    check_timeout_s: float = pydantic.Field(default=DEFAULT_STEP_TIMEOUT_S, gt=0)

    def run_config(self) -> RunConfig:
        """The `RunConfig` part of the task."""
        return RunConfig(**{name: getattr(self, name) for name in RunConfig.model_fields})

    @property
    def workspace_given(self) -> bool:
        return "workspace" in self.tools.sandbox.model_fields_set


class _Data(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class Tokens(_Data):
    input: int = 0
    output: int = 0
    cached: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, usage: Usage) -> Tokens:
        return cls(
            input=usage.input_tokens,
            output=usage.output_tokens,
            cached=usage.cached_input_tokens,
            reasoning=usage.reasoning_tokens,
        )


class Grade(_Data):
    """What the `check` commands said: all exited 0, or the first that did not."""

    passed: bool
    exit_code: int | None
    """Of the last check command run (None: killed, or timed out)."""
    timed_out: bool = False
    output: str = ""
    """The tail of that command's output (stdout and stderr, interleaved)."""


class TaskResult(_Data):
    """One line of a results file."""

    id: str
    status: Status
    """passed / failed: the check's verdict; completed: no check, the agent finished;
    error: the task could not get that far (see `cause` and `error`)."""
    cause: Cause | None = None
    """Why the task did not pass (None when it passed or completed)."""
    stop: Literal["completed", "max_turns", "error"] | None = None
    """How the agent's run ended (None: it did not run)."""
    turns: int = 0
    tokens: Tokens = Tokens()
    duration_s: float = 0.0
    grade: Grade | None = None
    final_message: str = ""
    error: str | None = None


def task_key(task_id: str) -> str:
    """The task's directory name: its id when that is a plain name, else a safe one
    made from it (kept readable, made unique by a hash of the id)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", task_id):
        return task_id
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", task_id).strip("._-")[:60] or "task"
    return f"{readable}-{hashlib.sha256(task_id.encode()).hexdigest()[:12]}"


async def run_task(
    task: BatchTask,
    task_dir: Path,
    *,
    on_usage: Callable[[Usage, bool], None] | None = None,
    model: Model | None = None,
) -> TaskResult:
    """Run (or resume) `task` in `task_dir`; its result, whatever happened.

    `on_usage(usage, turn)` is called for each model response as it arrives
    (`turn`: a turn of the run, not a compaction summary). `model`, when given,
    replaces the one the task's settings name.
    """
    journal = TaskJournal(task_dir / "task.jsonl")
    try:
        state = journal.load()
    except (TaskJournalError, OSError) as e:
        return TaskResult(id=task.id, status="error", cause="journal_error", error=str(e))
    try:
        journal.record(attempt=len(state.attempts) + 1)
        return await _TaskRun(task, task_dir, journal, on_usage, model).run()
    except OSError as e:
        return _failed(task, journal.state, "journal_error", f"{task_dir}: {e}")
    finally:
        journal.close()


def _failed(task: BatchTask, state: TaskState, cause: Cause, error: str) -> TaskResult:
    return TaskResult(
        id=task.id,
        status="error",
        cause=cause,
        turns=state.turns,
        tokens=Tokens.of(state.usage),
        duration_s=round(state.duration_s(), 3),
        error=error,
    )


class _Stopped(Exception):
    """The task was stopped (cancelled) between or during its phases."""


class _StepFailed(Exception):
    def __init__(self, index: int, outcome: StepOutcome) -> None:
        super().__init__(index)
        self.index = index
        self.outcome = outcome


class _TaskRun:
    def __init__(
        self,
        task: BatchTask,
        task_dir: Path,
        journal: TaskJournal,
        on_usage: Callable[[Usage, bool], None] | None,
        model: Model | None,
    ) -> None:
        self.task = task
        self.dir = task_dir
        self.journal = journal
        self.state = journal.state
        self.on_usage = on_usage
        self.model = model
        self.workspace = (task_dir / "workspace").absolute()
        self.session = task_dir / "session.jsonl"
        self._sandbox: Sandbox | None = None
        self._scope: anyio.CancelScope | None = None
        self._stopping = False

    async def run(self) -> TaskResult:
        """The task's result; cancelled, the task stops where it is, cleanly.

        The work runs shielded in a task of its own, and a cancellation is passed
        on to it as the cancellation of the current phase only (`_work`): the
        sandbox and the runtime are then closed in a scope that is not cancelled.
        Closed in a cancelled one, their exit stacks can make a cancellation its
        own `__context__` (Python 3.11's contextlib re-raising what anyio's task
        groups re-raise), and the next walk of that chain never ends. A stop
        while the sandbox or the tools start waits for them to have started.
        """
        results: list[TaskResult] = []
        ended = anyio.Event()

        async def body() -> None:
            try:
                with anyio.CancelScope(shield=True):
                    result = await self._guarded()
                    if result is not None:
                        results.append(result)
            finally:
                ended.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(body)
            try:
                await ended.wait()
            except anyio.get_cancelled_exc_class():
                self._stop()
                raise
        return results[0]

    def _stop(self) -> None:
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()

    @contextmanager
    def _work(self) -> Iterator[None]:
        """A phase of the task that a stop cancels; `_Stopped` after it when one did."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._stopping:
                scope.cancel()
            try:
                yield
            finally:
                self._scope = None
        if self._stopping:
            raise _Stopped

    async def _guarded(self) -> TaskResult | None:
        """The task's result, its errors made results; None when it was stopped."""
        try:
            try:
                return await self._run()
            finally:
                await self._close_sandbox()
        except _Stopped:
            return None
        except _StepFailed as e:
            return self._result("setup_failed", error=_step_error("setup", e))
        except SandboxError as e:
            return self._result("sandbox_error", error=str(e))
        except (SessionError, TaskJournalError) as e:
            return self._result("journal_error", error=str(e))
        except (NoModel, ValueError) as e:  # a bad script, functions file, recorded setting...
            return self._result("config_error", error=str(e))
        except Exception as e:
            log.exception("batch task %s failed", self.task.id)
            return self._result("internal_error", error=f"{type(e).__name__}: {e}")

    async def _run(self) -> TaskResult:
        config = self._settings()
        if not self.state.workspace_ready:
            await self._make_workspace()
        if self._needs_sandbox(config):
            # Opened here, outside every phase: see `run`.
            s = config.tools.sandbox
            from itemloop.sandbox import open_sandbox

            sandbox = open_sandbox(s.kind, s.workspace, s.options, image=s.image)
            self._sandbox = await sandbox.__aenter__()
        for i, command in enumerate(self.task.setup):
            outcome = await self._step("setup", i, command, self.task.setup_timeout_s)
            if not outcome.ok:
                raise _StepFailed(i, outcome)
        if self.state.agent is None:
            await self._agent(config)
        agent = self.state.agent or {}
        stop = agent.get("reason")
        if stop not in ("completed", "max_turns"):
            return self._result("agent_error", error=str(agent.get("error") or stop))
        if not self.task.check:
            if stop == "max_turns":
                return self._result("max_turns", error=_max_turns(config))
            return self._result(None, status="completed")
        outcome = StepOutcome(exit_code=0, timed_out=False, tail="")
        for i, command in enumerate(self.task.check):
            outcome = await self._step("check", i, command, self.task.check_timeout_s)
            if not outcome.ok:
                return self._result("check_failed", grade=_grade(outcome))
        return self._result(None, grade=_grade(outcome))

    def _needs_sandbox(self, config: RunConfig) -> bool:
        """Whether what is left of the task runs anything in its sandbox."""
        steps = self.state.steps
        if any(not o.ok for (phase, _), o in steps.items() if phase == "setup"):
            return False  # the task ends as it ended
        if any(("setup", i) not in steps for i in range(len(self.task.setup))):
            return True
        agent = self.state.agent
        if agent is None:
            return config.tools.needs_sandbox or bool(self.task.check)
        checks = [steps.get(("check", i)) for i in range(len(self.task.check))]
        return (
            agent.get("reason") in ("completed", "max_turns")
            and None in checks
            and all(o is None or o.ok for o in checks)
        )

    # -- settings, workspace, sandbox --------------------------------------------------

    def _settings(self) -> RunConfig:
        """The task's settings, with its own workspace; those its session recorded
        when the agent's run had begun (so a resumed run is the same run)."""
        config = self.task.run_config()
        sandbox = config.tools.sandbox.model_copy(update={"workspace": self.workspace})
        config = config.model_copy(
            update={"tools": config.tools.model_copy(update={"sandbox": sandbox})}
        )
        if self.session.exists():
            recorded = SessionStore(self.session).load()
            if recorded.items and recorded.config is not None:
                from .config import from_record

                config = from_record(recorded.config)
        return config

    async def _make_workspace(self) -> None:
        source = self.task.tools.sandbox.workspace if self.task.workspace_given else None
        if source is not None and not source.is_dir():
            raise ValueError(f"tools.sandbox.workspace {str(source)!r} is not a directory")

        def make() -> None:
            if self.workspace.exists():  # a copy a stop cut short
                shutil.rmtree(self.workspace)
            if source is None:
                self.workspace.mkdir(parents=True)
            else:
                shutil.copytree(source, self.workspace, symlinks=True)

        await anyio.to_thread.run_sync(make)
        self.journal.record(workspace="ready")

    async def _close_sandbox(self) -> None:
        # Not cancelled, and given no exception: see `run`.
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            await sandbox.__aexit__(None, None, None)

    async def _step(self, phase: Phase, index: int, command: str, timeout_s: float) -> StepOutcome:
        done = self.state.steps.get((phase, index))
        if done is not None:
            return done
        sandbox = self._sandbox
        assert sandbox is not None, "_needs_sandbox said no sandbox"
        # One stream, in the order written: the tail reads as the terminal would show it.
        with self._work():
            r = await sandbox.run(
                script="exec 2>&1\n" + command, timeout_s=timeout_s, output_limit=STEP_OUTPUT_LIMIT
            )
        outcome = StepOutcome(exit_code=r.exit_code, timed_out=r.timed_out, tail=_tail(r))
        self.journal.record(
            step=phase,
            index=index,
            exit_code=outcome.exit_code,
            timed_out=outcome.timed_out,
            tail=outcome.tail,
        )
        return outcome

    # -- the agent ---------------------------------------------------------------------

    async def _agent(self, config: RunConfig) -> None:
        from itemloop.tools.toolset import Toolset

        from .config import build_model, build_runtime, recordable

        store = SessionStore(self.session)
        recorded = store.load()
        if not recorded.items:
            # Settings and prompt on disk before anything starts: a stop during
            # start-up leaves a session the next attempt continues.
            store.record_config(recordable(config))
            store.append([user_message(self.task.prompt)])
        elif _ended(recorded.items):
            # The run had ended; only its record here was cut off by the stop.
            store.close()
            self._record_agent("completed", _last_turn_text(recorded.items), None)
            return
        store.close()
        left = max(0, config.max_turns - self.state.turns)
        # The tools work in the task's sandbox, where setup ran and check will run.
        sandbox = self._sandbox if config.tools.needs_sandbox else None
        model = _Metered(self.model or build_model(config), self._count)
        rt = build_runtime(
            config.model_copy(update={"max_turns": left}),
            model=model,
            toolset=Toolset(
                config.tools, sandbox=sandbox, sandbox_started=True, model_name=config.model
            ),
            session=self.session,
        )
        await rt.__aenter__()
        try:
            with self._work():
                finished = await _finish(rt.run(None))
        finally:
            await rt.__aexit__(None, None, None)  # not cancelled, and given no exception
        if finished is None:  # pragma: no cover - a run always ends with RunFinished
            raise RuntimeError("the run ended without RunFinished")
        self._record_agent(finished.reason, finished.final_text, finished.error)

    def _record_agent(self, reason: str, text: str, error: str | None) -> None:
        self.journal.record(agent={"reason": reason, "final_text": text, "error": error})

    def _count(self, response: ModelResponse, request: ModelRequest) -> None:
        usage = Usage.of(response.usage)
        turn = request.purpose == "turn"
        self.journal.record(usage=_usage_json(usage), turn=turn, sync=False)
        if self.on_usage is not None:
            self.on_usage(usage, turn)

    # -- the result --------------------------------------------------------------------

    def _result(
        self,
        cause: Cause | None,
        *,
        status: Status | None = None,
        grade: Grade | None = None,
        error: str | None = None,
    ) -> TaskResult:
        agent = self.state.agent or {}
        if status is None:
            status = "passed" if cause is None else "failed" if cause == "check_failed" else "error"
        stop = agent.get("reason")
        text = str(agent.get("final_text") or "")
        if len(text) > FINAL_MESSAGE_CHARS:
            text = (
                text[:FINAL_MESSAGE_CHARS]
                + f"\n… [{len(text) - FINAL_MESSAGE_CHARS:,} more characters in the session]"
            )
        return TaskResult(
            id=self.task.id,
            status=status,
            cause=cause,
            stop=stop if stop in ("completed", "max_turns", "error") else None,
            turns=self.state.turns,
            tokens=Tokens.of(self.state.usage),
            duration_s=round(self.state.duration_s(), 3),
            grade=grade,
            final_message=text,
            error=error,
        )


async def _finish(run: Run) -> RunFinished | None:
    """The run's last event, once it has ended. Cancelled, it stops the run first
    (commands killed, calls answered, journal saved)."""
    finished: RunFinished | None = None
    try:
        while True:
            # Not `async for`: its cursor would outlive a cancelled loop (see `Run`).
            try:
                event = await run.__anext__()
            except StopAsyncIteration:
                return finished
            if isinstance(event, RunFinished):
                finished = event
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True):
            await run.cancel()
        raise


def _tail(r: CommandResult) -> str:
    text = r.stdout + r.stderr
    return text[-TAIL_CHARS:]


def _grade(outcome: StepOutcome) -> Grade:
    return Grade(
        passed=outcome.ok,
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        output=outcome.tail,
    )


def _step_error(phase: str, e: _StepFailed) -> str:
    how = "timed out" if e.outcome.timed_out else f"exited {e.outcome.exit_code}"
    last = e.outcome.tail.rstrip().rpartition("\n")[2]
    return f"{phase} command {e.index + 1} {how}" + (f": {last}" if last else "")


def _max_turns(config: RunConfig) -> str:
    return f"stopped after max_turns ({config.max_turns}); the model was still calling tools"


def _usage_json(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _ended(items: Sequence[Item]) -> bool:
    """True when the history ends with a model turn that called nothing: the run ended."""
    last = items[-1] if items else {}
    return (
        last.get("type") in ("message", "reasoning")
        and last.get("role", "assistant") == "assistant"
        and not unanswered_calls(items)
    )


def _last_turn_text(items: Sequence[Item]) -> str:
    turn: list[Item] = []
    for item in reversed(items):
        if item.get("type") not in ("message", "reasoning") or item.get("role") == "user":
            break
        turn.append(item)
    return output_text(list(reversed(turn)))


class _Metered:
    """A `Model` that reports each response's usage before handing it on."""

    def __init__(
        self, model: Model, on_response: Callable[[ModelResponse, ModelRequest], None]
    ) -> None:
        self._model = model
        self._on_response = on_response
        self.name = model.name

    async def respond(
        self, request: ModelRequest, *, on_text: OnText | None = None
    ) -> ModelResponse:
        response = await self._model.respond(request, on_text=on_text)
        self._on_response(response, request)
        return response

    async def compact(self, request: ModelRequest) -> list[Item]:
        return await self._model.compact(request)

    async def aclose(self) -> None:
        await self._model.aclose()
