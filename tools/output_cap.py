"""Caps on what a function, custom or MCP tool sends back to the model.

Shell executors cap their own output while it streams (sandbox/capture.py);
a Python function or an MCP server hands back its whole result at once, and
without a cap a 50 MB answer would go to the model as it is (tokens, cost,
and a request the API refuses). The dispatcher passes every output of those
kinds through `cap_tool_output` before it is journaled or sent.

What is cut and what is not:

- plain text over `limit` characters keeps its head and tail around a marker
  that says how much was cut, as shell output does;
- text that is one JSON value is never cut in the middle (a half object is
  worse than none): it is replaced by a note saying how large it was and
  what to ask for instead;
- an image or file part over `binary_limit` bytes is replaced by a text note
  saying so; parts are never cut inside;
- the text parts of a list share one `limit`, in order.

Measured in characters of the JSON the model receives, not tokens: cheap,
and a bound on memory and request size alike.
"""

from __future__ import annotations

import json
from typing import Any, Final

from itemloop.sandbox.capture import cap_text

from .items import Item

DEFAULT_BINARY_LIMIT: Final = 20 * 1024 * 1024
"""Largest image or file part (its data URL or base64 data) sent to the model, in bytes."""

_CAPPED_TYPES: Final = frozenset({"function_call_output", "custom_tool_call_output"})


def cap_tool_output(output: Item, limit: int, binary_limit: int = DEFAULT_BINARY_LIMIT) -> Item:
    """`output` with its `output` field within the limits (the same dict when it already is)."""
    if output.get("type") not in _CAPPED_TYPES:
        return output
    value = output.get("output")
    if isinstance(value, str):
        capped: Any = _cap_text(value, limit)
    elif isinstance(value, list):
        capped = _cap_parts(value, limit, binary_limit)
    else:
        return output
    return output if capped is value else {**output, "output": capped}


def _cap_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if _is_json(text):
        return (
            f"[itemloop: the tool returned a JSON value of {len(text):,} characters, over "
            f"the limit of {limit:,}; it was not sent, because a cut JSON value cannot be "
            "read. Ask for less: a filter, a page, or fewer fields.]"
        )
    return cap_text(text, limit)


def _is_json(text: str) -> bool:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _cap_parts(parts: list[Any], limit: int, binary_limit: int) -> list[Any]:
    out: list[Any] = []
    changed = False
    left = limit
    for part in parts:
        new = part
        if isinstance(part, dict):
            kind = part.get("type")
            if kind == "input_text" and isinstance(part.get("text"), str):
                text = _cap_text(part["text"], max(0, left))
                left -= len(text)
                if text is not part["text"]:
                    new = {**part, "text": text}
            elif kind in ("input_image", "input_file"):
                size = _binary_size(part)
                if size > binary_limit:
                    what = "an image" if kind == "input_image" else "a file"
                    new = {
                        "type": "input_text",
                        "text": (
                            f"[itemloop: the tool returned {what} of {size:,} bytes, over the "
                            f"limit of {binary_limit:,} bytes; it was not sent.]"
                        ),
                    }
        changed |= new is not part
        out.append(new)
    return out if changed else parts


def _binary_size(part: dict[str, Any]) -> int:
    return sum(len(v) for k in ("image_url", "file_data") if isinstance(v := part.get(k), str))
