"""`itemloop batch`: the command around `run_batch`, its results file and its display.

    itemloop batch TASKS.jsonl --out RESULTS.jsonl [--concurrency N] [--sessions DIR]
                   [--ray] [--ray-address ADDRESS] [--ray-cpus N] [--ray-task-cpus N]
    itemloop batch --summary RESULTS.jsonl [--json]

The tasks whose ids the results file already holds are skipped; the others
run (or resume from `--sessions`, by default `RESULTS.sessions/` beside the
results file, so the same command finds them again). Exit status: 0 once
every task has a result, whatever it is (the results say how each went); 2
for bad usage or a bad tasks file; 1 when the batch cannot run (the sessions
directory is in use, Ray is missing); 130 on Ctrl-C, after which the same
command resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import anyio

from .batch import BatchError, BatchTask, read_tasks, run_batch
from .batch_progress import BatchProgress
from .batch_results import ResultsFile, read_results
from .commands import CliError


async def batch_command(args: argparse.Namespace) -> int:
    if args.summary is not None:
        return _summary(args.summary, as_json=args.json)
    if args.tasks is None or args.out is None:
        raise CliError(
            "batch needs TASKS.jsonl and --out RESULTS.jsonl (or --summary RESULTS.jsonl)"
        )
    if args.concurrency is not None and args.concurrency < 1:
        raise CliError(f"--concurrency {args.concurrency}: must be at least 1")
    try:
        tasks = read_tasks(args.tasks)
    except BatchError as e:
        raise CliError(str(e)) from None
    sessions: Path = args.sessions or args.out.with_name(args.out.stem + ".sessions")
    try:
        results = ResultsFile(args.out).open()
    except BatchError as e:  # not a results file: bad input
        raise CliError(f"--out: {e}") from None
    except OSError as e:
        raise CliError(f"--out {args.out}: {e.strerror or e}", status=1) from None
    try:
        with results:
            pending = [t for t in tasks if t.id not in results.done]
            progress = BatchProgress(len(tasks), skipped=len(tasks) - len(pending))
            if len(pending) < len(tasks):
                print(
                    f"itemloop batch: {len(tasks) - len(pending)} of {len(tasks)} tasks already "
                    f"have a result in {args.out}; running the other {len(pending)}",
                    file=sys.stderr,
                )
            await _run(args, pending, sessions, results, progress)
    except BatchError as e:
        raise CliError(str(e), status=1) from None
    except OSError as e:
        raise CliError(f"{e.filename or args.out}: {e.strerror or e}", status=1) from None
    return 0


async def _run(
    args: argparse.Namespace,
    tasks: list[BatchTask],
    sessions: Path,
    results: ResultsFile,
    progress: BatchProgress,
) -> None:
    ray = None
    if args.ray or args.ray_address is not None:
        from .batch_ray import RayOptions

        ray = RayOptions(address=args.ray_address, cpus=args.ray_cpus, task_cpus=args.ray_task_cpus)
        where = args.ray_address or "a local Ray cluster started for this run"
        print(f"itemloop batch: running on {where}", file=sys.stderr)
    batch = run_batch(
        tasks, sessions=sessions, concurrency=args.concurrency, ray=ray, on_event=progress.event
    )
    try:
        async with anyio.create_task_group() as tg, contextlib.aclosing(batch):
            tg.start_soon(progress.tick)
            async for result in batch:
                results.append(result)  # on disk before it is shown
                progress.finished(result)
            tg.cancel_scope.cancel()
    except anyio.get_cancelled_exc_class():
        progress.stopped()
        raise
    progress.close()
    print(
        f"itemloop batch: results in {args.out}; sum them up: itemloop batch --summary {args.out}",
        file=sys.stderr,
    )


def _summary(path: Path, *, as_json: bool) -> int:
    from .batch_summary import render, summarize

    try:
        summary = summarize(read_results(path))
    except BatchError as e:
        raise CliError(str(e)) from None
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        sys.stdout.write(render(summary))
    return 0
