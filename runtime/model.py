"""The `Model` protocol: one request in, one response's output items out.

Items travel as plain JSON dicts: the model's output items exactly as the
server sent them (so hosted and unknown item types round-trip byte for byte),
and the runtime's own items built from the `openai` package's input-item
TypedDicts. Backends: `openai_model.OpenAIModel` (any Responses-compatible
server) and `scripted.ScriptedModel` (turns replayed from a file).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import pydantic

from itemloop.tools.items import Item

if TYPE_CHECKING:
    from openai.types.responses import ResponseOutputItem


class ModelError(Exception):
    """The model call failed for good (after retries); the message is for a person."""


class CompactionUnsupported(ModelError):
    """The server has no `/responses/compact` (404, 405, 501 or says so)."""


@dataclass(slots=True)
class ModelRequest:
    input: Sequence[Item]
    tools: Sequence[Item] = ()
    instructions: str | None = None
    previous_response_id: str | None = None
    # Extra top-level request fields, e.g. `context_management`.
    extra: dict[str, Any] = field(default_factory=dict)
    # Whether the server keeps the response (`store`); None: the model's own default.
    # A request with `previous_response_id` is always stored.
    store: bool | None = None
    # What the request is for: a model turn of the run, or a summary the runtime
    # asks for itself (local compaction). A scripted model answers the two apart.
    purpose: Literal["turn", "summary"] = "turn"


@dataclass(slots=True)
class ModelResponse:
    output: list[Item]
    id: str | None = None
    usage: dict[str, Any] | None = None
    # The whole response object as the server sent it, when there was one.
    raw: dict[str, Any] | None = None


OnText = Callable[[str], Awaitable[None]]
"""Called with each chunk of assistant text as it streams in."""


@runtime_checkable
class Model(Protocol):
    name: str

    async def respond(
        self, request: ModelRequest, *, on_text: OnText | None = None
    ) -> ModelResponse: ...

    async def compact(self, request: ModelRequest) -> list[Item]:
        """`POST /responses/compact`: the compacted replacement for the history.

        Raises `CompactionUnsupported` where the server does not offer it.
        """
        ...

    async def aclose(self) -> None: ...


@cache
def _output_item_adapter() -> pydantic.TypeAdapter[ResponseOutputItem]:
    # Built on first use: openai's item types are a large import.
    from openai.types.responses import ResponseOutputItem

    return pydantic.TypeAdapter(ResponseOutputItem)


def parse_output_item(item: Item) -> ResponseOutputItem | None:
    """A model output item as an `openai` class, or None for unknown or malformed items.

    The history keeps the item as the JSON the server sent; this parsed twin is
    for events and library users.
    """
    try:
        return _output_item_adapter().validate_python(item)
    except pydantic.ValidationError:
        return None
