"""Function tools: plain Python functions offered as `function` tools.

The JSON schema comes from the type hints through pydantic; strict mode is used
whenever the schema allows it (every parameter required, no free-form objects).
Arguments are validated before the function runs, and each way a call can go
wrong becomes a `function_call_output` that says exactly what to fix.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import pydantic

from .base import ExecResult, check_unique_names
from .callables import call_tool, parse_arguments, summary_line
from .defaults import DEFAULT_TOOL_TIMEOUT_S
from .items import Item, call_id_of


@dataclass
class FunctionTool:
    name: str
    description: str
    fn: Callable[..., Any]
    args_model: type[pydantic.BaseModel]
    parameters: dict[str, Any]
    strict: bool
    timeout_s: float | None = None
    _param_names: tuple[str, ...] = field(default=())
    defer: bool = False
    """Not shown to the model up front: found through tool search (`defer_loading`)."""

    def definition(self) -> Item:
        d: Item = {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }
        if self.defer:
            d["defer_loading"] = True
        return d


def function_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float | None = None,
    defer: bool = False,
) -> FunctionTool:
    """Describe `fn` as a function tool (schema from its type hints, docstring as description).
    With `defer`, the model finds it through tool search instead of seeing it up front."""
    sig = inspect.signature(fn)
    try:
        hints = get_type_hints(fn)
    except Exception:
        hints = {}
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (annotation, default)
    tool_name = name or fn.__name__
    model = pydantic.create_model(  # type: ignore[call-overload]
        f"{tool_name}_args", __config__=pydantic.ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    strict_schema = _strict_schema(schema)
    return FunctionTool(
        name=tool_name,
        description=description or inspect.getdoc(fn) or "",
        fn=fn,
        args_model=model,
        parameters=strict_schema if strict_schema is not None else schema,
        strict=strict_schema is not None,
        timeout_s=timeout_s,
        _param_names=tuple(fields),
        defer=defer,
    )


def _strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The schema in strict form, or None when strict mode cannot express it."""
    ok = True

    def walk(node: Any) -> Any:
        nonlocal ok
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items() if k not in ("title", "default")}
        if "default" in node:
            ok = False  # an optional parameter: strict mode requires every one
        if node.get("type") == "object":
            props = node.get("properties", {})
            extra = node.get("additionalProperties")
            if extra not in (None, False) or (not props and extra is None and "$ref" not in node):
                ok = False  # a free-form dict
            if set(node.get("required", [])) != set(props):
                ok = False
            out["additionalProperties"] = False
        return out

    result = walk(schema)
    return result if ok else None


class FunctionExecutor:
    """Answers `function_call` items from a set of `FunctionTool`s."""

    item_types = ("function_call",)
    sequential = False

    def __init__(
        self,
        tools: Iterable[FunctionTool | Callable[..., Any]],
        *,
        default_timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S,
        namespace: str | None = None,
        namespace_description: str = "",
    ) -> None:
        """With `namespace`, the tools are offered as one `namespace` of that name
        (calls then carry `namespace` beside `name`)."""
        described = [t if isinstance(t, FunctionTool) else function_tool(t) for t in tools]
        check_unique_names([t.definition() for t in described])
        self.tools = {t.name: t for t in described}
        self.default_timeout_s = default_timeout_s
        self.namespace = namespace
        self.namespace_description = namespace_description

    def definitions(self) -> list[Item]:
        defs = [t.definition() for t in self.tools.values()]
        if self.namespace is None:
            return defs
        namespace: Item = {
            "type": "namespace",
            "name": self.namespace,
            "description": self.namespace_description,
            "tools": defs,
        }
        return [namespace]

    async def execute(self, call: Item) -> ExecResult:
        name = str(call.get("name", ""))
        text, ok = await self._run(name, call.get("arguments"))
        out: Item = {"type": "function_call_output", "call_id": call_id_of(call), "output": text}
        if self.namespace is not None:
            out["namespace"] = self.namespace
        return ExecResult(output=out, ok=ok, summary="ok" if ok else summary_line(text))

    async def _run(self, name: str, arguments: Any) -> tuple[Any, bool]:
        tool = self.tools.get(name)
        if tool is None:  # the toolset routes only the names defined here
            return f"error: there is no function tool named {name!r}", False
        raw = parse_arguments(name, arguments)
        if isinstance(raw, str):
            return raw, False
        try:
            parsed = tool.args_model.model_validate(raw)
        except pydantic.ValidationError as e:
            return f"error: invalid arguments for {name!r}: {_validation_text(e)}", False
        kwargs = {p: getattr(parsed, p) for p in tool._param_names}
        timeout = tool.timeout_s if tool.timeout_s is not None else self.default_timeout_s
        return await call_tool(name, tool.fn, (), kwargs, timeout)


def _validation_text(e: pydantic.ValidationError) -> str:
    parts = []
    for err in e.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unexpected argument"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


class FunctionsFileError(ValueError):
    """A `--functions` file that cannot be loaded; the message names it and says why."""


def load_functions_file(path: Path | str) -> list[FunctionTool]:
    """Every public top-level function defined in the file, or those in its `__all__`.

    Raises `FunctionsFileError` for a missing file and for whatever its code raises.
    """
    path = Path(path)
    if not path.is_file():
        raise FunctionsFileError(f"--functions: no such file: {path}")
    module_name = f"itemloop_user_functions_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FunctionsFileError(f"--functions: cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        exported: Sequence[str] | None = getattr(module, "__all__", None)
        if exported is not None:
            fns = [getattr(module, n) for n in exported]
        else:
            fns = [
                v
                for n, v in vars(module).items()
                if not n.startswith("_") and inspect.isfunction(v) and v.__module__ == module_name
            ]
        return [function_tool(f) for f in fns if callable(f)]
    except Exception as e:
        raise FunctionsFileError(f"--functions {path}: {type(e).__name__}: {e}") from e
