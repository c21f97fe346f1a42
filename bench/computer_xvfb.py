"""Click + screenshot through the contained desktop vs raw Xvfb + xdotool + grab on the host.

    python bench/computer_xvfb.py [-n 30] [--rounds 5]

Contained: `XvfbComputer` (Xvfb in a bubblewrap sandbox with its cookie; the click
is one xdotool through the sandbox's runner; the screenshot is read from Xvfb's
framebuffer file and encoded as PNG). Raw: what `--computer xvfb` did before it
was contained: a host Xvfb (no auth), `xdotool mousemove X Y click 1` as a
subprocess, and Pillow's `ImageGrab.grab(xdisplay=...)` saved as PNG at the same
compression. Both at 1024x768, in the same run, alternating batches of `-n`
(`--rounds` rounds); the ratio is the median of the rounds' ratios, and the
best-of ratio that of each side's fastest round.

The raw Xvfb reports its display on `-displayfd` in two writes (the number, then
a newline) and dies ("Cannot write display number") if the pipe is closed between
them: the pipe is read to the newline before it is closed, and the display is
checked to answer before anything is timed.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from itemloop.sandbox.xvfb_computer import XvfbComputer

W, H = 1024, 768


def start_raw_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """A host Xvfb without authentication, as the uncontained backend ran it."""
    read, write = os.pipe()
    argv = ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{W}x{H}x24"]
    xvfb = subprocess.Popen(
        [*argv, "-nolisten", "tcp", "-noreset"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read, "rb") as f:  # written once it accepts clients; EOF if it dies
        number = f.readline().strip()
    if not number.isdigit():
        xvfb.wait()
        raise SystemExit("the raw Xvfb did not start")
    display = f":{number.decode()}"
    env = {"DISPLAY": display, "PATH": os.environ["PATH"]}
    check = subprocess.run(["xdotool", "getmouselocation"], env=env, capture_output=True)
    if check.returncode != 0:
        xvfb.terminate()
        xvfb.wait()
        raise SystemExit(f"the raw Xvfb on {display} is unreachable: {check.stderr!r}")
    return xvfb, display


def raw_grab(display: str) -> bytes:
    from PIL import ImageGrab

    image: Any = ImageGrab.grab(xdisplay=display)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


async def raw_batch(display: str, n: int) -> float:
    env = {"DISPLAY": display, "PATH": os.environ["PATH"]}
    start = time.perf_counter()
    for i in range(n):
        argv = ["xdotool", "mousemove", str(10 + i), "20", "click", "1"]
        await anyio.run_process(argv, env=env, stderr=None)
        await anyio.to_thread.run_sync(raw_grab, display)
    return (time.perf_counter() - start) / n


async def contained_batch(computer: XvfbComputer, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await computer.click(10 + i, 20)
        await computer.screenshot()
    return (time.perf_counter() - start) / n


async def main(n: int, rounds: int) -> None:
    xvfb, display = start_raw_xvfb()
    raws: list[float] = []
    contained: list[float] = []
    ratios: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as ws:
            async with XvfbComputer(W, H, workspace=Path(ws)) as computer:
                await raw_batch(display, 3)  # warm-up
                await contained_batch(computer, 3)
                for _ in range(rounds):
                    r = await raw_batch(display, n)
                    c = await contained_batch(computer, n)
                    raws.append(r)
                    contained.append(c)
                    ratios.append(c / r)
    finally:
        xvfb.terminate()
        xvfb.wait()
    print(f"raw Xvfb + xdotool + grab : {statistics.median(raws) * 1000:7.1f} ms per click+shot")
    print(f"contained XvfbComputer    : {statistics.median(contained) * 1000:7.1f} ms")
    print(
        f"ratio (median of rounds)  : {statistics.median(ratios):.2f}x  rounds: "
        + ", ".join(f"{x:.2f}" for x in ratios)
    )
    print(f"ratio (best of rounds)    : {min(contained) / min(raws):.2f}x")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("-n", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    anyio.run(main, a.n, a.rounds)
