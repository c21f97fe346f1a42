"""Small builders shared by the tests."""

from __future__ import annotations

import json
from typing import Any

Item = dict[str, Any]


def fcall(call_id: str, name: str, args: Any) -> Item:
    arguments = args if isinstance(args, str) else json.dumps(args)
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def message(text: str, id: str = "msg_1") -> Item:
    return {
        "type": "message",
        "id": id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def outputs_by_call(items: list[Item]) -> dict[str, list[Item]]:
    found: dict[str, list[Item]] = {}
    for i in items:
        if i.get("type", "").endswith("_output"):
            key = i.get("call_id") or i.get("id")
            found.setdefault(str(key), []).append(i)
    return found
