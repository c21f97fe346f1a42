"""MCP tools: the tools of an MCP server, offered to the model next to a Python function.

python examples/mcp_tools.py                        # offline, scripted model
OPENAI_API_KEY=... python examples/mcp_tools.py     # the real API

The MCP server is this same file run as `python examples/mcp_tools.py --serve`
(a stdio server built with the `mcp` package); itemloop starts it as a
subprocess, lists its tools as `atlas__capital` and `atlas__word_stats`, and
calls them when the model does. MCP servers run on the host, as you: itemloop
does not sandbox them, and passes them no API key unless you say so (`env=`).
"""

from __future__ import annotations

import json
import sys

SCRIPT = [
    [
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "atlas__word_stats",
            "arguments": json.dumps({"text": "the quick brown fox jumps over the lazy dog"}),
        },
        {
            "type": "function_call",
            "call_id": "c2",
            "name": "atlas__capital",
            "arguments": json.dumps({"country": "Atlantis"}),
        },
    ],
    [
        {
            "type": "function_call",
            "call_id": "c3",
            "name": "atlas__capital",
            "arguments": json.dumps({"country": "Norway"}),
        },
        {
            "type": "function_call",
            "call_id": "c4",
            "name": "shout",
            "arguments": json.dumps({"text": "oslo"}),
        },
    ],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {
                    "type": "output_text",
                    "text": "The pangram has 9 words (8 distinct). Atlantis has no capital on "
                    "record; Norway's is OSLO.",
                }
            ],
        }
    ],
]


def serve() -> None:
    """The MCP server side: two tools over stdio."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("atlas", log_level="WARNING")
    capitals = {"norway": "Oslo", "sweden": "Stockholm", "finland": "Helsinki"}

    @server.tool()
    def capital(country: str) -> str:
        """The capital city of a Nordic country."""
        if country.lower() not in capitals:
            raise ToolError(f"no capital on record for {country!r}; known: {', '.join(capitals)}")
        return capitals[country.lower()]

    @server.tool()
    def word_stats(text: str) -> dict[str, int]:
        """Count the words and distinct words of a text."""
        words = text.lower().split()
        return {"words": len(words), "distinct": len(set(words))}

    server.run("stdio")


def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


async def main() -> None:
    from itemloop.runtime import Runtime, Toolset, ToolsetConfig, choose_model
    from itemloop.runtime.events import CallFinished, RunFinished
    from itemloop.tools.mcp import McpServer

    atlas = McpServer("atlas", command=sys.executable, args=(__file__, "--serve"))
    # Python functions and MCP tools side by side: each call goes to its tool by name.
    tools = Toolset(ToolsetConfig(builtins=(), mcp_servers=(atlas,)), functions=[shout])
    async with Runtime(choose_model(SCRIPT), tools) as rt:
        print("MCP tools:", ", ".join(d["name"] for d in rt.tool_definitions if "__" in d["name"]))
        async for event in rt.run(
            "How many words and distinct words are in 'the quick brown fox jumps over the "
            "lazy dog'? What are the capitals of Atlantis and Norway? Shout the last one."
        ):
            if isinstance(event, CallFinished):
                print(f"{event.name}: {event.output.get('output')}")
            elif isinstance(event, RunFinished):
                print(f"answer: {event.final_text}")


if __name__ == "__main__":
    if "--serve" in sys.argv[1:]:
        serve()
    else:
        import anyio

        anyio.run(main)
