"""The session store: an append-only JSON Lines journal of the history.

Records: `{"item": ...}` appends an item; `{"started": call_id}` marks a call
as running before it runs; `{"finished": output}` saves a call's output the
moment it exists (the turn's outputs join the history in call order once all
are done, so a crash in between must not lose the ones that finished);
`{"replace": [...]}` replaces the whole history (compaction);
`{"response_id": ...}` remembers the last response for the
`previous_response_id` mode. Everything is flushed and fsynced before the next
model request (DESIGN.md, contract 4), and a resumed session knows which calls
finished, which started but never finished, and which never started.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from itemloop.tools.items import Item, answered_id


class SessionError(Exception):
    pass


@dataclass
class SessionState:
    items: list[Item] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    response_id: str | None = None
    sent: int = 0
    """How many items of the history the server holds under `response_id`."""
    finished: dict[str, Item] = field(default_factory=dict)
    """Outputs saved when their call finished, by call id; those of calls still
    unanswered in `items` were cut off by a crash and belong back in the history."""


def _apply(state: SessionState, rec: Any) -> bool:
    """Replay one journal record onto `state`; False when it is not one."""
    if not isinstance(rec, dict):
        return False
    if isinstance(rec.get("item"), dict):
        state.items.append(rec["item"])
    elif isinstance(rec.get("started"), str):
        state.started.add(rec["started"])
    elif isinstance(rec.get("finished"), dict):
        state.finished[answered_id(rec["finished"])] = rec["finished"]
    elif isinstance(rec.get("replace"), list):
        state.items = [i for i in rec["replace"] if isinstance(i, dict)]
        # A compacted history is new to the server, whatever it held before.
        state.response_id, state.sent = None, 0
    elif "response_id" in rec:
        state.response_id = rec["response_id"]
        state.sent = int(rec.get("sent", len(state.items)))
    else:
        return False
    return True


class SessionStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._f: IO[str] | None = None

    def load(self) -> SessionState:
        state = SessionState()
        if not self.path.exists():
            return state
        data = self.path.read_bytes()
        good = 0  # offset just past the last complete record
        for lineno, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break  # a torn last line from a crash: everything before it stands
            good += len(line)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                rec = None
            if not _apply(state, rec):
                raise SessionError(
                    f"{self.path}:{lineno}: not an itemloop session record: {line[:120]!r}"
                )
        if good < len(data):
            # Cut the torn tail off, or the next record would be glued onto it.
            with self.path.open("r+b") as f:
                f.truncate(good)
        return state

    def _file(self) -> IO[str]:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("a", encoding="utf-8")
        return self._f

    def _write(self, rec: dict[str, Any]) -> None:
        self._file().write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")

    def append(self, items: Iterable[Item]) -> None:
        for item in items:
            self._write({"item": item})

    def mark_started(self, call_id: str) -> None:
        self._write({"started": call_id})
        self.sync()  # the mark must be on disk before the call can have effects

    def mark_finished(self, output: Item) -> None:
        self._write({"finished": output})
        self.sync()

    def replace(self, items: list[Item]) -> None:
        self._write({"replace": items})

    def set_response_id(self, response_id: str | None, sent: int) -> None:
        """The server holds the first `sent` items of the history under `response_id`."""
        self._write({"response_id": response_id, "sent": sent})

    def sync(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self.sync()
            self._f.close()
            self._f = None
