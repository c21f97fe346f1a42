"""Many sessions at once: `run_batch`, and the tasks file it reads.

    tasks = read_tasks(Path("tasks.jsonl"))
    async with contextlib.aclosing(run_batch(tasks, sessions=Path("runs"))) as results:
        async for result in results:
            print(result.id, result.status)

Each task (`BatchTask`: an id, a prompt, optional setup and check commands,
and any setting of `itemloop run` in the `RunConfig` schema) runs as its own
session with its own sandbox, in `<sessions>/<task key>/` (`batch_task.py`).
Results come as each task ends, in that order. A task that fails is a result
(`status="error"`), never an exception, and never stops the others.

Where tasks run: in this process, at most `concurrency` at once (default from
the cores and the memory: `batch_defaults.default_concurrency`); or, with
`ray=RayOptions(...)`, as Ray tasks on a Ray cluster (`batch_ray.py`), a
local one started for the run when no address is given.

Resuming: a task's directory holds everything needed to continue it, so
running the same tasks over the same `sessions` again continues each task
where it stopped (a task that had ended gives its result again at once,
running nothing). `itemloop batch` skips the tasks its results file already
holds. Cancelling the iteration (Ctrl-C) stops every task where it is; its
journals are on disk. One batch at a time uses a `sessions` directory (a lock
file says so); two would run the same task twice.

Races and limits: results are yielded from one task group; leaving the `async
for` early needs `contextlib.aclosing` (as above) so the tasks still running
are stopped at once, in this task. `on_event` callbacks run in the event loop
and must not block.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pydantic

from .batch_defaults import default_concurrency
from .batch_task import BatchTask, Grade, TaskResult, Tokens, run_task, task_key
from .events import Usage

if TYPE_CHECKING:
    from .batch_ray import RayOptions
    from .model import Model

__all__ = [
    "BatchError",
    "BatchEvent",
    "BatchTask",
    "Grade",
    "TaskResult",
    "TaskStarted",
    "TaskUsage",
    "Tokens",
    "read_tasks",
    "run_batch",
    "task_dir",
]


class BatchError(Exception):
    """The batch cannot start: a bad tasks file, a sessions directory in use, no Ray."""


@dataclass(frozen=True, slots=True)
class TaskStarted:
    id: str


@dataclass(frozen=True, slots=True)
class TaskUsage:
    """A model response of a running task (in-process tasks only: Ray tasks report
    their tokens with their result)."""

    id: str
    usage: Usage
    turn: bool


BatchEvent = TaskStarted | TaskUsage


# -- the tasks file ------------------------------------------------------------------

# Paths of a task line that are relative to the tasks file, not to where itemloop runs.
_PATHS: tuple[tuple[str, ...], ...] = (("script",), ("tools", "sandbox", "workspace"))


def read_tasks(path: Path) -> list[BatchTask]:
    """The tasks of a JSON Lines file, one object a line (blank lines and `#` lines
    skipped); relative paths in them are relative to the file. Raises `BatchError`
    naming every bad line, and any id given twice, before anything runs."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BatchError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
    base = path.parent.absolute()
    tasks: list[BatchTask] = []
    errors: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            tasks.append(parse_task(json.loads(line), base))
        except (ValueError, RecursionError) as e:
            errors.append(f"{path}:{lineno}: {_message(e)}")
    errors += _duplicates(tasks)
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise BatchError("bad tasks file:\n  " + "\n  ".join(shown))
    return tasks


def parse_task(data: Any, base: Path) -> BatchTask:
    """A task from one line's JSON, its relative paths taken from `base`."""
    if not isinstance(data, dict):
        raise ValueError("a task is a JSON object with an id and a prompt")
    for keys in _PATHS:
        _resolve(data, keys, base)
    tools = data.get("tools")
    if isinstance(tools, dict) and isinstance(tools.get("functions"), list):
        tools["functions"] = [
            str(base / f) if isinstance(f, str) else f for f in tools["functions"]
        ]
    return BatchTask.model_validate(data)


def _resolve(data: dict[str, Any], keys: tuple[str, ...], base: Path) -> None:
    for key in keys[:-1]:
        data = data.get(key)  # type: ignore[assignment]
        if not isinstance(data, dict):
            return
    value = data.get(keys[-1])
    if isinstance(value, str):
        data[keys[-1]] = str(base / value)


def _message(e: Exception) -> str:
    if isinstance(e, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'task'}: {err['msg']}"
            for err in e.errors(include_url=False)
        )
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON ({e.msg} at column {e.colno})"
    if isinstance(e, RecursionError):
        return "JSON nested too deeply to read"
    return str(e)


def _duplicates(tasks: Iterable[BatchTask]) -> list[str]:
    seen: set[str] = set()
    keys: dict[str, str] = {}
    errors: list[str] = []
    for t in tasks:
        if t.id in seen:
            errors.append(f"task id {t.id!r} is given more than once")
        seen.add(t.id)
        other = keys.setdefault(task_key(t.id), t.id)
        if other != t.id:  # pragma: no cover - needs a hash collision
            errors.append(f"task ids {other!r} and {t.id!r} share a directory name")
    return errors


def task_dir(sessions: Path, task_id: str) -> Path:
    """Where a task's workspace, session and journal live."""
    return sessions.absolute() / task_key(task_id)


# -- running -------------------------------------------------------------------------


async def run_batch(
    tasks: Iterable[BatchTask],
    *,
    sessions: Path,
    concurrency: int | None = None,
    ray: RayOptions | None = None,
    on_event: Callable[[BatchEvent], None] | None = None,
    model_for: Callable[[BatchTask], Model] | None = None,
) -> AsyncGenerator[TaskResult, None]:
    """Run `tasks`, each in `<sessions>/<task key>/`; yield each result as its task ends.

    `concurrency`: tasks at once (default: from cores and memory in this
    process; on Ray, what the cluster's CPUs hold). `ray`: run them as Ray
    tasks. `on_event`: told when a task starts and of each model response.
    `model_for`: the model of each task instead of the one its settings name
    (in this process only).
    """
    tasks = list(tasks)
    if dup := _duplicates(tasks):
        raise BatchError("; ".join(dup))
    if concurrency is not None and concurrency < 1:
        raise BatchError(f"concurrency must be at least 1, not {concurrency}")
    if ray is not None and model_for is not None:
        raise BatchError("model_for cannot cross into Ray workers: give the model in the tasks")
    emit = on_event or (lambda _: None)
    with _lock(sessions):
        if ray is None:
            runner: _Runner = _InProcess(emit, model_for)
            limit = concurrency or default_concurrency()
            async for result in _schedule(tasks, sessions, runner, limit, emit):
                yield result
        else:
            from .batch_ray import RayRunner

            async with RayRunner(ray) as ray_runner:
                limit = concurrency or ray_runner.capacity()
                async for result in _schedule(tasks, sessions, ray_runner, limit, emit):
                    yield result


_Runner = Callable[[BatchTask, Path], Awaitable[TaskResult]]


async def _schedule(
    tasks: list[BatchTask],
    sessions: Path,
    runner: _Runner,
    limit: int,
    emit: Callable[[BatchEvent], None],
) -> AsyncGenerator[TaskResult, None]:
    send, receive = anyio.create_memory_object_stream[TaskResult](math.inf)
    queue: Iterator[BatchTask] = iter(tasks)

    async def worker() -> None:
        for task in queue:  # one shared iterator: each task is taken once
            emit(TaskStarted(task.id))
            result = await runner(task, task_dir(sessions, task.id))
            try:
                send.send_nowait(result)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the batch is being left: no one takes results any more

    async def workers() -> None:
        async with send, anyio.create_task_group() as tg:
            for _ in range(min(limit, len(tasks))):
                tg.start_soon(worker)

    async with anyio.create_task_group() as tg, receive:
        tg.start_soon(workers)
        async for result in receive:
            yield result


class _InProcess:
    def __init__(
        self, emit: Callable[[BatchEvent], None], model_for: Callable[[BatchTask], Model] | None
    ) -> None:
        self.emit = emit
        self.model_for = model_for

    async def __call__(self, task: BatchTask, directory: Path) -> TaskResult:
        def on_usage(usage: Usage, turn: bool) -> None:
            self.emit(TaskUsage(task.id, usage, turn))

        model = self.model_for(task) if self.model_for is not None else None
        return await run_task(task, directory, on_usage=on_usage, model=model)


@contextmanager
def _lock(sessions: Path) -> Iterator[None]:
    """Hold `<sessions>/.lock` for the batch: a second batch on the same sessions is refused."""
    sessions.mkdir(parents=True, exist_ok=True)
    fd = os.open(sessions / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(
                f"{sessions} is in use by another batch (it holds {sessions / '.lock'}); "
                "wait for it, or give another --sessions directory"
            ) from None
        yield
    finally:
        os.close(fd)
