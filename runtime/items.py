"""Model output items: parsed into the `openai` package's classes, kept as sent.

The history keeps each item as the JSON dict the server sent, so it goes back
byte for byte whatever its type. Alongside, each item is parsed into
`openai.types.responses.ResponseOutputItem` (for events and library users);
an item this code does not know stays unparsed, never dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import pydantic

from itemloop.tools.base import OUTPUT_TYPES

if TYPE_CHECKING:
    from openai.types.responses import ResponseOutputItem

Item = dict[str, Any]


@cache
def _adapter() -> pydantic.TypeAdapter[ResponseOutputItem]:
    # Built on first use: openai's item types are a large import.
    from openai.types.responses import ResponseOutputItem

    return pydantic.TypeAdapter(ResponseOutputItem)


def parse_output_item(item: Item) -> ResponseOutputItem | None:
    """The item as an `openai` class, or None for unknown or malformed items."""
    try:
        return _adapter().validate_python(item)
    except pydantic.ValidationError:
        return None


def ensure_call_ids(items: Sequence[Item]) -> list[str]:
    """Give every call item without a usable `call_id` a unique one, in place.

    An output must name its call; a call without an id (or with a non-string
    one) could never be matched, and the API would reject the pair. Returns a
    note per call that was given one.
    """
    notes = []
    for item in items:
        t = item.get("type")
        if t not in OUTPUT_TYPES:
            continue
        key = "id" if t == "mcp_approval_request" else "call_id"
        value = item.get(key)
        if not isinstance(value, str) or not value:
            # Unique across processes too: a resumed session must not reuse one.
            new = f"call_itemloop_{uuid.uuid4().hex[:24]}"
            item[key] = new
            notes.append(f"a {t} item had no usable {key} ({value!r}); it was given {new!r}")
    return notes
