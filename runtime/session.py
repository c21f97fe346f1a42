"""The session store: an append-only JSON Lines journal of the history.

Records: `{"item": ...}` appends an item; `{"started": call_id}` marks a call
as running before it runs; `{"finished": output}` saves a call's output the
moment it exists (the turn's outputs join the history in call order once all
are done, so a crash in between must not lose the ones that finished);
`{"replace": [...]}` replaces the whole history (compaction);
`{"response_id": ...}` remembers the last response for the
`previous_response_id` mode; `{"tools_loaded": [...]}` the deferred tools a
tool search loaded; `{"approval": {...}}` records a call waiting for
a decision and `{"decision": {...}}` the decision (the first per call stands); `{"config": {...}}` records the run's settings
(a `RunConfig` as JSON, secrets left out: see `config.recordable`), written
with the prompt before anything starts, so `--resume` can rebuild the same run
even after a stop during start-up. Everything is flushed and fsynced before the next
model request (DESIGN.md, contract 4), and a resumed session knows which calls
finished, which started but never finished, and which never started.

Loading never loses bytes: a file that is not a journal (a line that is not a
record, or no complete record before a last line without its line end) is
refused and left as it is. A torn last line after valid records, what a crash
mid-write leaves, is cut off so the next record starts on a line of its own;
its bytes are first saved beside the journal as `FILE.torn-<UTC time>`, and a
warning on the `itemloop.session` logger names that file. One process writes a
journal at a time; nothing here locks it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from itemloop.tools.items import Item, answered_id, call_id_of, unanswered_calls

log = logging.getLogger("itemloop.session")


class SessionError(Exception):
    """The file cannot be read as a session journal; it was left as it is."""


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
    config: dict[str, Any] | None = None
    """The run's settings as last recorded (None: none recorded)."""
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Approval requests by call id (`approvals.ApprovalRequest` as JSON)."""
    tools_loaded: set[tuple[str | None, str]] = field(default_factory=set)
    """Deferred tools a tool search loaded: (namespace or None, name)."""
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Decisions on them by call id (`approvals.Approval` as JSON); the first one stands."""

    def waiting(self) -> list[dict[str, Any]]:
        """Requests of calls still unanswered that have no decision yet."""
        open_ids = {call_id_of(c) for c in unanswered_calls(self.items)}
        return [
            r for cid, r in self.requests.items() if cid in open_ids and cid not in self.decisions
        ]


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
    elif isinstance(rec.get("approval"), dict):
        state.requests[str(rec["approval"].get("call_id", ""))] = rec["approval"]
    elif isinstance(rec.get("decision"), dict):
        state.decisions.setdefault(str(rec["decision"].get("call_id", "")), rec["decision"])
    elif isinstance(rec.get("tools_loaded"), list):
        state.tools_loaded.update(
            (k[0] if isinstance(k[0], str) else None, str(k[1]))
            for k in rec["tools_loaded"]
            if isinstance(k, list) and len(k) == 2
        )
    elif isinstance(rec.get("config"), dict):
        state.config = rec["config"]
    elif "response_id" in rec:
        state.response_id = rec["response_id"]
        state.sent = int(rec.get("sent", len(state.items)))
    else:
        return False
    return True


def _torn_path(path: Path) -> Path:
    """A new file beside `path` for a torn tail: `FILE.torn-<UTC time>[-n]`."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    candidate = path.with_name(f"{path.name}.torn-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.torn-{stamp}-{n}")
    return candidate


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
        records = 0
        for lineno, line in enumerate(data.splitlines(keepends=True), 1):
            if not line.endswith(b"\n"):
                break  # a torn last line from a crash: everything before it stands
            good += len(line)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep
                rec = None
            if not _apply(state, rec):
                raise SessionError(
                    f"{self.path}:{lineno}: not an itemloop session record: {line[:120]!r}"
                    " (the file was left as it is)"
                )
            records += 1
        if good < len(data):
            if not records:
                raise SessionError(
                    f"{self.path} is not an itemloop session: no complete record before "
                    f"{len(data) - good} bytes without a line end (the file was left as it is)"
                )
            self._cut_torn_tail(data, good)
        return state

    def _cut_torn_tail(self, data: bytes, good: int) -> None:
        """Save the bytes after `good` beside the journal, then cut them off.

        Cut, or the next record would be glued onto them; saved first, so that a
        crash in between loses nothing.
        """
        kept = _torn_path(self.path)
        with kept.open("xb") as f:
            f.write(data[good:])
            f.flush()
            os.fsync(f.fileno())
        with self.path.open("r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
        log.warning(
            "warning: the last line of session %s was torn (%d bytes, from a crash "
            "mid-write); it was cut off and kept in %s",
            self.path,
            len(data) - good,
            kept,
        )

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

    def record_config(self, config: dict[str, Any]) -> None:
        """The run's settings, as plain data; on disk at once (they precede start-up)."""
        self._write({"config": config})
        self.sync()

    def record_tools_loaded(self, keys: Iterable[tuple[str | None, str]]) -> None:
        """Deferred tools a search made callable, so a resumed run offers them again."""
        self._write({"tools_loaded": [list(k) for k in keys]})

    def record_request(self, request: dict[str, Any]) -> None:
        """A call waits for a decision (`approvals.ApprovalRequest` as JSON)."""
        self._write({"approval": request})
        self.sync()

    def record_decision(self, decision: dict[str, Any]) -> None:
        """A decision on a waiting call (`approvals.Approval` as JSON, with its `call_id`)."""
        self._write({"decision": decision})
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
