"""One progress display for a batch: counts, tokens, elapsed time and an ETA.

On a terminal, a status line at the bottom is redrawn twice a second, and a
line per task that ends is printed above it; elsewhere (a log, CI) only the
per-task lines are printed, each ending with the counts so far. Everything
goes to `err`; the results themselves go to the results file.

    [12/20] 2 running · 9 passed · 2 failed · 1 error · 41,210 in (8,000 cached) / 3,120 out · 0:42 · ETA 0:31

The ETA assumes the tasks left take as long as those done in this run, at
the same concurrency: a guess, shown once a task of this run has ended.
Tokens include those of running tasks as their responses arrive (in-process
tasks; Ray tasks add theirs when they end).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import anyio

from .batch import BatchEvent, TaskStarted, TaskUsage
from .batch_task import TaskResult, Tokens
from .events import Usage


class BatchProgress:
    def __init__(self, total: int, skipped: int = 0, err: TextIO = sys.stderr) -> None:
        self.total = total
        """Tasks of the whole batch, those already done before this run included."""
        self.skipped = skipped
        self.err = err
        self.tty = err.isatty()
        self.started = time.monotonic()
        self.first_start: float | None = None
        """When this run's first task started (after a Ray cluster's start-up): the ETA's clock."""
        self.running: dict[str, Usage] = {}
        self.status: dict[str, int] = {"passed": 0, "failed": 0, "completed": 0, "error": 0}
        self.tokens = Tokens()
        self.ended = 0
        """Tasks of this run that ended."""

    # -- what happens --------------------------------------------------------------

    def event(self, event: BatchEvent) -> None:
        if isinstance(event, TaskStarted):
            self.running[event.id] = Usage()
            if self.first_start is None:
                self.first_start = time.monotonic()
        elif isinstance(event, TaskUsage) and event.id in self.running:
            self.running[event.id] += event.usage

    def finished(self, result: TaskResult) -> None:
        self.running.pop(result.id, None)
        self.ended += 1
        self.status[result.status] = self.status.get(result.status, 0) + 1
        t = result.tokens
        self.tokens = Tokens(
            input=self.tokens.input + t.input,
            output=self.tokens.output + t.output,
            cached=self.tokens.cached + t.cached,
            reasoning=self.tokens.reasoning + t.reasoning,
        )
        self._line(
            f"{_describe(result)}   {self.status_line()}" if not self.tty else _describe(result)
        )

    def stopped(self) -> None:
        """Ctrl-C: say what happens next."""
        left = self.total - self.skipped - self.ended
        self._line(
            f"stopped: {self.ended} task(s) ended in this run, {left} not; "
            "run the same command again to resume"
        )

    def close(self) -> None:
        if self.tty:
            self._line(self.status_line())

    # -- drawing -------------------------------------------------------------------

    async def tick(self) -> None:
        """Redraw the status line on a terminal; runs until cancelled."""
        if not self.tty:
            return
        while True:
            self.err.write("\r\x1b[K" + self.status_line())
            self.err.flush()
            await anyio.sleep(0.5)

    def status_line(self) -> str:
        done = self.skipped + self.ended
        s = self.status
        parts = [f"[{done}/{self.total}]", f"{len(self.running)} running"]
        parts += [f"{s['passed']} passed", f"{s['failed']} failed"]
        if s["completed"]:
            parts.append(f"{s['completed']} completed")
        parts.append(f"{s['error']} error{'s' if s['error'] != 1 else ''}")
        live = sum(self.running.values(), Usage())
        tin = self.tokens.input + live.input_tokens
        tcached = self.tokens.cached + live.cached_input_tokens
        tout = self.tokens.output + live.output_tokens
        parts.append(f"{tin:,} in ({tcached:,} cached) / {tout:,} out")
        elapsed = time.monotonic() - self.started
        parts.append(_clock(elapsed))
        left = self.total - done
        if self.ended and left and self.first_start is not None:
            working = time.monotonic() - self.first_start
            parts.append(f"ETA {_clock(working / self.ended * left)}")
        return " · ".join(parts)

    def _line(self, text: str) -> None:
        if self.tty:
            self.err.write("\r\x1b[K")
        self.err.write(text + "\n")
        self.err.flush()


_MARK = {"passed": "✓", "completed": "✓", "failed": "✗", "error": "!"}


def _describe(r: TaskResult) -> str:
    what = r.status if r.cause is None else f"{r.status} ({r.cause})"
    if r.grade is not None and not r.grade.passed:
        how = "timed out" if r.grade.timed_out else f"exited {r.grade.exit_code}"
        what = f"{r.status} (check {how})"
    turns = f"{r.turns} turn{'s' if r.turns != 1 else ''}"
    line = f"{_MARK.get(r.status, '?')} {r.id}  {what}  {turns}, {r.duration_s:.1f} s"
    why = r.error or (
        r.grade.output.strip().rpartition("\n")[2] if r.grade and not r.grade.passed else ""
    )
    if why:
        line += f": {why[:200]}"
    return line


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
