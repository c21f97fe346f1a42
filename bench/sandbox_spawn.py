"""Per-command latency of `true` through each sandbox, and Docker session start times,
against floors measured in the same run.

    python bench/sandbox_spawn.py [-n 300] [--starts 7] [--markdown]
        [--image itemloop-test:busybox] [--python-image itemloop-test:python]
        [--noshell-image itemloop-test:noshell] [--musl-image itemloop-test:musl]

Per-command rows (median over `-n` runs after a warm-up):
  bare subprocess     subprocess.run(["true"]) from Python: the floor
  bwrap per command   a fresh `bwrap --unshare-all ... true` per command (what a
                      sandbox started per command would cost)
  host / local        HostSandbox / BubblewrapSandbox .run(["true"]) (session-long runner)
  docker, IMAGE       DockerSandbox on each image: busybox only, no shell at all,
                      musl, python3 (the runner from the bundle: the fast path)
  docker exec path    DockerSandbox(fast_path=False) on the busybox image
  docker exec_run     a raw `container.exec_run(["true"])` through the docker package

The ratio of a sandbox row is to the floor measured alongside: the row
alternates batches of its own commands with batches of the floor (`ROUNDS`
rounds) and its ratio is the median of the rounds' ratios, so a machine whose
load changes during the run (a shared CI machine) weighs on both sides alike.
The floor row is the median of all those floor batches. The slow rows (a new
bwrap, a `docker exec` per command) are timed on their own and divided by that
floor: interleaved, the work Docker and the kernel finish after each of their
commands would slow the floor batches down instead.

Start rows (median over `--starts` sessions, the runner bundle already built):
  DockerSandbox on each image, from entering it (the container is created) to
  the end of its first command, beside `docker run --rm --network none IMAGE
  true` (the docker CLI: create, start, wait, remove) of the same image; and
  the bundle's one-time build, into an empty cache directory.

Rows whose backend is unavailable are reported as such.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from itemloop.sandbox import SandboxOptions, SandboxUnavailable, open_sandbox

WARMUP = 10
ROUNDS = 10

FLOOR_SAMPLES: list[float] = []
"""Every floor sample of the run, in seconds."""

Row = tuple[str, float | None, float | None, str]
"""label, median ms, ratio to the floor measured alongside (None: to the run's floor), notes."""


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def floor_once() -> None:
    subprocess.run(["true"], check=True)


async def _call(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    r = fn()
    if inspect.isawaitable(r):
        await r
    return time.perf_counter() - t


async def timed(fn: Callable[[], Any], n: int) -> float:
    """`fn`'s median ms over `n` calls, after a warm-up."""
    for _ in range(WARMUP):
        await _call(fn)
    return _median_ms([await _call(fn) for _ in range(n)])


async def paired(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    """`fn`'s median ms over about `n` calls, and the median of its rounds' ratios to
    the floor (batches of `fn` alternating with batches of the floor)."""
    for _ in range(WARMUP):
        await _call(fn)
        floor_once()
    per = max(5, n // ROUNDS)
    samples: list[float] = []
    ratios: list[float] = []
    for _ in range(ROUNDS):
        floor = [await _call(floor_once) for _ in range(per)]
        FLOOR_SAMPLES.extend(floor)
        mine = [await _call(fn) for _ in range(per)]
        ratios.append(statistics.median(mine) / statistics.median(floor))
        samples += mine
    return _median_ms(samples), statistics.median(ratios)


def make_sandbox(kind: str, ws: Path, image: str | None, fast_path: bool = True) -> Any:
    if kind == "docker" and not fast_path:
        from itemloop.sandbox.docker_sandbox import DockerSandbox

        assert image is not None
        return DockerSandbox(ws, SandboxOptions(), image=image, fast_path=False)
    return open_sandbox(kind, ws, SandboxOptions(), image=image)


async def bench_sandbox(
    kind: str, ws: Path, n: int, image: str | None = None, fast_path: bool = True
) -> tuple[float, float | None, str]:
    sb = make_sandbox(kind, ws, image, fast_path)
    async with sb:
        mode = getattr(sb, "mode", "runner")

        async def one() -> None:
            r = await sb.run(["true"])
            assert r.exit_code == 0, r

        if fast_path:
            ms, ratio = await paired(one, n)
            return ms, ratio, mode
        return await timed(one, n), None, mode


async def bench_start(ws: Path, image: str, n: int) -> tuple[float, str]:
    """Median ms from entering a DockerSandbox to the end of its first command."""
    samples = []
    mode = ""
    for _ in range(n):
        sb = make_sandbox("docker", ws, image)
        t = time.perf_counter()
        async with sb:
            r = await sb.run(["true"])
            samples.append(time.perf_counter() - t)
            assert r.exit_code == 0, r
            mode = sb.mode
    return _median_ms(samples), mode


def bench_docker_run(image: str, n: int) -> float:
    argv = ["docker", "run", "--rm", "--network", "none", image, "true"]
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t)
    return _median_ms(samples)


def bench_bundle_build() -> float:
    from itemloop.sandbox.runner_bundle import runner_bundle

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        runner_bundle(Path(d))
        return (time.perf_counter() - t) * 1000


async def bench_exec_run(image: str, n: int) -> float:
    import docker  # type: ignore[import-untyped,unused-ignore]

    client = docker.from_env()
    c = client.containers.run(
        image, ["/bin/sh", "-c", "read -r _"], detach=True, stdin_open=True, init=True
    )
    try:
        return await timed(lambda: c.exec_run(["true"]), n)
    finally:
        c.remove(force=True)


def _unavailable(e: BaseException) -> str:
    return f"unavailable: {str(e).splitlines()[0][:80]}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300, help="commands per row (default 300)")
    ap.add_argument("--starts", type=int, default=7, help="sessions per start row (default 7)")
    ap.add_argument("--image", default="itemloop-test:busybox", help="an image with only /bin/sh")
    ap.add_argument("--python-image", default="itemloop-test:python", help="an image with python3")
    ap.add_argument("--noshell-image", default="itemloop-test:noshell", help="no shell at all")
    ap.add_argument("--musl-image", default="itemloop-test:musl", help="an image on musl")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    n = args.n
    slow_n = max(20, n // 5)  # rows of tens of milliseconds per command
    images = [
        ("busybox only", args.image),
        ("no shell, one static binary", args.noshell_image),
        ("musl", args.musl_image),
        ("python3", args.python_image),
    ]
    rows: list[Row] = []
    bwrap = shutil.which("bwrap")
    if bwrap:
        argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent"]
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"]
        t = await timed(lambda: subprocess.run(argv, check=True), slow_n)
        rows.append(("bwrap per command", t, None, "a new bwrap for each command"))
    starts: list[tuple[str, float | None, float | None, str]] = []
    build_ms: float | None = None
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        cases: list[tuple[str, str, str | None, bool]] = [
            ("host", "host sandbox", None, True),
            ("local", "local sandbox (bubblewrap)", None, True),
        ]
        cases += [("docker", f"docker, {label}", image, True) for label, image in images]
        cases.append(("docker", "docker exec path, busybox only", args.image, False))
        for kind, label, image, fast in cases:
            try:
                t, ratio, mode = await bench_sandbox(kind, ws, n if fast else slow_n, image, fast)
                rows.append((label, t, ratio, f"{mode} path" + (f", {image}" if image else "")))
            except SandboxUnavailable as e:
                rows.append((label, None, None, _unavailable(e)))
        try:
            t = await bench_exec_run(args.image, slow_n)
            rows.append(("docker exec_run (raw)", t, None, "docker package, no sandbox"))
        except Exception as e:
            rows.append(("docker exec_run (raw)", None, None, _unavailable(e)))
        for label, image in images:
            try:
                t, mode = await bench_start(ws, image, args.starts)
                run = bench_docker_run(image, args.starts)
                starts.append((label, t, run, f"{mode} path, {image}"))
            except (SandboxUnavailable, subprocess.CalledProcessError, OSError) as e:
                starts.append((label, None, None, _unavailable(e)))
        try:
            build_ms = bench_bundle_build()
        except Exception as e:
            print(f"runner bundle build: {_unavailable(e)}")
    if not FLOOR_SAMPLES:  # no sandbox row ran
        FLOOR_SAMPLES.extend([await _call(floor_once) for _ in range(n)])
    floor = _median_ms(FLOOR_SAMPLES)
    rows.insert(0, ("bare subprocess (floor)", floor, 1.0, "subprocess.run"))
    rows = [
        (label, t, t / floor if r is None and t is not None else r, note)
        for label, t, r, note in rows
    ]
    if args.markdown:
        print("| path | median ms per `true` | × floor | notes |")
        print("| --- | ---: | ---: | --- |")
        for label, ms, r, note in rows:
            a = f"{ms:.2f}" if ms is not None else "–"
            b = f"{r:.1f}×" if r is not None else "–"
            print(f"| {label} | {a} | {b} | {note} |")
        print()
        print("| image | sandbox: start to first command | `docker run --rm … true` | notes |")
        print("| --- | ---: | ---: | --- |")
        for label, start_ms, run_ms, note in starts:
            a = f"{start_ms:.0f} ms" if start_ms is not None else "–"
            b = f"{run_ms:.0f} ms" if run_ms is not None else "–"
            print(f"| {label} | {a} | {b} | {note} |")
    else:
        for label, ms, r, note in rows:
            a = f"{ms:8.2f} ms" if ms is not None else "       –   "
            b = f"{r:5.1f}x" if r is not None else "    –"
            print(f"{label:34} {a} {b}  {note}")
        print()
        print(f"{'start to first command':34} {'sandbox':>10} {'docker run':>11}")
        for label, start_ms, run_ms, note in starts:
            a = f"{start_ms:7.0f} ms" if start_ms is not None else "       –  "
            b = f"{run_ms:8.0f} ms" if run_ms is not None else "        –  "
            print(f"{label:34} {a} {b}  {note}")
    if build_ms is not None:
        print()
        print(f"runner bundle build (once per itemloop + interpreter): {build_ms:.0f} ms")


if __name__ == "__main__":
    anyio.run(main)
