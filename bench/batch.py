"""`run_batch` at scale: per-turn overhead, memory per session, Ray against one process.

    .venv/bin/python bench/batch.py                 # everything, a few minutes on 2 cores
    .venv/bin/python bench/batch.py --only overhead --sessions 200 --turns 60
    .venv/bin/python bench/batch.py --root /dev/shm # journals on tmpfs (no disk fsync)

Parts:

overhead  Per-turn loop overhead of S sessions at once against one alone, all
          through `run_batch` (journals included), function tools only. Each
          session's turns are a call to a no-op function from a scripted model.
          The cost of one more turn is measured by running every session with
          N1 and with N2 turns: (T(N2) - T(N1)) / (S x (N2 - N1)), wall and CPU,
          so session start-up (toolset, journals, workspace) is left out.
memory    itemloop's memory per idle session: S sessions started and waiting at
          their first model request (a model that does not answer until told);
          RSS growth of this process over S. Then the same with `local`
          (bubblewrap) sandboxes, reporting also the memory of each session's
          sandbox processes (RSS and PSS of the process trees this one started).
ray       Throughput of T short scripted tasks (one function call, then an
          answer) on a local Ray cluster started for the run, against the same
          tasks in this process; from the first task started to the last result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from itemloop.runtime.batch import BatchEvent, BatchTask, TaskStarted, run_batch
from itemloop.runtime.model import ModelRequest, ModelResponse, OnText
from itemloop.runtime.scripted import ScriptedModel

FUNCTIONS = "def noop(x: int) -> int:\n    '''Return x.'''\n    return x\n"
USAGE = {"input_tokens": 50, "output_tokens": 5}


def call_turn(i: int) -> dict[str, Any]:
    return {
        "output": [
            {
                "type": "function_call",
                "id": f"fc_{i}",
                "call_id": f"call_{i}",
                "name": "noop",
                "arguments": json.dumps({"x": i}),
                "status": "completed",
            }
        ],
        "usage": USAGE,
    }


def answer() -> dict[str, Any]:
    text = {"type": "output_text", "text": "done", "annotations": []}
    item = {"type": "message", "id": "m", "role": "assistant", "status": "completed",
            "content": [text]}  # fmt: skip
    return {"output": [item], "usage": USAGE}


def script(turns: int) -> list[Any]:
    return [call_turn(i) for i in range(turns)] + [answer()]


def tasks(n: int, functions: Path, **settings: Any) -> list[BatchTask]:
    tools = {"builtins": [], "functions": [str(functions)], **settings.pop("tools", {})}
    return [
        BatchTask.model_validate(
            {"id": f"t{i:05d}", "prompt": "go", "tools": tools, "max_turns": 10_000, **settings}
        )
        for i in range(n)
    ]


async def drain(
    batch_tasks: list[BatchTask],
    sessions: Path,
    *,
    concurrency: int,
    model_for: Callable[[BatchTask], Any] | None = None,
    ray: Any = None,
    on_event: Callable[[BatchEvent], None] | None = None,
) -> int:
    ok = 0
    batch = run_batch(
        batch_tasks, sessions=sessions, concurrency=concurrency, model_for=model_for, ray=ray,
        on_event=on_event,
    )  # fmt: skip
    async with contextlib.aclosing(batch):
        async for r in batch:
            ok += r.status == "completed"
            if r.status != "completed":
                print(f"  ! {r.id}: {r.status} {r.cause} {r.error}", file=sys.stderr)
    return ok


# -- per-turn overhead -------------------------------------------------------------


def overhead(
    root: Path, functions: Path, sessions: int, n1: int, n2: int, repeats: int = 3
) -> dict[str, Any]:
    def timed(count: int, turns: int) -> tuple[float, float]:
        with tempfile.TemporaryDirectory(dir=root) as d:
            batch = tasks(count, functions)
            t0, c0 = time.perf_counter(), time.process_time()
            ok = anyio.run(
                lambda: drain(batch, Path(d), concurrency=count,
                              model_for=lambda _: ScriptedModel(script(turns)))
            )  # fmt: skip
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert ok == count, f"{count - ok} sessions did not complete"
        return wall, cpu

    timed(4, 5)  # warm-up: imports, pydantic validators, first files
    out: dict[str, Any] = {}
    for count in (1, sessions):
        # The best of `repeats`: the machine is shared, and its disk too.
        w1, c1 = map(min, zip(*(timed(count, n1) for _ in range(repeats)), strict=True))
        w2, c2 = map(min, zip(*(timed(count, n2) for _ in range(repeats)), strict=True))
        turns = count * (n2 - n1)
        out[count] = {"wall_ms": (w2 - w1) / turns * 1e3, "cpu_ms": (c2 - c1) / turns * 1e3}
    alone, many = out[1], out[sessions]
    return {
        "sessions": sessions,
        "turns": (n1, n2),
        "alone": alone,
        "many": many,
        "ratio_wall": many["wall_ms"] / alone["wall_ms"],
        "ratio_cpu": many["cpu_ms"] / alone["cpu_ms"],
    }


# -- memory per idle session -------------------------------------------------------


class Waiting:
    """A model that holds every request until `release`: sessions sit idle at it."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.name = "waiting"

    async def respond(
        self, request: ModelRequest, *, on_text: OnText | None = None
    ) -> ModelResponse:
        self.gate.waiting += 1
        await self.gate.released.wait()
        return ModelResponse(output=answer()["output"], usage=USAGE)

    async def compact(self, request: ModelRequest) -> list[Any]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class Gate:
    def __init__(self, expected: int = 0) -> None:
        self.expected = expected
        self.count = 0
        self.all_waiting = anyio.Event()
        self.released = anyio.Event()

    @property
    def waiting(self) -> int:
        return self.count

    @waiting.setter
    def waiting(self, n: int) -> None:
        self.count = n
        if n >= self.expected:
            self.all_waiting.set()


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def idle_memory(root: Path, functions: Path, sessions: int, sandbox: str | None) -> dict[str, Any]:
    async def measure() -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if sandbox is not None:
            settings = {"tools": {"builtins": ["shell"], "sandbox": {"kind": sandbox}}}
        with tempfile.TemporaryDirectory(dir=root) as d:
            # Warm-up: a few sessions through the same path, so imports and caches
            # are in before the baseline.
            warm = Gate()
            warm.released.set()
            await drain(tasks(3, functions, **settings), Path(d) / "warm", concurrency=3,
                        model_for=lambda _: Waiting(warm))  # fmt: skip
            gate = Gate(sessions)
            tracemalloc.start()
            traced = tracemalloc.get_traced_memory()[0]
            before = rss_kib()
            result: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: drain(tasks(sessions, functions, **settings), Path(d) / "s",
                                            concurrency=sessions,
                                            model_for=lambda _: Waiting(gate)))  # fmt: skip
                await gate.all_waiting.wait()
                after = rss_kib()
                traced = tracemalloc.get_traced_memory()[0] - traced
                tracemalloc.stop()
                procs = descendants(os.getpid())
                result = {
                    "sessions": sessions,
                    "sandbox": sandbox or "none",
                    "itemloop_kib_per_session": (after - before) / sessions,
                    "traced_kib_per_session": traced / 1024 / sessions,
                    "sandbox_processes_per_session": len(procs) / sessions,
                    "sandbox_rss_kib_per_session": sum(rss_kib(p) for p in procs) / sessions,
                    "sandbox_pss_kib_per_session": sum(pss_kib(p) for p in procs) / sessions,
                }
                gate.released.set()
            return result

    return anyio.run(measure)


# -- Ray against one process -------------------------------------------------------


def throughput(
    root: Path, functions: Path, count: int, concurrency: int, task_cpus: float
) -> dict[str, Any]:
    from itemloop.runtime.batch_ray import RayOptions

    def run(ray: RayOptions | None) -> float:
        with tempfile.TemporaryDirectory(dir=root) as d:
            scripts = Path(d) / "script.jsonl"
            scripts.write_text("".join(json.dumps(t) + "\n" for t in script(1)))
            batch = tasks(count, functions, script=str(scripts))
            first: list[float] = []

            def on_event(e: BatchEvent) -> None:
                if isinstance(e, TaskStarted) and not first:
                    first.append(time.perf_counter())

            ok = anyio.run(lambda: drain(batch, Path(d) / "s", concurrency=concurrency,
                                         ray=ray, on_event=on_event))  # fmt: skip
            elapsed = time.perf_counter() - first[0]
        assert ok == count, f"{count - ok} tasks did not complete"
        return count / elapsed

    local = run(None)
    ray = run(RayOptions(task_cpus=task_cpus))
    return {"tasks": count, "in_process_per_s": local, "ray_per_s": ray, "ray_over_in_process": ray / local,
            "concurrency": concurrency, "ray_task_cpus": task_cpus, "cpus": os.cpu_count()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", choices=("overhead", "memory", "ray"), action="append")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--turns", type=int, nargs=2, default=(10, 40), metavar=("N1", "N2"))
    p.add_argument("--sandbox-sessions", type=int, default=20, help="sessions with local sandboxes")
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=50, help="in-process, for the ray part")
    p.add_argument("--ray-task-cpus", type=float, default=0.5)
    p.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()))
    args = p.parse_args()
    if not args.only:
        # Each part in a process of its own: memory freed by one part would hide
        # the next part's growth, and Ray leaves threads behind.
        for part in ("overhead", "memory", "ray"):
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", part], check=True)
        return
    parts = args.only
    with tempfile.TemporaryDirectory(dir=args.root) as d:
        functions = Path(d) / "bench_tools.py"
        functions.write_text(FUNCTIONS)
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, journals under {args.root}")
        if "overhead" in parts:
            o = overhead(args.root, functions, args.sessions, *args.turns)
            print(f"\n## per-turn overhead, {o['sessions']} sessions at once vs one alone "
                  f"(turns {o['turns'][0]} -> {o['turns'][1]})")  # fmt: skip
            for k in ("alone", "many"):
                print(
                    f"  {k:<6} wall {o[k]['wall_ms']:.3f} ms/turn   cpu {o[k]['cpu_ms']:.3f} ms/turn"
                )
            print(
                f"  ratio  wall {o['ratio_wall']:.2f}x   cpu {o['ratio_cpu']:.2f}x   (target <= 2x)"
            )
        if "memory" in parts:
            print("\n## memory per idle session")
            for sandbox, n in ((None, args.sessions), ("local", args.sandbox_sessions)):
                m = idle_memory(args.root, functions, n, sandbox)
                print(
                    f"  {m['sessions']:>4} sessions, sandbox {m['sandbox']:<5}: itemloop "
                    f"{m['itemloop_kib_per_session'] / 1024:.2f} MiB/session RSS, "
                    f"{m['traced_kib_per_session'] / 1024:.2f} MiB allocated (target <= 2); "
                    f"sandbox processes {m['sandbox_processes_per_session']:.1f}/session, "
                    f"RSS {m['sandbox_rss_kib_per_session'] / 1024:.2f} MiB, "
                    f"PSS {m['sandbox_pss_kib_per_session'] / 1024:.2f} MiB per session"
                )
        if "ray" in parts:
            t = throughput(args.root, functions, args.tasks, args.concurrency, args.ray_task_cpus)
            print(f"\n## {t['tasks']} short tasks: Ray (local cluster, {t['ray_task_cpus']} CPU a task) "
                  f"vs in process (concurrency {t['concurrency']})")  # fmt: skip
            print(f"  in process {t['in_process_per_s']:.1f} tasks/s   Ray {t['ray_per_s']:.1f} tasks/s   "
                  f"ratio {t['ray_over_in_process']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
