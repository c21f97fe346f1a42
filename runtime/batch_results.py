"""The results file of `itemloop batch`: one `TaskResult` a line, written as each task ends.

Each line is flushed and fsynced before the next task's result is taken, so
what the file holds is what ended. A torn last line (a crash mid-write) is
cut off when the file is opened again: that task has no result yet, and its
directory gives it again at once, running nothing. A line that is not a
result (edited by hand, another file) is refused with its line number, and
the file is left as it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from .batch import BatchError
from .batch_task import TaskResult


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every complete result line of `path` as data, in order (`BatchError` for a
    line that is not one)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BatchError(f"{path}: {e.strerror or e}") from None
    results: list[dict[str, Any]] = []
    for lineno, line in enumerate(data.splitlines(keepends=True), 1):
        if not line.endswith(b"\n") or not line.strip():
            continue  # a torn last line: not a result yet
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            rec = None
        if not (isinstance(rec, dict) and isinstance(rec.get("id"), str) and "status" in rec):
            raise BatchError(
                f"{path}:{lineno}: not a result line (fix or remove it): {line[:120]!r}"
            )
        results.append(rec)
    return results


class ResultsFile:
    """Appends results to `path`; `done` is the ids it held when opened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        self._f: IO[str] | None = None

    def __enter__(self) -> ResultsFile:
        return self if self._f is not None else self.open()

    def open(self) -> ResultsFile:
        """Read the ids already there, cut a torn last line, open for appending
        (`BatchError` when the file is not a results file)."""
        if self.path.exists():
            self.done = {r["id"] for r in read_results(self.path)}
            self._cut_torn_tail()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def append(self, result: TaskResult) -> None:
        assert self._f is not None, "use `with ResultsFile(path) as results:`"
        self._f.write(result.model_dump_json() + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(result.id)

    def _cut_torn_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                os.fsync(f.fileno())
