"""An MCP server for the structuredContent tests, over stdio: `python structured_server.py`.

Its tools answer the way servers do when they fill `structuredContent` as well
as `content`: repeating the content in it, adding data beside a repeat, or
carrying other data only.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import mcp_types as mt
from mcp.server.mcpserver import MCPServer

# A 1x1 red PNG; bytes after its IEND chunk pad it to the size a test asks for.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)

server = MCPServer("structured", log_level="WARNING")


@server.tool()
def picture(shape: str, size: int = 0) -> mt.CallToolResult:
    """The PNG padded to `size` bytes, with structuredContent of the given `shape`:
    "block" (the image block again), "wrapped" ({"result": [the image block]}),
    "described" (its data, width and height), "other" (a label only)."""
    data = base64.b64encode(PNG_1X1.ljust(size, b"\0")).decode()
    block = mt.ImageContent(data=data, mime_type="image/png")
    dumped = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    structured: dict[str, Any] = {
        "block": dumped,
        "wrapped": {"result": [dumped]},
        "described": {"data": data, "width": 1, "height": 1},
        "other": {"label": "a red pixel"},
    }[shape]
    return mt.CallToolResult(content=[block], structured_content=structured)


@server.tool()
def record(pretty: bool) -> mt.CallToolResult:
    """A record as structuredContent and, as the MCP spec advises, as JSON text too."""
    value = {"id": 7, "tags": ["a", "b"], "ok": True}
    text = json.dumps(value, indent=2 if pretty else None)
    return mt.CallToolResult(content=[mt.TextContent(text=text)], structured_content=value)


@server.tool()
def summary() -> mt.CallToolResult:
    """A sentence for people, and data the sentence does not carry."""
    return mt.CallToolResult(
        content=[mt.TextContent(text="3 open issues")],
        structured_content={"open": 3, "ids": [101, 102, 103]},
    )


if __name__ == "__main__":
    server.run("stdio")
