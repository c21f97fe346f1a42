"""Batch tasks as Ray tasks: `RayRunner`, used by `run_batch(..., ray=RayOptions(...))`.

Each batch task is one Ray task (`_run_in_worker`): it runs `run_task` in the
worker's process, with its own event loop and its own sandbox, on whatever
node Ray picks, and returns the result as JSON-able data; the driver streams
results into the same iterator (and so the same file and display) as in
process. A task's directory is the same path on every node: `sessions` must be
on storage the cluster shares (on one machine, any directory).

Fault tolerance is Ray's: a task whose worker process dies (killed, out of
memory, its node lost) is run again by Ray, up to `max_retries` times, and the
new attempt resumes from the task's directory (`batch_task.py`) instead of
starting over. Retries exhausted, the task's result is `cause="worker_lost"`.

Cluster: with an `address`, the driver connects to that cluster (`auto`:
the one `ray start` made on this machine) and leaves it running. Without
one, a local cluster is started for the run (`address="local"`: never one
that happens to run on this machine already), on 127.0.0.1 only and with
Ray's usage reporting off, and is shut down at the end.

Stopping (Ctrl-C): each running Ray task is cancelled (Ray raises
KeyboardInterrupt in it, which stops its session as Ctrl-C would), and the
driver waits a moment for them to finish stopping before it lets go.

Not covered: live token counts while a Ray task runs (they come with its
result); itemloop must be installed, at the same version, wherever workers run.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio

from .batch_defaults import DEFAULT_RAY_MAX_RETRIES
from .batch_task import BatchTask, TaskResult, run_task

_STOP_GRACE_S = 15.0
"""How long the driver waits for cancelled Ray tasks to stop their sessions."""


@dataclass(frozen=True, slots=True)
class RayOptions:
    address: str | None = None
    """The cluster to run on; None: a local one started for the run."""
    cpus: int | None = None
    """CPUs of the local cluster started for the run (None: all of this machine's)."""
    task_cpus: float = 1.0
    """CPUs Ray reserves for each task (a fraction lets several share a core)."""
    max_retries: int = DEFAULT_RAY_MAX_RETRIES
    """How often a task whose worker died is run again (it resumes from its session)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        from .batch import BatchError

        raise BatchError(
            "--ray needs Ray: pip install 'itemloop[ray]' (on every node of the cluster)"
        ) from None
    return ray


class RayRunner:
    """Connects to (or starts) a Ray cluster on enter, lets go of it on exit;
    calling it runs one batch task there."""

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self._ray: Any = None
        self._remote: Any = None

    async def __aenter__(self) -> Self:
        o = self.options
        if o.address is None:
            # Read by Ray (and its workers) from the environment: a cluster for this
            # run alone talks over loopback only, reports nothing anywhere, and
            # admits only who holds this run's token (none is written to ~/.ray).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if os.environ.setdefault("RAY_AUTH_MODE", "token") == "token":
                os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
        ray = self._ray = _import_ray()
        kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        if o.address is None:
            kwargs.update(address="local", num_cpus=o.cpus, include_dashboard=False)
        else:
            kwargs.update(address=o.address)
        # ray.init blocks for seconds, but must run in the main thread (it sets signal
        # handlers); nothing else of the batch runs yet.
        ray.init(**kwargs)
        self._remote = ray.remote(_run_in_worker).options(
            num_cpus=o.task_cpus, max_retries=o.max_retries, retry_exceptions=False
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ray is not None:
            self._ray.shutdown()

    def capacity(self) -> int:
        """Tasks the cluster runs at once: its CPUs over each task's share."""
        cpus = float(self._ray.cluster_resources().get("CPU", 1))
        return max(1, int(cpus / self.options.task_cpus))

    async def __call__(self, task: BatchTask, directory: Path) -> TaskResult:
        ray = self._ray
        ref = self._remote.remote(task.model_dump(mode="json", exclude_unset=True), str(directory))
        try:
            data = await ref
        except anyio.get_cancelled_exc_class():
            ray.cancel(ref)
            with anyio.move_on_after(_STOP_GRACE_S, shield=True):
                try:
                    await ref
                except Exception:  # cancelled, as asked
                    pass
            raise
        except ray.exceptions.RayError as e:
            # RayTaskError: the task itself raised (run_task returns its errors: a bug);
            # anything else: Ray could not run it to the end (retries used up).
            bug = isinstance(e, ray.exceptions.RayTaskError)
            return TaskResult(
                id=task.id,
                status="error",
                cause="internal_error" if bug else "worker_lost",
                error=_ray_error(e, task.id),
            )
        return TaskResult.model_validate(data)


def _ray_error(e: Exception, task_id: str) -> str:
    text = str(e).strip().splitlines()
    first = text[0] if text else type(e).__name__
    return f"the Ray task of {task_id!r} failed for good ({type(e).__name__}): {first[:300]}"


def _run_in_worker(task_data: dict[str, Any], directory: str) -> dict[str, Any]:
    """A Ray task: one batch task, run (or resumed) in this worker."""
    task = BatchTask.model_validate(task_data)
    result = anyio.run(run_task, task, Path(directory))
    data: dict[str, Any] = json.loads(result.model_dump_json())
    return data
