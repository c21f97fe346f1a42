"""MCP tools as Responses `function` tools, and MCP tool results as `function_call_output`s.

Names: `<server>__<tool>`, made to fit the API's `^[a-zA-Z0-9_-]{1,64}$` and
unique. Schemas: the MCP tool's `inputSchema` as `parameters`, with `strict:
true` only when the schema is plainly inside what strict mode takes (every
property required, closed objects, only well-known keywords); anything else is
sent as-is with `strict: false`, because a schema strict mode rejects would fail
every request of the run.

Results: text stays text; images become `input_image` parts and binary
resources `input_file` parts (data URLs); an `isError` result becomes text
that starts `error: tool ... reported an error:` so the model knows.

`structuredContent` is added as JSON text unless it only repeats the content
blocks. A value repeats them when it equals (as JSON: `true` is not `1`) a
content block, the list of all blocks, a block's payload (text, image or audio
data, a resource, or its text or blob), or the JSON value a text block holds;
a non-empty object or array repeats them when every value in it does (an
empty one is an answer, "no items", and is kept). Names (object keys) are
not data: `{"result": 3}` beside the text `3` (the MCP SDK's
wrapping) only repeats it, as does `{"result": [<image block>]}` beside the
image. Structured content that carries anything else is kept whole, except
that strings in it repeating a payload of 256 characters or more (an image's
base64, say) become a note naming the block: no payload is sent twice.
Deciding costs about one parse of each text block and one serialization of
the structured content. Its nesting is bounded by the MCP client's JSON parser
(pydantic-core: about 200 levels), which keeps the recursive walks here shallow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import mcp_types as mt

from .callables import ToolOutput
from .items import Item

_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64

# Keywords strict mode is known to take; a schema using anything else stays non-strict.
_STRICT_KEYWORDS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "description",
    "title",
    "enum",
    "const",
    "anyOf",
    "$defs",
    "definitions",
    "$ref",
    "$schema",
}


def sanitize_name(name: str) -> str:
    return _NAME_OK.sub("_", name)[:MAX_NAME] or "_"


def unique_name(base: str, taken: set[str]) -> str:
    """`base` (sanitised), or `base_2`, `base_3`, ... cut to fit 64 characters."""
    name = sanitize_name(base)
    n = 2
    while name in taken:
        suffix = f"_{n}"
        name = sanitize_name(base)[: MAX_NAME - len(suffix)] + suffix
        n += 1
    taken.add(name)
    return name


def tool_definition(name: str, tool: mt.Tool, server: str, *, namespaced: bool = False) -> Item:
    """The function definition of an MCP tool, offered as `name` (`SERVER__TOOL`, or the
    tool's own name inside the server's namespace when `namespaced`)."""
    schema = dict(tool.input_schema) if isinstance(tool.input_schema, dict) else {}
    strict = strict_parameters(schema)
    description = tool.description or tool.title or ""
    expected = tool.name if namespaced else f"{server}__{tool.name}"
    if name != expected:  # sanitised or de-duplicated: say what it really is
        prefix = f"[MCP server {server!r}, tool {tool.name!r}]"
        description = f"{prefix} {description}".strip()
    return {
        "type": "function",
        "name": name,
        "description": description,
        "parameters": strict if strict is not None else _loose_parameters(schema),
        "strict": strict is not None,
    }


def _loose_parameters(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    out.setdefault("type", "object")
    if out.get("type") == "object":
        out.setdefault("properties", {})
    return out


def strict_parameters(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`schema` in strict form (closed objects, no titles), or None when strict mode may reject it."""
    ok = True

    def walk(node: Any, *, in_properties: bool = False) -> Any:
        nonlocal ok
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        if in_properties:  # keys are property names, not keywords
            return {k: walk(v) for k, v in node.items()}
        if set(node) - _STRICT_KEYWORDS:
            ok = False
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "title":
                continue
            out[k] = walk(v, in_properties=k in ("properties", "$defs", "definitions"))
        if node.get("type") == "object" or "properties" in node:
            props = node.get("properties") or {}
            if not props or node.get("additionalProperties") not in (None, False):
                ok = False  # free-form or empty objects: strict mode cannot say "anything"
            if set(node.get("required", [])) != set(props):
                ok = False  # optional parameters: strict mode requires every one
            out["additionalProperties"] = False
        return out

    if schema.get("type") != "object":
        return None
    result = walk(schema)
    result.pop("$schema", None)
    return result if ok else None


def result_output(result: mt.CallToolResult, *, server: str, tool: str) -> tuple[ToolOutput, bool]:
    """The `output` for a `CallToolResult`, and whether the call succeeded."""
    parts = list(_parts(result.content))
    if result.structured_content is not None:
        extra = structured_text(result.structured_content, result.content)
        if extra is not None:
            parts.append({"type": "input_text", "text": extra})
    if result.is_error:
        head = f"error: tool {tool!r} (MCP server {server!r}) reported an error"
        if not parts:
            return head + " (no details given)", False
        parts.insert(0, {"type": "input_text", "text": head + ":"})
    return _compact(parts), not result.is_error


# A repeated payload at least this long is replaced by a note: shorter ones cost
# less than the note would.
ELIDE_MIN = 256


def structured_text(structured: Any, content: Sequence[mt.ContentBlock]) -> str | None:
    """`structuredContent` as text for the model, or `None` when it only repeats `content`."""
    seen = _Repeats(content)
    if seen.covers(structured):
        return None
    return json.dumps(seen.elide(structured), ensure_ascii=False)


def _canonical(value: Any) -> str:
    """Equal for equal JSON values, types included (`true` is not `1`, `1` is not `1.0`),
    whatever the order of object keys."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _shape(value: dict[str, Any] | list[Any]) -> frozenset[str] | int:
    """An object's keys, an array's length: only a container shaped like a value the
    blocks carry is worth serializing to compare."""
    return frozenset(value) if isinstance(value, dict) else len(value)


class _Repeats:
    """What the content blocks already carry, to tell repeats of it in structured content.

    Containers are compared by their canonical JSON, and only when their shape is
    that of a value the blocks carry, so checking a large structuredContent costs
    about one serialization of it.
    """

    def __init__(self, content: Sequence[mt.ContentBlock]) -> None:
        self.scalars: set[tuple[str, Any]] = set()
        self.containers: dict[frozenset[str] | int, set[str]] = {}
        self.notes: dict[str, str] = {}
        """Long payloads of the blocks -> the note that replaces a repeat of one."""
        dumped: list[Any] = []
        for number, block in enumerate(content, 1):
            dumped.append(_dump(block))
            self._add(dumped[-1])
            where = f"content block {number}"
            if isinstance(block, mt.TextContent):
                self._payload(block.text, f"the text of {where}")
                try:
                    self._add(json.loads(block.text))
                except (ValueError, RecursionError):
                    pass  # not JSON (or nested beyond what Python parses): text only
            elif isinstance(block, mt.ImageContent | mt.AudioContent):
                self._payload(block.data, f"the {block.mime_type} data of {where}")
            elif isinstance(block, mt.EmbeddedResource):
                res = block.resource
                self._add(_dump(res))
                data = res.text if isinstance(res, mt.TextResourceContents) else res.blob
                self._payload(data, f"the contents of {res.uri} ({where})")
        if dumped:
            self._add(dumped)

    def _add(self, value: Any) -> None:
        if isinstance(value, dict | list):
            try:
                canonical = _canonical(value)
            except RecursionError:
                return  # nested too deep to serialize: nothing will match it
            self.containers.setdefault(_shape(value), set()).add(canonical)
        else:
            self.scalars.add((type(value).__name__, value))

    def _payload(self, data: str, note: str) -> None:
        self._add(data)
        if len(data) >= ELIDE_MIN:
            self.notes.setdefault(data, f"[{len(data)} characters: {note}, not repeated]")

    def covers(self, value: Any) -> bool:
        """Whether `value` only repeats what the blocks carry (see the module docstring)."""
        if isinstance(value, dict | list):
            known = self.containers.get(_shape(value))
            if known and _canonical(value) in known:
                return True
            inside = value.values() if isinstance(value, dict) else value
            # An empty one is an answer ("no items"), not a repeat of anything.
            return bool(value) and all(self.covers(v) for v in inside)
        return (type(value).__name__, value) in self.scalars

    def elide(self, value: Any) -> Any:
        """`value` with every long repeated payload replaced by its note."""
        if not self.notes:
            return value
        if isinstance(value, str):
            return self.notes.get(value, value)
        if isinstance(value, dict):
            return {k: self.elide(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.elide(v) for v in value]
        return value


def _dump(model: mt.ContentBlock | mt.TextResourceContents | mt.BlobResourceContents) -> Any:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _compact(parts: list[Item]) -> ToolOutput:
    """Text only: one string. Anything else: the list of parts."""
    if all(p["type"] == "input_text" for p in parts):
        return "\n".join(str(p["text"]) for p in parts)
    return parts


def _parts(content: Iterable[mt.ContentBlock]) -> Iterable[Item]:
    for block in content:
        if isinstance(block, mt.TextContent):
            yield {"type": "input_text", "text": block.text}
        elif isinstance(block, mt.ImageContent):
            yield _image(block.mime_type, block.data)
        elif isinstance(block, mt.AudioContent):
            size = len(block.data) * 3 // 4
            yield {
                "type": "input_text",
                "text": f"[audio ({block.mime_type}, about {size} bytes) omitted: "
                "audio cannot be returned as a function call output]",
            }
        elif isinstance(block, mt.EmbeddedResource):
            yield from _resource(block.resource)
        elif isinstance(block, mt.ResourceLink):
            desc = f" - {block.description}" if block.description else ""
            mime = f", {block.mime_type}" if block.mime_type else ""
            yield {
                "type": "input_text",
                "text": f"[resource link: {block.uri} ({block.name}{mime}){desc}]",
            }
        else:  # a content type newer than this code
            data = block.model_dump(mode="json", by_alias=True, exclude_none=True)
            yield {"type": "input_text", "text": json.dumps(data, ensure_ascii=False)}


def _resource(res: mt.TextResourceContents | mt.BlobResourceContents) -> Iterable[Item]:
    mime = res.mime_type or "application/octet-stream"
    if isinstance(res, mt.TextResourceContents):
        yield {"type": "input_text", "text": f"[resource {res.uri} ({mime})]\n{res.text}"}
    elif mime.startswith("image/"):
        yield _image(mime, res.blob)
    else:
        filename = str(res.uri).rstrip("/").rsplit("/", 1)[-1] or "resource"
        yield {
            "type": "input_file",
            "filename": filename,
            "file_data": f"data:{mime};base64,{res.blob}",
        }


def _image(mime: str, data: str) -> Item:
    return {"type": "input_image", "image_url": f"data:{mime};base64,{data}", "detail": "auto"}
