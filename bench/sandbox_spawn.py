"""Per-command latency of `true` through each sandbox, against floors measured in the same run.

    python bench/sandbox_spawn.py [-n 300] [--image itemloop-test:busybox]
                                  [--python-image itemloop-test:python] [--markdown]

Rows:
  bare subprocess    subprocess.run(["true"]) from Python: the floor
  bwrap per command  a fresh `bwrap --unshare-all ... true` per command (what a
                     sandbox started per command would cost)
  host / local       HostSandbox / BubblewrapSandbox .run(["true"]) (session-long runner)
  docker exec_run    a raw `container.exec_run(["true"])` through the docker package
  docker (sh only)   DockerSandbox on an image with only /bin/sh (exec path)
  docker (python3)   DockerSandbox on an image with python3 (runner fast path)

Each row is the median over `-n` runs after a warm-up; the ratio is to the
bare-subprocess floor. Rows whose backend is unavailable are reported as such.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from itemloop.sandbox import SandboxOptions, SandboxUnavailable, open_sandbox

WARMUP = 10


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_sync(fn: Callable[[], Any], n: int) -> float:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return _median_ms(samples)


async def time_async(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    for _ in range(WARMUP):
        await fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t)
    return _median_ms(samples)


async def bench_sandbox(kind: str, ws: Path, n: int, image: str | None = None) -> tuple[float, str]:
    sb: Any = open_sandbox(kind, ws, SandboxOptions(), image=image)
    async with sb:
        mode = getattr(sb, "mode", "runner")

        async def one() -> None:
            r = await sb.run(["true"])
            assert r.exit_code == 0, r

        return await time_async(one, n), mode


def bench_exec_run(image: str, n: int) -> float:
    import docker  # type: ignore[import-untyped,unused-ignore]

    client = docker.from_env()
    c = client.containers.run(
        image, ["/bin/sh", "-c", "read -r _"], detach=True, stdin_open=True, init=True
    )
    try:
        return time_sync(lambda: c.exec_run(["true"]), max(20, n // 5))
    finally:
        c.remove(force=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300, help="commands per row (default 300)")
    ap.add_argument("--image", default="itemloop-test:busybox", help="an image with only /bin/sh")
    ap.add_argument("--python-image", default="itemloop-test:python", help="an image with python3")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    n = args.n
    rows: list[tuple[str, float | None, str]] = []
    floor = time_sync(lambda: subprocess.run(["true"], check=True), n)
    rows.append(("bare subprocess (floor)", floor, "subprocess.run(['true'])"))
    bwrap = shutil.which("bwrap")
    if bwrap:
        argv = [bwrap, "--unshare-all", "--unshare-user", "--die-with-parent"]
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"]
        t = time_sync(lambda: subprocess.run(argv, check=True), max(20, n // 5))
        rows.append(("bwrap per command", t, "a new bwrap for each command"))
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)
        for kind, label, image in [
            ("host", "host sandbox", None),
            ("local", "local sandbox (bubblewrap)", None),
            ("docker", "docker sandbox, sh-only image", args.image),
            ("docker", "docker sandbox, python3 image", args.python_image),
        ]:
            count = n if kind != "docker" or image == args.python_image else max(20, n // 5)
            try:
                t, mode = await bench_sandbox(kind, ws, count, image)
                rows.append((label, t, f"{mode} path" + (f", {image}" if image else "")))
            except SandboxUnavailable as e:
                rows.append((label, None, f"unavailable: {str(e).splitlines()[0][:80]}"))
        try:
            rows.append(
                (
                    "docker exec_run (raw)",
                    bench_exec_run(args.image, n),
                    "docker package, no sandbox",
                )
            )
        except Exception as e:
            rows.append(("docker exec_run (raw)", None, f"unavailable: {e}"))
    if args.markdown:
        print("| path | median ms per `true` | × floor | notes |")
        print("| --- | ---: | ---: | --- |")
        for label, t, note in rows:
            ms = f"{t:.2f}" if t is not None else "–"
            ratio = f"{t / floor:.1f}×" if t is not None else "–"
            print(f"| {label} | {ms} | {ratio} | {note} |")
    else:
        for label, t, note in rows:
            ms = f"{t:8.2f} ms" if t is not None else "       –   "
            ratio = f"{t / floor:5.1f}x" if t is not None else "    –"
            print(f"{label:32} {ms} {ratio}  {note}")


if __name__ == "__main__":
    anyio.run(main)
