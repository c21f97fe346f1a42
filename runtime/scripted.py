"""`ScriptedModel`: model turns replayed from a file, for offline runs and tests.

The file is JSON Lines, one turn a line: either a JSON array of output items or
an object `{"output": [...], "usage": {...}}`. Blank lines and lines starting
with `#` are skipped. A line that is not such a turn (not JSON, nested too
deeply to read, not a list of items) is a `ScriptError` naming the line.

A resumed run continues the script after the last scripted turn found in the
history it sends (see `ScriptedModel`), so calls that finished never run again.
Requests for a summary (`ModelRequest.purpose == "summary"`, local compaction)
get a generated note and use no turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from itemloop.tools.items import Item

from .defaults import default_model
from .model import (
    CompactionUnsupported,
    Model,
    ModelError,
    ModelRequest,
    ModelResponse,
    OnText,
)

ScriptedTurn = list[Item] | dict[str, Any]
TurnSource = ScriptedTurn | Callable[[ModelRequest], ScriptedTurn]

_RESPONSE_ID = re.compile(r"scripted_(\d+)")


class ScriptError(ValueError):
    """The script file is malformed; the message names the line."""


def load_script(path: Path) -> list[ScriptedTurn]:
    turns: list[ScriptedTurn] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScriptError(f"cannot read script {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ScriptError(f"cannot read script {path}: not UTF-8 text ({e.reason})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            turn = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScriptError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
        except RecursionError:
            raise ScriptError(f"{path}:{lineno}: JSON nested too deeply to read") from None
        items = turn.get("output") if isinstance(turn, dict) else turn
        if isinstance(items, list) and all(
            isinstance(i, dict) and isinstance(i.get("type"), str) for i in items
        ):
            turns.append(turn)
        else:
            raise ScriptError(
                f"{path}:{lineno}: a turn is a JSON array of output items (objects with a "
                '"type") or an object {"output": [...], "usage": {...}}'
            )
    return turns


class ScriptedModel:
    """Replays turns in order; each may also be a function of the request.

    Each turn is used once. The next turn is the one after the latest scripted
    turn recorded in the request (or after the last one this model answered, if
    that is later), so a new model given a resumed session's history continues
    where the session stopped. A turn is recognised in the history by its items,
    compared as JSON, which assumes:

    - the runtime adds each response's items to the history together, and items
      of two different turns never stand side by side (outputs or user messages
      lie between), so a run of scripted items is one turn; equal turns are told
      apart by counting them in order, the earliest turn that fits first;
    - an item comes back unchanged: a call the runtime gave the `call_id` it
      lacked is recognised only by the other items of its turn;
    - a turn made by a function is known only to the model that made it;
    - in `previous_response_id` mode the history stays on the "server": the id
      (`scripted_<turn index>`) says which turn came last.

    A request with `purpose="summary"` is answered with a generated summary and
    uses no turn. Every request, of either kind, is kept in `requests`.
    """

    def __init__(self, turns: Sequence[TurnSource], *, name: str = "scripted") -> None:
        self.name = name
        self.turns = list(turns)
        self.requests: list[ModelRequest] = []
        self._next = 0
        # What each turn handed out, as JSON, to find it in later histories.
        self._turn_items: list[set[str]] = [
            _fingerprints(_output_of(t)) if not callable(t) else set() for t in self.turns
        ]

    @classmethod
    def from_file(cls, path: Path | str) -> ScriptedModel:
        return cls(load_script(Path(path)), name=f"script:{Path(path).name}")

    async def respond(
        self, request: ModelRequest, *, on_text: OnText | None = None
    ) -> ModelResponse:
        self.requests.append(request)
        if request.purpose == "summary":
            return _summary(request)
        # Only a model that has handed out no turn yet (a resumed run, a new process)
        # looks for its place in the history: after that its own count is the place,
        # and scanning the whole history every turn would make a long run quadratic.
        n = self._next if self._next else self._after_history(request)
        if n >= len(self.turns):
            raise ModelError(
                f"the scripted model has no turn {n + 1}: the script holds {len(self.turns)} "
                "turns and all of them were used"
            )
        self._next = n + 1
        source = self.turns[n]
        turn = source(request) if callable(source) else source
        output, usage = _output_of(turn), turn.get("usage") if isinstance(turn, dict) else None
        if not isinstance(output, list) or not all(isinstance(i, dict) for i in output):
            raise ModelError(
                f"scripted turn {n + 1} is not a list of output items: {output!r:.200}"
            )
        try:
            # A copy: the runtime may change the items it is given (call ids).
            output = json.loads(json.dumps(output))
        except (TypeError, ValueError, RecursionError) as e:
            raise ModelError(f"scripted turn {n + 1} is not JSON: {e}") from None
        if callable(source):
            self._turn_items[n] = _fingerprints(output)
        for item in output:
            if on_text is not None and item.get("type") == "message":
                for part in item.get("content", ()):
                    if part.get("type") == "output_text":
                        await on_text(str(part.get("text", "")))
        return ModelResponse(output=output, id=f"scripted_{n}", usage=usage)

    def _after_history(self, request: ModelRequest) -> int:
        """The turn after the latest scripted turn recorded in `request`; 0 if none."""
        where: dict[str, list[int]] = {}
        for n, prints in enumerate(self._turn_items):
            for fp in prints:
                where.setdefault(fp, []).append(n)
        last = -1
        run: list[list[int]] = []  # for each item of a run of scripted items: its turns

        def close_run() -> None:
            nonlocal last
            if run:
                later = [{n for n in turns if n > last} for turns in run]
                fits = set.intersection(*later) or set.union(*later)
                if fits:
                    last = min(fits)
                run.clear()

        for item in request.input:
            turns = where.get(_fingerprint(item) or "")
            if turns:
                run.append(turns)
            else:
                close_run()
        close_run()
        match = _RESPONSE_ID.fullmatch(request.previous_response_id or "")
        if match:
            last = max(last, int(match.group(1)))
        return last + 1

    async def compact(self, request: ModelRequest) -> list[Item]:
        raise CompactionUnsupported("the scripted model has no /responses/compact")

    async def aclose(self) -> None:
        pass


def _output_of(turn: ScriptedTurn) -> Any:
    return turn.get("output") if isinstance(turn, dict) else turn


def _fingerprint(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    try:
        return json.dumps(item, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


def _fingerprints(output: Any) -> set[str]:
    if not isinstance(output, list):
        return set()
    return {fp for item in output if (fp := _fingerprint(item)) is not None}


def _summary(request: ModelRequest) -> ModelResponse:
    """A stand-in for a summary: the scripted model does not read the transcript."""
    chars = sum(len(json.dumps(i.get("content", ""))) for i in request.input)
    text = (
        "The scripted model replays a script and writes no real summary: "
        f"about {chars:,} characters of earlier conversation were summarised here."
    )
    item = {
        "type": "message",
        "id": "msg_scripted_summary",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return ModelResponse(output=[item])


def choose_model(script: Sequence[TurnSource], *, model: str | None = None) -> Model:
    """The real API when `OPENAI_API_KEY` is set, else a `ScriptedModel` of `script`.

    What the examples use: offline by default, real with a key.
    """
    import os

    if os.environ.get("OPENAI_API_KEY"):
        from .openai_model import OpenAIModel

        return OpenAIModel(
            model or default_model(),
            base_url=os.environ.get("OPENAI_BASE_URL"),
        )
    return ScriptedModel(script)
