"""`ScriptedModel`: model turns replayed from a file, for offline runs and tests.

The file is JSON Lines, one turn a line: either a JSON array of output items or
an object `{"output": [...], "usage": {...}}`. Blank lines and lines starting
with `#` are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from itemloop.tools.items import Item

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


class ScriptError(ValueError):
    """The script file is malformed; the message names the line."""


def load_script(path: Path) -> list[ScriptedTurn]:
    turns: list[ScriptedTurn] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScriptError(f"cannot read script {path}: {e.strerror or e}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            turn = json.loads(line)
        except json.JSONDecodeError as e:
            raise ScriptError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
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
    """Replays turns in order; each may also be a function of the request."""

    def __init__(self, turns: Sequence[TurnSource], *, name: str = "scripted") -> None:
        self.name = name
        self.turns = list(turns)
        self.requests: list[ModelRequest] = []
        self._next = 0

    @classmethod
    def from_file(cls, path: Path | str) -> ScriptedModel:
        return cls(load_script(Path(path)), name=f"script:{Path(path).name}")

    async def respond(
        self, request: ModelRequest, *, on_text: OnText | None = None
    ) -> ModelResponse:
        self.requests.append(request)
        n = self._next
        if n >= len(self.turns):
            raise ModelError(
                f"the scripted model has no turn {n + 1}: the script holds {len(self.turns)} "
                "turns and the last one still called tools"
            )
        self._next += 1
        source = self.turns[n]
        turn = source(request) if callable(source) else source
        if isinstance(turn, dict):
            output, usage = turn.get("output"), turn.get("usage")
        else:
            output, usage = turn, None
        if not isinstance(output, list) or not all(isinstance(i, dict) for i in output):
            raise ModelError(
                f"scripted turn {n + 1} is not a list of output items: {output!r:.200}"
            )
        output = list(output)
        for item in output:
            if on_text is not None and item.get("type") == "message":
                for part in item.get("content", ()):
                    if part.get("type") == "output_text":
                        await on_text(str(part.get("text", "")))
        return ModelResponse(output=output, id=f"scripted_{n}", usage=usage)

    async def compact(self, request: ModelRequest) -> list[Item]:
        raise CompactionUnsupported("the scripted model has no /responses/compact")

    async def aclose(self) -> None:
        pass


def choose_model(script: Sequence[TurnSource], *, model: str | None = None) -> Model:
    """The real API when `OPENAI_API_KEY` is set, else a `ScriptedModel` of `script`.

    What the examples use: offline by default, real with a key.
    """
    import os

    if os.environ.get("OPENAI_API_KEY"):
        from .openai_model import OpenAIModel

        return OpenAIModel(
            model or os.environ.get("ITEMLOOP_MODEL", "gpt-5.5"),
            base_url=os.environ.get("OPENAI_BASE_URL"),
        )
    return ScriptedModel(script)
