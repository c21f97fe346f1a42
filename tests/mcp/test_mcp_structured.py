"""structuredContent beside content blocks, through McpTools and a real MCP server.

The server (tests/mcp/servers/structured_server.py, over stdio) answers with
structuredContent in the shapes servers send. What only repeats the content is
not sent again; data the content does not carry is.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai.types.responses import ResponseInputItemParam
from servers.structured_server import PNG_1X1

from itemloop.tools.mcp import McpServer, McpTools

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).parent / "servers" / "structured_server.py"
INPUT_ITEM: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseInputItemParam)
IMAGE_BYTES = 300_000  # the size of the image in the issue (it became an 800 KB output)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: one server for the module's tests


@pytest.fixture(scope="module")
async def mcp() -> AsyncIterator[McpTools]:
    server = McpServer("pics", command=sys.executable, args=(str(SERVER),))
    async with McpTools([server]) as tools:
        yield tools


async def call(mcp: McpTools, name: str, args: dict[str, Any]) -> Any:
    item = {"type": "function_call", "call_id": "c1", "name": name, "arguments": json.dumps(args)}
    result = await mcp.execute(item)
    INPUT_ITEM.validate_python(result.output)
    assert result.ok, result.output
    return result.output["output"]


def image_data(size: int) -> str:
    """The image the server sends for `size`."""
    return base64.b64encode(PNG_1X1.ljust(size, b"\0")).decode()


@pytest.mark.parametrize("shape", ["block", "wrapped"])
async def test_an_image_repeated_in_structured_content_is_sent_once(
    mcp: McpTools, shape: str
) -> None:
    out = await call(mcp, "pics__picture", {"shape": shape, "size": IMAGE_BYTES})
    data = image_data(IMAGE_BYTES)
    assert out == [
        {"type": "input_image", "image_url": f"data:image/png;base64,{data}", "detail": "auto"}
    ]


async def test_data_beside_a_repeated_image_is_kept_and_the_image_is_not(mcp: McpTools) -> None:
    out = await call(mcp, "pics__picture", {"shape": "described", "size": IMAGE_BYTES})
    data = image_data(IMAGE_BYTES)
    assert [p["type"] for p in out] == ["input_image", "input_text"]
    assert json.dumps(out).count(data) == 1
    kept = json.loads(out[1]["text"])
    assert kept["width"] == 1 and kept["height"] == 1
    assert "image/png" in kept["data"] and "content block 1" in kept["data"]
    assert len(json.dumps(out)) < len(data) + 1_000


async def test_structured_data_the_content_does_not_carry_is_kept(mcp: McpTools) -> None:
    out = await call(mcp, "pics__picture", {"shape": "other"})
    assert [p["type"] for p in out] == ["input_image", "input_text"]
    assert json.loads(out[1]["text"]) == {"label": "a red pixel"}


@pytest.mark.parametrize("pretty", [False, True])
async def test_structured_content_that_is_the_json_text_is_not_added(
    mcp: McpTools, pretty: bool
) -> None:
    out = await call(mcp, "pics__record", {"pretty": pretty})
    assert isinstance(out, str)
    assert json.loads(out) == {"id": 7, "tags": ["a", "b"], "ok": True}


async def test_structured_data_beside_a_sentence_is_kept(mcp: McpTools) -> None:
    out = await call(mcp, "pics__summary", {})
    assert out == '3 open issues\n{"open": 3, "ids": [101, 102, 103]}'
