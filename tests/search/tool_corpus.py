"""The tool-search corpus (tests/data/tool_corpus/) as tool definitions, and its queries.

Each MCP server's listed tools become a `namespace` named after the server,
holding one deferred `function` per tool (`inputSchema` as `parameters`);
`own.json` is already in Responses form. Shared by the quality test and
bench/tool_search.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itemloop.tools.search.call import DEFAULT_MAX_CHARS
from itemloop.tools.search.index import Hit, ToolIndex

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tool_corpus"

Item = dict[str, Any]


def mcp_namespace(server: dict[str, Any]) -> Item:
    """One collected server file as a namespace of deferred function tools."""
    return {
        "type": "namespace",
        "name": server["server"],
        "description": f"Tools of the {server['server']} MCP server ({server['package']}).",
        "tools": [
            {
                "type": "function",
                "name": t["name"],
                "description": t.get("description") or t.get("title") or "",
                "parameters": t.get("inputSchema") or {"type": "object", "properties": {}},
                "strict": False,
                "defer_loading": True,
            }
            for t in server["tools"]
        ],
    }


def servers() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((CORPUS / "servers").glob("*.json"))]


def corpus_tools() -> list[Item]:
    """Every corpus tool: the servers' namespaces, then own.json's tools."""
    own = json.loads((CORPUS / "own.json").read_text())["tools"]
    return [mcp_namespace(s) for s in servers()] + own


def tool_ids(tools: list[Item]) -> list[str]:
    """`namespace/name` (or `name`) of every tool in `tools`, in order."""
    out = []
    for t in tools:
        if t["type"] == "namespace":
            out += (f"{t['name']}/{x['name']}" for x in t["tools"])
        else:
            out.append(t["name"])
    return out


def hit_id(h: Hit) -> str:
    return f"{h.namespace}/{h.name}" if h.namespace is not None else h.name


@dataclass(frozen=True)
class Query:
    query: str
    expect: tuple[str, ...]


def queries() -> list[Query]:
    data = json.loads((CORPUS / "queries.json").read_text())
    return [Query(q["query"], tuple(q["expect"])) for q in data["queries"]]


def found_within(index: ToolIndex, q: Query, k: int) -> bool:
    """Whether a search with `limit=k` returns one of the query's intended tools."""
    result = index.search(q.query, limit=k, max_chars=DEFAULT_MAX_CHARS)
    return any(hit_id(h) in q.expect for h in result.hits[:k])


def recall(index: ToolIndex, qs: list[Query], k: int) -> float:
    return sum(found_within(index, q, k) for q in qs) / len(qs)
