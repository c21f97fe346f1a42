"""Typed events the loop emits; the CLI renders them, `--json` prints them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .model import Item

if TYPE_CHECKING:  # importing openai's types costs ~0.5 s: only when parsing
    from openai.types.responses import ResponseOutputItem


@dataclass(frozen=True, slots=True)
class TurnStarted:
    turn: int
    kind: Literal["turn_started"] = "turn_started"


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    kind: Literal["text_delta"] = "text_delta"


@dataclass(frozen=True, slots=True)
class ItemReceived:
    item: Item
    """As the server sent it."""
    parsed: ResponseOutputItem | None = None
    """The same item as an `openai` class; None for types this code does not know."""
    kind: Literal["item_received"] = "item_received"


@dataclass(frozen=True, slots=True)
class CallStarted:
    call_id: str
    item_type: str
    name: str
    kind: Literal["call_started"] = "call_started"


@dataclass(frozen=True, slots=True)
class CallFinished:
    call_id: str
    item_type: str
    name: str
    ok: bool
    summary: str
    duration_s: float
    output: Item
    kind: Literal["call_finished"] = "call_finished"


@dataclass(frozen=True, slots=True)
class Compacted:
    strategy: str
    tokens_before: int
    tokens_after: int
    items_before: int
    items_after: int
    duration_s: float
    warning: str | None = None
    kind: Literal["compaction"] = "compaction"


@dataclass(frozen=True, slots=True)
class Warning:
    message: str
    kind: Literal["warning"] = "warning"


@dataclass(frozen=True, slots=True)
class RunFinished:
    reason: Literal["completed", "max_turns", "cancelled", "error"]
    turns: int
    final_text: str
    error: str | None = None
    usage: dict[str, int] | None = None
    kind: Literal["run_finished"] = "run_finished"


Event = (
    TurnStarted
    | TextDelta
    | ItemReceived
    | CallStarted
    | CallFinished
    | Compacted
    | Warning
    | RunFinished
)


def event_to_json(event: Event) -> dict[str, Any]:
    """The event as JSON-able data (the raw item stands for the parsed one)."""
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name != "parsed"}
