"""Typed events the loop emits; the CLI renders them, `--json` prints them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from itemloop.tools.items import Item

from .approvals import ApprovalRequest

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
class ApprovalRequested:
    """A call waits for a decision (the gate said `ask`)."""

    request: ApprovalRequest
    kind: Literal["approval_requested"] = "approval_requested"


@dataclass(frozen=True, slots=True)
class ApprovalDecided:
    """A decision on a call that asked: by a person, a callback or `itemloop approve|deny`."""

    call_id: str
    approve: bool
    by: str
    reason: str | None = None
    kind: Literal["approval_decided"] = "approval_decided"


@dataclass(frozen=True, slots=True)
class Compacted:
    strategy: str
    tokens_before: int
    tokens_after: int
    items_before: int
    items_after: int
    duration_s: float
    warning: str | None = None
    kind: Literal["compacted"] = "compacted"


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the person should know that did not stop the run."""

    message: str
    kind: Literal["notice"] = "notice"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one response, or summed over a run."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def of(cls, usage: Mapping[str, Any] | None) -> Usage:
        """From a response's `usage` object (missing or malformed fields count 0)."""
        if not isinstance(usage, Mapping):
            return cls()
        details_in = usage.get("input_tokens_details")
        details_out = usage.get("output_tokens_details")
        return cls(
            input_tokens=_count(usage.get("input_tokens")),
            cached_input_tokens=_count(
                details_in.get("cached_tokens") if isinstance(details_in, Mapping) else None
            ),
            output_tokens=_count(usage.get("output_tokens")),
            reasoning_tokens=_count(
                details_out.get("reasoning_tokens") if isinstance(details_out, Mapping) else None
            ),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def describe(self) -> str:
        """`1,234 in (200 cached), 56 out (12 reasoning)`."""
        return (
            f"{self.input_tokens:,} in ({self.cached_input_tokens:,} cached), "
            f"{self.output_tokens:,} out ({self.reasoning_tokens:,} reasoning)"
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class RunFinished:
    reason: Literal["completed", "max_turns", "cancelled", "error", "needs_approval"]
    turns: int
    final_text: str
    error: str | None = None
    usage: Usage = Usage()
    """Summed over every model response of this run."""
    turn_usage: tuple[Usage, ...] = ()
    """Per model response, in order."""
    pending: tuple[ApprovalRequest, ...] = ()
    """With `needs_approval`: the calls waiting for a decision."""
    kind: Literal["run_finished"] = "run_finished"


Event = (
    TurnStarted
    | TextDelta
    | ItemReceived
    | CallStarted
    | CallFinished
    | ApprovalRequested
    | ApprovalDecided
    | Compacted
    | Notice
    | RunFinished
)


def event_to_json(event: Event) -> dict[str, Any]:
    """The event as JSON-able data (the raw item stands for the parsed one)."""
    return {
        f.name: _plain(getattr(event, f.name))
        for f in dataclasses.fields(event)
        if f.name != "parsed"
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Usage | ApprovalRequest):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
