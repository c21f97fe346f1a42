"""Readable progress for the command line: one line per call with its outcome,
a spinner while the model thinks (on a terminal), compaction and warnings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

import anyio

from .events import (
    ApprovalDecided,
    ApprovalRequested,
    CallFinished,
    CallStarted,
    Compacted,
    Event,
    ItemReceived,
    Notice,
    RunFinished,
    TextDelta,
    TurnStarted,
    Usage,
    event_to_json,
)

_SPIN = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class JsonPrinter:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def __call__(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            return  # the whole text arrives with the message item
        self.out.write(json.dumps(event_to_json(event), ensure_ascii=False) + "\n")
        self.out.flush()


class ProgressPrinter:
    """Progress on `err`; the model's final answer on `out`."""

    def __init__(
        self,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        *,
        session: Path | None = None,
    ) -> None:
        self.out = out
        self.err = err
        self.session = session
        self.tty = err.isatty()
        self.thinking = False
        self._frame = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, TurnStarted):
            self.thinking = True
        elif isinstance(event, TextDelta | ItemReceived):
            self._stop_spinner()
        elif isinstance(event, CallStarted):
            self._stop_spinner()
        elif isinstance(event, CallFinished):
            mark = "✓" if event.ok else "✗"
            self._line(f"{mark} {event.name:<14} {event.summary}  ({_secs(event.duration_s)})")
        elif isinstance(event, Compacted):
            self._stop_spinner()
            self._line(
                f"⇊ compacted history ({event.strategy}): {event.tokens_before:,} → "
                f"{event.tokens_after:,} tokens, {event.items_before} → {event.items_after} items "
                f"({_secs(event.duration_s)})"
            )
            if event.warning:
                self._line(f"! {event.warning}")
        elif isinstance(event, ApprovalRequested):
            self._stop_spinner()
            self._line(f"? {event.request.name:<14} asks for approval ({event.request.asked_by})")
        elif isinstance(event, ApprovalDecided):
            verdict = "approved" if event.approve else "denied"
            reason = f": {event.reason}" if event.reason else ""
            self._line(f"  {verdict} by {event.by}{reason}")
        elif isinstance(event, Notice):
            self._line(f"! {event.message}")
        elif isinstance(event, RunFinished):
            self._stop_spinner()
            if event.final_text:
                self.out.write(event.final_text.rstrip("\n") + "\n")
                self.out.flush()
            if event.reason == "error":
                self._line(f"error: {event.error}")
            elif event.reason == "max_turns":
                self._line(
                    f"stopped after {event.turns} turns (--max-turns); the model was still calling tools"
                )
            elif event.reason == "cancelled":
                self._line("cancelled")
            elif event.reason == "needs_approval":
                self._paused(event)
            if event.usage != Usage():  # some response reported its usage
                turns = f"{event.turns} turn{'s' if event.turns != 1 else ''}"
                self._line(f"{turns} · tokens: {event.usage.describe()}")

    def _paused(self, event: RunFinished) -> None:
        self._line(f"paused: {len(event.pending)} call(s) wait for a decision")
        for request in event.pending:
            self._line(f"  {request.call_id}  {request.name}")
            for line in request.show.splitlines()[:20]:
                self._line(f"      {line}")
        where = str(self.session) if self.session is not None else "FILE"
        self._line(
            f"decide with: itemloop approve --session {where} CALL_ID... (or --all), "
            f"itemloop deny --session {where} CALL_ID... --reason TEXT; "
            f"then continue: itemloop run --session {where} --resume"
        )

    async def spin(self) -> None:
        """Animate the spinner while the model thinks; runs until cancelled."""
        if not self.tty:
            return
        while True:
            if self.thinking:
                self._frame = (self._frame + 1) % len(_SPIN)
                self.err.write(f"\r{_SPIN[self._frame]} thinking…")
                self.err.flush()
            await anyio.sleep(0.1)

    def _stop_spinner(self) -> None:
        if self.thinking and self.tty:
            self.err.write("\r\x1b[K")
        self.thinking = False

    def _line(self, text: str) -> None:
        if self.tty:
            self.err.write("\r\x1b[K")
        self.err.write(text + "\n")
        self.err.flush()


def _secs(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"
