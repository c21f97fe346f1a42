"""A batch task's own journal: what of the task happened, beside its session.

The session (`session.py`) journals the agent's run: its settings, prompt,
items and calls. This file (`<task dir>/task.jsonl`) journals the rest of the
task, so that a task stopped anywhere (Ctrl-C, a killed process, a Ray
worker that died) is continued, not started over:

- `{"attempt": n}`: an attempt began (a first run, or a resume);
- `{"workspace": "ready"}`: the task's workspace is copied (or created);
- `{"step": "setup"|"check", "index": i, "exit_code": ..., "timed_out": ...,
  "tail": ...}`: a setup or check command finished;
- `{"usage": {...}, "turn": bool}`: a model response's tokens (a turn, or a
  compaction summary);
- `{"agent": {"reason": ..., "final_text": ..., "error": ...}}`: the agent's run ended.

Every record carries `t`, the wall time it was written, and is on disk
(flushed, fsynced) before the task goes on, except usage records: written
at once but fsynced with the next record (a crash of the machine may lose
the count of a response or two, not the task's progress; a killed process
loses nothing written). One fsync less a turn, where the session already
takes three. A task's duration is the sum over
its attempts of the time from the attempt's first record to its last.

What it does not cover: one writer at a time (the batch gives each task to one
worker at a time); a command that started but did not finish is not recorded,
so it is run again on resume (see `batch_task.py`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from .events import Usage

Phase = Literal["setup", "check"]


class TaskJournalError(Exception):
    """The file is not a task journal; it was left as it is."""


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How one setup or check command ended."""

    exit_code: int | None
    timed_out: bool
    tail: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@dataclass
class TaskState:
    attempts: list[list[float]] = field(default_factory=list)
    """[first, last] record time of each attempt."""
    workspace_ready: bool = False
    steps: dict[tuple[str, int], StepOutcome] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    turns: int = 0
    agent: dict[str, Any] | None = None
    """How the agent's run ended: reason, final_text, error."""

    def duration_s(self) -> float:
        return sum(last - first for first, last in self.attempts)


_USAGE_FIELDS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _apply(state: TaskState, rec: dict[str, Any]) -> None:
    t = rec.get("t")
    if isinstance(t, int | float):
        if "attempt" in rec or not state.attempts:
            state.attempts.append([float(t), float(t)])
        else:
            state.attempts[-1][1] = float(t)
    if rec.get("workspace") == "ready":
        state.workspace_ready = True
    elif rec.get("step") in ("setup", "check") and isinstance(rec.get("index"), int):
        code = rec.get("exit_code")
        state.steps[(rec["step"], rec["index"])] = StepOutcome(
            exit_code=code if isinstance(code, int) else None,
            timed_out=bool(rec.get("timed_out")),
            tail=str(rec.get("tail", "")),
        )
    elif isinstance(rec.get("usage"), dict):
        u = rec["usage"]
        state.usage += Usage(**{f: _count(u.get(f)) for f in _USAGE_FIELDS})
        state.turns += 1 if rec.get("turn") else 0
    elif isinstance(rec.get("agent"), dict):
        state.agent = rec["agent"]


class TaskJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = TaskState()
        self._f: IO[str] | None = None

    def load(self) -> TaskState:
        """Read the journal (a torn last line, from a crash mid-write, is cut off)."""
        self.state = TaskState()
        if not self.path.exists():
            return self.state
        data = self.path.read_bytes()
        good = 0
        for lineno, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):
                rec = None
            if not isinstance(rec, dict):
                raise TaskJournalError(
                    f"{self.path}:{lineno}: not a task journal record: {line[:120]!r} "
                    "(the file was left as it is)"
                )
            _apply(self.state, rec)
            good += len(line)
        if good < len(data):
            # Only our own bookkeeping is lost (a step or usage record being written):
            # the step runs again, the tokens of one response go uncounted.
            with self.path.open("r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return self.state

    def record(self, *, sync: bool = True, **rec: Any) -> None:
        """Append a record, on disk before this returns (`sync`; else written, and
        on disk with the next synced one); and apply it to `state`."""
        rec["t"] = time.time()
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("a", encoding="utf-8")
        self._f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._f.flush()
        if sync:
            os.fsync(self._f.fileno())
        _apply(self.state, rec)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
