"""Small builders shared by the tests."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from openai.types.responses import ResponseInputItemParam

Item = dict[str, Any]

INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)


def assert_valid_input_item(item: dict[str, Any]) -> None:
    """Every item the runtime builds must be one the API accepts as input."""
    INPUT_ITEM.validate_python(item)


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
