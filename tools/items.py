"""The item vocabulary: which items are calls, what answers each, how they pair.

Every module that needs to know that a `shell_call` is answered by a
`shell_call_output` carrying its `call_id`, or that an `mcp_approval_request`
is answered by an `mcp_approval_response` naming its `id`, asks this module.
Adding a call type the runtime executes means one `CallKind` entry in `KINDS`
and an executor; nothing else changes.

Two kinds of call items reach the runtime:

- **executed** calls (`KINDS`): the runtime must answer each with exactly one
  output item (DESIGN.md, contract 2);
- **hosted** calls (web search, code interpreter, server-executed tool
  search, hosted MCP calls, and any `*_call` type newer than this code): the
  server ran them; they are kept in the history as sent. Those that carry a
  `call_id` still pair with an output for compaction (`pair_key`).

Items travel as the JSON dicts the server sent (`Item`), so they round-trip
byte for byte whatever their type.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

Item = dict[str, Any]
"""One Responses API item as JSON."""


def _text_error(output_type: str) -> Callable[[str, str], Item]:
    return lambda cid, message: {"type": output_type, "call_id": cid, "output": message}


def _shell_error(cid: str, message: str) -> Item:
    chunk = {"stdout": "", "stderr": message, "outcome": {"type": "exit", "exit_code": 1}}
    return {"type": "shell_call_output", "call_id": cid, "output": [chunk]}


def _local_shell_error(cid: str, message: str) -> Item:
    payload = {"stdout": "", "stderr": message, "exit_code": 1}
    return {"type": "local_shell_call_output", "id": cid, "output": json.dumps(payload)}


def _apply_patch_error(cid: str, message: str) -> Item:
    return {
        "type": "apply_patch_call_output",
        "call_id": cid,
        "status": "failed",
        "output": message,
    }


def _computer_error(cid: str, message: str) -> Item:
    from .screenshot import error_image  # Pillow, when installed, is a large import

    screenshot = {"type": "computer_screenshot", "image_url": error_image(message)}
    return {"type": "computer_call_output", "call_id": cid, "output": screenshot}


def _tool_search_error(cid: str, message: str) -> Item:
    # A tool_search_output has no field for text: the error reaches the model as
    # an empty, incomplete answer (the executor adds a message when it can).
    return {
        "type": "tool_search_output",
        "call_id": cid,
        "execution": "client",
        "status": "incomplete",
        "tools": [],
    }


def _approval_error(cid: str, message: str) -> Item:
    return {
        "type": "mcp_approval_response",
        "approval_request_id": cid,
        "approve": False,
        "reason": message,
    }


@dataclass(frozen=True, slots=True)
class CallKind:
    """One call item type the runtime executes, and its answer."""

    call_type: str
    output_type: str
    tool_types: tuple[str, ...]
    """The tool definition types that let the model make this call."""
    error: Callable[[str, str], Item]
    """(call id, message) -> the output that answers the call with an error."""
    id_field: str = "call_id"
    """The call's field that the output must name."""
    answer_field: str = "call_id"
    """The output's field naming the call."""
    named: bool = False
    """Calls name one tool among many (`name`): function and custom tools."""
    applies: Callable[[Item], bool] | None = None
    """For a type the server runs too: which items of it are ours to answer."""


KINDS: Final[dict[str, CallKind]] = {
    k.call_type: k
    for k in (
        CallKind(
            "function_call",
            "function_call_output",
            ("function",),
            _text_error("function_call_output"),
            named=True,
        ),
        CallKind(
            "custom_tool_call",
            "custom_tool_call_output",
            ("custom",),
            _text_error("custom_tool_call_output"),
            named=True,
        ),
        CallKind("shell_call", "shell_call_output", ("shell",), _shell_error),
        CallKind(
            "local_shell_call",
            "local_shell_call_output",
            ("local_shell",),
            _local_shell_error,
            answer_field="id",
        ),
        CallKind(
            "apply_patch_call", "apply_patch_call_output", ("apply_patch",), _apply_patch_error
        ),
        CallKind(
            "computer_call",
            "computer_call_output",
            ("computer", "computer_use_preview"),
            _computer_error,
        ),
        CallKind(
            "tool_search_call",
            "tool_search_output",
            ("tool_search",),
            _tool_search_error,
            applies=lambda item: item.get("execution") == "client",
        ),
        CallKind(
            "mcp_approval_request",
            "mcp_approval_response",
            ("mcp",),
            _approval_error,
            id_field="id",
            answer_field="approval_request_id",
        ),
    )
}
"""Call item types the runtime executes, by type."""

HOSTED_CALLS: Final = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
        "mcp_list_tools",
        "tool_search_call",
    }
)
"""Call item types the server runs itself: kept in the history, never executed here
(`tool_search_call` only with `execution: "server"`; a client one is ours)."""

_BY_OUTPUT: Final = {k.output_type: k for k in KINDS.values()}
_BY_TOOL_TYPE: Final = {t: k for k in KINDS.values() for t in k.tool_types}


def kind_of(item: Item) -> CallKind | None:
    """The kind of an executed call item; None for anything else."""
    kind = KINDS.get(item.get("type"))  # type: ignore[arg-type]
    if kind is not None and kind.applies is not None and not kind.applies(item):
        return None
    return kind


def is_call(item: Item) -> bool:
    """True for a call the runtime must answer (as opposed to hosted calls and other items)."""
    return kind_of(item) is not None


def is_unknown_call(item: Item) -> bool:
    """True for a `*_call` item that is neither executed here nor a known hosted call:
    a newer or misspelled type, which the runtime keeps but cannot answer."""
    t = item.get("type")
    return (
        isinstance(t, str)
        and t.endswith("_call")
        and kind_of(item) is None
        and t not in HOSTED_CALLS
    )


def is_output(item: Item) -> bool:
    """True for the answer to an executed call."""
    return item.get("type") in _BY_OUTPUT


def kind_for_tool(tool_type: str) -> CallKind | None:
    """The call kind a tool definition of `tool_type` leads to (`"function"` -> function_call)."""
    return _BY_TOOL_TYPE.get(tool_type)


def call_id_of(call: Item) -> str:
    """The id an output must carry to answer `call` ('' when it has none)."""
    kind = kind_of(call)
    return str(call.get(kind.id_field if kind else "call_id", ""))


def answered_id(output: Item) -> str:
    """The id of the call `output` answers ('' when it names none)."""
    kind = _BY_OUTPUT.get(output.get("type"))  # type: ignore[arg-type]
    return str(output.get(kind.answer_field if kind else "call_id", ""))


def call_name(call: Item) -> str:
    """A short human name for progress lines: the tool's name, or the call type's."""
    kind = kind_of(call)
    t = str(call.get("type", "?"))
    if kind is not None and (kind.named or kind.call_type == "mcp_approval_request"):
        return str(call.get("name", t))
    return t.removesuffix("_call")


def error_output(call: Item, message: str) -> Item:
    """The output item that answers `call` with an error `message`."""
    kind = kind_of(call)
    if kind is None:
        raise ValueError(f"no output type for item type {call.get('type')!r}")
    return kind.error(call_id_of(call), message)


# -- pairing ----------------------------------------------------------------------
#
# Approval requests are answered by their `id`, which lives in another space
# than `call_id`s: their keys carry a prefix so the two can never be confused.


def pair_key(item: Item) -> tuple[str, str] | None:
    """("call" | "output", key) when `item` is one half of a call/output pair.

    Besides the executed kinds, any `*_call` item with a `call_id` pairs with
    the `*_output` that names it (hosted and newer call types included).
    """
    t = item.get("type")
    if not isinstance(t, str):
        return None
    if t == "mcp_approval_request":
        return "call", f"mcp_approval:{item.get('id', '')}"
    if t == "mcp_approval_response":
        return "output", f"mcp_approval:{item.get('approval_request_id', '')}"
    if t in _BY_OUTPUT:
        return "output", answered_id(item)
    if "call_id" in item:
        return ("output" if t.endswith("_output") else "call"), str(item["call_id"])
    return None


def unanswered_calls(items: Sequence[Item]) -> list[Item]:
    """Executed calls in `items` without an output, in order."""
    answered = {answered_id(i) for i in items if is_output(i)}
    return [i for i in items if is_call(i) and call_id_of(i) not in answered]


def ensure_call_ids(items: Sequence[Item]) -> list[str]:
    """Give every executed call without a usable id a unique one, in place.

    An output must name its call; a call without an id (or with a non-string
    one) could never be matched, and the API would reject the pair. Returns a
    note per call that was given one.
    """
    notes = []
    for item in items:
        kind = kind_of(item)
        if kind is None:
            continue
        value = item.get(kind.id_field)
        if not isinstance(value, str) or not value:
            # Unique across processes too: a resumed session must not reuse one.
            new = f"call_itemloop_{uuid.uuid4().hex[:24]}"
            item[kind.id_field] = new
            notes.append(
                f"a {kind.call_type} item had no usable {kind.id_field} ({value!r}); "
                f"it was given {new!r}"
            )
    return notes


# -- items the runtime writes ------------------------------------------------------


def user_message(text: str) -> Item:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def output_text(items: Sequence[Item]) -> str:
    """The assistant text among `items`."""
    parts = []
    for item in items:
        if item.get("type") == "message" and item.get("role") == "assistant":
            for c in item.get("content", ()):
                if c.get("type") == "output_text":
                    parts.append(str(c.get("text", "")))
    return "\n".join(parts)
