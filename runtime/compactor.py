"""The seam between the loop and compaction (`compaction.py` implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from itemloop.tools.items import Item

from .events import Compacted, Notice
from .model import ModelRequest, ModelResponse


@dataclass(slots=True)
class CompactionResult:
    items: list[Item]
    """The new history; replaces the old one whole."""
    event: Compacted
    notices: tuple[Notice, ...] = ()


class Compactor(Protocol):
    def request_extra(self) -> dict[str, Any]:
        """Fields to add to every model request (`context_management` in server mode)."""
        ...

    def observe(self, history: Sequence[Item], response: ModelResponse) -> None:
        """Called after a response's output items were appended to `history`."""
        ...

    async def maybe_compact(
        self, history: Sequence[Item], request: ModelRequest
    ) -> CompactionResult | None:
        """Called before each model request with the request about to be sent
        (its `input` is the full history in stateless mode). Returns a result
        when it compacted, `None` when the history is fine as it is."""
        ...
