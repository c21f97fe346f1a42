"""The `tool_search` tool itemloop offers, and its answer to a `tool_search_call`.

    tool = tool_search_tool(index)                     # goes in the request's tools
    answer = answer_call(index, call)                  # call: a tool_search_call item
    answer.output                                      # the tool_search_output item
    answer.loaded                                      # (namespace, name) of each tool found

The tool (`{"type": "tool_search", "execution": "client", ...}`) takes the
arguments `{"query": str, "limit": int?}` (`PARAMETERS`); its description says
what can be found (each namespace with its size and description, the names of
tools outside namespaces), within `MAX_DESCRIPTION_CHARS`.

Every `tool_search_call` gets exactly one `tool_search_output` with the same
`call_id` and `execution: "client"`; it is checked against the `openai`
package's `ResponseToolSearchOutputItemParam` before it is returned (a failure
there is a bug here, and raises). Arguments come as a JSON object or a JSON
string. Malformed ones — not JSON, not an object, no or an empty query, a
query over `MAX_QUERY_CHARS`, a limit that is not an integer in
1..`max_limit`, unknown keys — get an output with no tools and `status:
"incomplete"`, and `Answer.message` says what was wrong and how to call the
tool; a `tool_search_output` has no field for text, so the caller sends that
message to the model beside the output (`message_item`). A query that matches
nothing is answered `completed` with no tools, and a message suggesting other
words.

Not covered here: which tools are deferred, remembering what was loaded across
turns, compaction and resume (the runtime's job, with `ToolIndex.definitions`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..items import Item
from .index import Hit, ToolIndex, ToolKey

DEFAULT_LIMIT: Final = 5
"""Tools returned when the call gives no `limit`."""
MAX_LIMIT: Final = 20
"""The largest `limit` the tool accepts."""
DEFAULT_MAX_CHARS: Final = 20_000
"""Bound on the JSON of the tools one answer returns (about 5,000 tokens)."""
MAX_QUERY_CHARS: Final = 1_000
MAX_ARGUMENTS_CHARS: Final = 10_000
"""Arguments longer than this are refused before they are parsed."""
MAX_DESCRIPTION_CHARS: Final = 4_000
"""Bound on the tool's description, listing of what can be found included."""

DESCRIPTION: Final = (
    "Search the tools of this run that are not loaded yet, and load the best matches: "
    "their definitions come back and you can call them from then on. Describe what the "
    "tool should do in a few words, e.g. 'create a github issue' or 'read a file'; the "
    "name of the service or namespace helps."
)

PARAMETERS: Final[Item] = {
    "type": "object",
    "properties": {
        "query": {
            "type": "string",
            "description": "What the tool should do, in a few words.",
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "description": f"How many tools to load at most (default {DEFAULT_LIMIT}).",
        },
    },
    "required": ["query"],
    "additionalProperties": False,
}

EXAMPLE: Final = json.dumps({"query": "create a github issue", "limit": DEFAULT_LIMIT})


def tool_search_tool(
    index: ToolIndex | None = None,
    *,
    description: str = DESCRIPTION,
    max_limit: int = MAX_LIMIT,
) -> Item:
    """The `tool_search` definition (client-executed) to send with the request.

    With `index`, the description ends with what can be found there.
    """
    params = json.loads(json.dumps(PARAMETERS))
    params["properties"]["limit"]["maximum"] = max_limit
    text = description if index is None else description + searchable(index)
    return {
        "type": "tool_search",
        "execution": "client",
        "description": text[:MAX_DESCRIPTION_CHARS],
        "parameters": params,
    }


def searchable(index: ToolIndex, max_chars: int = MAX_DESCRIPTION_CHARS - len(DESCRIPTION)) -> str:
    """What `index` holds, for the tool's description: namespaces, then other tools."""
    parts = []
    for name, desc, n in index.namespaces():
        about = f": {' '.join(desc.split())[:120]}" if desc else ""
        parts.append(f"\n- namespace {name} ({n} tool{'s' if n != 1 else ''}){about}")
    loose = index.top_level()
    if loose:
        parts.append("\n- tools: " + ", ".join(loose))
    text = "\n\nYou can find:" + "".join(parts) if parts else ""
    if len(text) > max_chars:
        text = text[: max_chars - 4].rsplit("\n", 1)[0] + "\n- …"
    return text


@dataclass(frozen=True, slots=True)
class SearchArgs:
    query: str
    limit: int


def parse_arguments(
    arguments: Any, *, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> SearchArgs | str:
    """The arguments of a `tool_search_call`, or an error message the model can act on."""
    usage = f"Call tool_search with a JSON object like {EXAMPLE}"
    if isinstance(arguments, str):
        if len(arguments) > MAX_ARGUMENTS_CHARS:
            return (
                f"error: the tool_search arguments are {len(arguments):,} characters long; "
                f"at most {MAX_ARGUMENTS_CHARS:,} are accepted. {usage}"
            )
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError) as e:
            return f"error: the tool_search arguments are not valid JSON ({_short(e)}). {usage}"
    if not isinstance(arguments, dict):
        return f"error: the tool_search arguments must be a JSON object, not {_json_type(arguments)}. {usage}"
    unknown = sorted(str(k) for k in arguments if k not in ("query", "limit"))
    if unknown:
        return (
            f"error: tool_search takes only 'query' and 'limit'; unknown: "
            f"{', '.join(repr(k[:40]) for k in unknown[:5])}. {usage}"
        )
    query = arguments.get("query")
    if query is None:
        return (
            f"error: tool_search needs a 'query': the words describing the tool you need. {usage}"
        )
    if not isinstance(query, str):
        return f"error: 'query' must be a string, not {_json_type(query)}. {usage}"
    query = query.strip()
    if not query:
        return f"error: 'query' is empty: say in a few words what the tool should do. {usage}"
    if len(query) > MAX_QUERY_CHARS:
        return (
            f"error: 'query' is {len(query):,} characters long; at most {MAX_QUERY_CHARS:,} "
            "are accepted: a few words describing the tool work best"
        )
    limit = arguments.get("limit", default_limit)
    if limit is None:
        limit = default_limit
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int):
        return f"error: 'limit' must be an integer from 1 to {max_limit}, not {_json_type(limit)}"
    if not 1 <= limit <= max_limit:
        return f"error: 'limit' must be from 1 to {max_limit}; it was {limit}"
    return SearchArgs(query, limit)


@dataclass(frozen=True, slots=True)
class Answer:
    output: Item
    """The `tool_search_output` item: exactly one per call."""
    ok: bool
    """False when the arguments were refused."""
    summary: str
    """One line for progress output: `"create a github issue" → 3 tools`, or the error."""
    hits: Sequence[Hit] = ()
    """The tools returned, in order."""
    message: str | None = None
    """Text for the model beside the output: the error, or a hint when nothing matched."""

    @property
    def loaded(self) -> list[ToolKey]:
        """(namespace, name) of each tool this answer made callable."""
        return [h.key for h in self.hits]


def answer_call(
    index: ToolIndex,
    call: Item,
    *,
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int = MAX_LIMIT,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Answer:
    """Search `index` for a `tool_search_call` and build its one `tool_search_output`."""
    args = parse_arguments(call.get("arguments"), default_limit=default_limit, max_limit=max_limit)
    if isinstance(args, str):
        return Answer(output_item(call, [], status="incomplete"), False, args, message=args)
    found = index.search(args.query, limit=args.limit, max_chars=max_chars)
    n = len(found.hits)
    summary = f"{json.dumps(args.query, ensure_ascii=False)} → {n} tool{'s' if n != 1 else ''}"
    message = None
    if not found.hits:
        message = (
            f"tool_search found no tool for {json.dumps(args.query, ensure_ascii=False)}. "
            "Try other words: what the tool does, the kind of thing it acts on, or the "
            "name of the service."
        )
    elif found.left_out:
        summary += f" ({found.left_out} more left out: over {max_chars:,} characters)"
    return Answer(output_item(call, found.tools), True, summary, found.hits, message)


def output_item(call: Item, tools: Sequence[Item], *, status: str = "completed") -> Item:
    """The `tool_search_output` answering `call`, checked against the `openai` types."""
    item: Item = {
        "type": "tool_search_output",
        "call_id": str(call.get("call_id") or ""),
        "execution": "client",
        "status": status,
        "tools": list(tools),
    }
    check_output(item)
    return item


def keys_of(tools: Sequence[Item]) -> list[ToolKey]:
    """(namespace, name) of each tool in a `tool_search_output`'s `tools`, in order.

    For finding again, from a journal or a history, which tools earlier
    searches loaded (`Answer.loaded` of the answers that wrote them).
    """
    keys: list[ToolKey] = []
    for t in tools:
        if t.get("type") == "namespace":
            keys += ((str(t.get("name")), str(x.get("name"))) for x in t.get("tools") or ())
        elif "name" in t:
            keys.append((None, str(t["name"])))
    return keys


def check_output(item: Item) -> None:
    """Raise ValueError unless `item` is a valid `ResponseToolSearchOutputItemParam`."""
    from openai.types.responses import ResponseToolSearchOutputItemParam
    from pydantic import ValidationError

    try:
        ResponseToolSearchOutputItemParam.model_validate(item)
    except ValidationError as e:
        raise ValueError(f"not a valid tool_search_output: {e}") from e


def message_item(call: Item, message: str) -> Item:
    """`message` as an input item the runtime can place right after the call's output."""
    text = f"[tool_search {call.get('call_id', '')}] {message}"
    return {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": text}],
    }


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"[:60]
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _short(e: Exception) -> str:
    return "nesting too deep" if isinstance(e, RecursionError) else str(e)[:200]
