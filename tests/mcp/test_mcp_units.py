"""The pure parts of the MCP tools: names, schemas, result conversion, server specs."""

from __future__ import annotations

import json
import re
from typing import Any

import mcp_types as mt
import pydantic
import pytest
from openai.types.responses import FunctionToolParam, ResponseInputItemParam

from itemloop.tools.mcp import McpServer, McpSpecError, servers_from_cli
from itemloop.tools.mcp_output import (
    result_output,
    sanitize_name,
    strict_parameters,
    tool_definition,
    unique_name,
)

INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)
TOOL_DEF = pydantic.TypeAdapter(FunctionToolParam)
NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PNG = "iVBORw0KGgo="


def output(result: mt.CallToolResult) -> tuple[Any, bool]:
    out, ok = result_output(result, server="srv", tool="srv__t")
    INPUT_ITEM.validate_python({"type": "function_call_output", "call_id": "c", "output": out})
    return out, ok


# -- names -----------------------------------------------------------------------


def test_names_fit_the_api_rule_and_are_unique() -> None:
    taken: set[str] = set()
    names = [
        unique_name("fs__read.file", taken),
        unique_name("fs__read/file", taken),
        unique_name("fs__read file", taken),
        unique_name("x__" + "y" * 100, taken),
        unique_name("x__" + "y" * 100, taken),
        unique_name("srv__héllo", taken),
    ]
    assert names[:3] == ["fs__read_file", "fs__read_file_2", "fs__read_file_3"]
    assert len(set(names)) == len(names)
    for n in names:
        assert NAME_RULE.match(n), n
    assert names[4].endswith("_2") and len(names[4]) == 64
    assert sanitize_name("") == "_"


def test_a_renamed_tool_says_what_it_really_is() -> None:
    tool = mt.Tool(name="read.file", description="Read a file.", input_schema={"type": "object"})
    d = tool_definition("fs__read_file", tool, "fs")
    assert d["description"] == "[MCP server 'fs', tool 'read.file'] Read a file."
    plain = tool_definition("fs__read", tool.model_copy(update={"name": "read"}), "fs")
    assert plain["description"] == "Read a file."
    TOOL_DEF.validate_python(d)


# -- schemas ---------------------------------------------------------------------


def test_strict_only_when_the_schema_is_plainly_strict() -> None:
    closed = {
        "type": "object",
        "title": "args",
        "properties": {
            "path": {"type": "string", "title": "Path"},
            "mode": {"enum": ["r", "w"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["path", "mode", "tags"],
    }
    strict = strict_parameters(closed)
    assert strict is not None
    assert strict["additionalProperties"] is False and "title" not in strict
    assert "title" not in strict["properties"]["path"]
    # a property literally named "title" is kept
    named_title = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
    }
    assert strict_parameters(named_title) == {**named_title, "additionalProperties": False}

    optional = {**closed, "required": ["path"]}
    with_default = {
        "type": "object",
        "properties": {"n": {"type": "integer", "default": 3}},
        "required": ["n"],
    }
    with_format = {
        "type": "object",
        "properties": {"s": {"type": "string", "minLength": 2}},
        "required": ["s"],
    }
    free_form = {
        "type": "object",
        "properties": {"o": {"type": "object"}},
        "required": ["o"],
    }
    open_extra = {**closed, "additionalProperties": True}
    for schema in (optional, with_default, with_format, free_form, open_extra, {"type": "object"}):
        assert strict_parameters(schema) is None, schema


def test_non_strict_schema_is_sent_as_given() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": []}
    tool = mt.Tool(name="search", input_schema=schema)
    d = tool_definition("web__search", tool, "web")
    assert d["strict"] is False and d["parameters"] == schema
    bare = tool_definition(
        "web__ping", mt.Tool(name="ping", input_schema={"type": "object"}), "web"
    )
    assert bare["parameters"] == {"type": "object", "properties": {}}
    TOOL_DEF.validate_python(d)


# -- results ---------------------------------------------------------------------


def test_text_content_is_joined_into_one_string() -> None:
    r = mt.CallToolResult(content=[mt.TextContent(text="a"), mt.TextContent(text="b")])
    assert output(r) == ("a\nb", True)


def texts(*values: str) -> list[mt.ContentBlock]:
    return [mt.TextContent(text=v) for v in values]


def test_structured_content_the_content_does_not_carry_is_added() -> None:
    r = mt.CallToolResult(content=[], structured_content={"temp": 21.5})
    assert output(r) == ('{"temp": 21.5}', True)
    # A sentence for people and data beside it: the data is not in the sentence.
    both = mt.CallToolResult(content=texts("21.5 C"), structured_content={"t": 1})
    assert output(both) == ('21.5 C\n{"t": 1}', True)
    # An empty result is an answer, not a repeat of the (empty) content.
    empty = mt.CallToolResult(content=[], structured_content={"result": []})
    assert output(empty) == ('{"result": []}', True)


@pytest.mark.parametrize(
    ("content", "structured"),
    [
        (texts("3"), {"result": 3}),  # the MCP SDK's wrapping of a plain return value
        (texts("/root"), {"result": "/root"}),
        (texts("1", "2"), {"result": [1, 2]}),  # a list: one text block per item
        (texts('{"b": 2, "a": [1, null]}'), {"a": [1, None], "b": 2}),  # key order
        (texts('{\n  "x": 1\n}'), {"result": {"x": 1}}),  # pretty-printed, wrapped
        (
            [mt.ImageContent(data=PNG, mime_type="image/png")],
            {"result": [{"type": "image", "data": PNG, "mimeType": "image/png"}]},
        ),
        (
            [
                mt.EmbeddedResource(
                    resource=mt.TextResourceContents(
                        uri="file:///n.txt", mime_type="text/plain", text="hi"
                    )
                )
            ],
            {"file": {"uri": "file:///n.txt", "mimeType": "text/plain", "text": "hi"}},
        ),
    ],
)
def test_structured_content_that_only_repeats_the_content_is_not_added(
    content: list[mt.ContentBlock], structured: dict[str, Any]
) -> None:
    alone, _ = output(mt.CallToolResult(content=content))
    assert output(mt.CallToolResult(content=content, structured_content=structured)) == (
        alone,
        True,
    )


def test_repeats_are_told_apart_by_json_type_and_whole_values() -> None:
    for structured in ({"ok": True}, {"v": 1.0}, {"v": "2"}):
        r = mt.CallToolResult(content=texts("1"), structured_content=structured)
        assert output(r)[0] == "1\n" + json.dumps(structured)
    # A block's type or MIME type alone is no repeat of the block.
    img = mt.ImageContent(data=PNG, mime_type="image/png")
    r = mt.CallToolResult(content=[img], structured_content={"kind": "image"})
    assert output(r)[0][1] == {"type": "input_text", "text": '{"kind": "image"}'}


def test_a_long_repeated_payload_is_replaced_by_a_note_when_the_rest_is_kept() -> None:
    long = "x" * 300
    r = mt.CallToolResult(content=texts(long), structured_content={"body": long, "n": 1})
    out, _ = output(r)
    assert out.count(long) == 1
    kept = json.loads(out.split("\n", 1)[1])
    assert kept == {"body": "[300 characters: the text of content block 1, not repeated]", "n": 1}
    short = mt.CallToolResult(content=texts("yes"), structured_content={"body": "yes", "n": 1})
    assert output(short)[0] == 'yes\n{"body": "yes", "n": 1}'  # cheaper than a note


def test_json_text_nested_deeper_than_the_recursion_limit() -> None:
    for depth in (900, 100_000):  # json.loads takes the first, refuses the second
        deep = "[" * depth + "]" * depth
        r = mt.CallToolResult(content=texts(deep), structured_content={"x": 1})
        assert output(r)[0] == deep + '\n{"x": 1}'


def test_empty_result_is_empty_text() -> None:
    assert output(mt.CallToolResult(content=[])) == ("", True)


def test_images_and_blobs_become_parts() -> None:
    r = mt.CallToolResult(
        content=[
            mt.TextContent(text="here"),
            mt.ImageContent(data=PNG, mime_type="image/png"),
            mt.EmbeddedResource(
                resource=mt.BlobResourceContents(
                    uri="file:///x/report.pdf", mime_type="application/pdf", blob="JVBERi0="
                )
            ),
            mt.EmbeddedResource(
                resource=mt.BlobResourceContents(
                    uri="file:///x/pic.jpg", mime_type="image/jpeg", blob=PNG
                )
            ),
        ]
    )
    out, ok = output(r)
    assert ok
    assert [p["type"] for p in out] == ["input_text", "input_image", "input_file", "input_image"]
    assert out[1]["image_url"] == f"data:image/png;base64,{PNG}"
    assert out[2] == {
        "type": "input_file",
        "filename": "report.pdf",
        "file_data": "data:application/pdf;base64,JVBERi0=",
    }
    assert out[3]["image_url"].startswith("data:image/jpeg;base64,")


def test_text_resources_links_and_audio_become_text() -> None:
    r = mt.CallToolResult(
        content=[
            mt.EmbeddedResource(
                resource=mt.TextResourceContents(
                    uri="file:///a.txt", mime_type="text/plain", text="hello"
                )
            ),
            mt.ResourceLink(uri="file:///b.csv", name="b.csv", mime_type="text/csv"),
            mt.AudioContent(data="AAAA", mime_type="audio/wav"),
        ]
    )
    out, ok = output(r)
    assert ok and isinstance(out, str)
    assert "[resource file:///a.txt (text/plain)]\nhello" in out
    assert "[resource link: file:///b.csv (b.csv, text/csv)]" in out
    assert "audio (audio/wav" in out and "omitted" in out


def test_is_error_is_marked_for_the_model() -> None:
    r = mt.CallToolResult(content=[mt.TextContent(text="disk full")], is_error=True)
    assert output(r) == (
        "error: tool 'srv__t' (MCP server 'srv') reported an error:\ndisk full",
        False,
    )
    bare = mt.CallToolResult(content=[], is_error=True)
    assert output(bare) == (
        "error: tool 'srv__t' (MCP server 'srv') reported an error (no details given)",
        False,
    )
    with_image = mt.CallToolResult(
        content=[mt.ImageContent(data=PNG, mime_type="image/png")], is_error=True
    )
    out, ok = output(with_image)
    assert (
        not ok
        and out[0]["text"].startswith("error: tool 'srv__t'")
        and out[1]["type"] == "input_image"
    )


# -- server specs ----------------------------------------------------------------


def test_server_config_is_checked() -> None:
    with pytest.raises(McpSpecError, match="exactly one of"):
        McpServer("x")
    with pytest.raises(McpSpecError, match="exactly one of"):
        McpServer("x", command="a", url="http://h")
    with pytest.raises(McpSpecError, match="name 'a b'"):
        McpServer("a b", command="a")
    with pytest.raises(McpSpecError, match="http:// or https://"):
        McpServer("x", url="ftp://h")


def test_cli_specs() -> None:
    servers = servers_from_cli(
        stdio=["fs=npx -y '@mcp/server files' /srv"],
        http=["web=https://example.test/mcp"],
        env=["fs:TOKEN=abc", "fs:HOME_COPY"],
        headers=["web:Authorization: Bearer t0k"],
        call_timeout_s=12,
        environ={"HOME_COPY": "/home/u"},
    )
    fs, web = servers
    assert (fs.name, fs.command, fs.args) == ("fs", "npx", ("-y", "@mcp/server files", "/srv"))
    assert dict(fs.env) == {"TOKEN": "abc", "HOME_COPY": "/home/u"}
    assert (web.name, web.url, dict(web.headers)) == (
        "web",
        "https://example.test/mcp",
        {"Authorization": "Bearer t0k"},
    )
    assert fs.call_timeout_s == web.call_timeout_s == 12
    assert fs.describe() == "stdio: npx -y '@mcp/server files' /srv"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stdio": ["fs"]}, "takes NAME=VALUE"),
        ({"stdio": ["fs=a", "fs=b"]}, "two MCP servers are named 'fs'"),
        ({"stdio": ["fs=a"], "env": ["other:K=v"]}, "no MCP server named 'other'"),
        ({"stdio": ["fs=a"], "env": ["fs:MISSING"]}, "MISSING is not set"),
        ({"http": ["w=http://h"], "env": ["w:K=v"]}, "is an HTTP server"),
        ({"stdio": ["fs=a"], "headers": ["fs:X: y"]}, "is a stdio server"),
        ({"stdio": ["fs='unclosed"]}, "cannot split"),
    ],
)
def test_cli_spec_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(McpSpecError, match=message):
        servers_from_cli(**kwargs, environ={})
