"""Calling user-supplied Python callables safely, shared by function and custom tools.

Sync callables run in a worker thread so a slow tool never stalls the loop;
async ones run in the loop. Whatever a tool returns becomes the output the API
takes (text, or a list of text/image/file content parts); whatever it raises
becomes an error text that names the tool, the exception and where it was raised.
"""

from __future__ import annotations

import inspect
import json
import traceback
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import pydantic

_CONTENT_TYPES = {"input_text", "input_image", "input_file"}

ToolOutput = str | list[dict[str, Any]]


class ToolTimeout(Exception):
    pass


async def invoke(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout_s: float | None
) -> Any:
    """Call `fn(*args, **kwargs)`, bounded by `timeout_s` (raises `ToolTimeout`)."""
    with anyio.move_on_after(timeout_s) as scope:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        # abandon_on_cancel: a sync tool that overruns cannot be killed, but the run
        # must not wait for it.
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), abandon_on_cancel=True)
    if scope.cancelled_caught:
        raise ToolTimeout(f"did not finish within {timeout_s:g} s")
    raise AssertionError("unreachable")


async def call_tool(
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout_s: float | None,
) -> tuple[ToolOutput, bool]:
    """Call the tool `name`; its output and whether it succeeded.

    Whatever it raises becomes the error text: a tool that calls sys.exit()
    must not end the run, it is the tool's error.
    """
    try:
        value = await invoke(fn, args, kwargs, timeout_s)
    except ToolTimeout as e:
        return f"error: tool {name!r} {e}; it was abandoned", False
    except (Exception, SystemExit, KeyboardInterrupt) as e:
        return describe_exception(name, e), False
    return to_output(value), True


def parse_arguments(name: str, arguments: Any) -> dict[str, Any] | str:
    """A call's `arguments` (a JSON object in a string) as a dict, or the error text
    for the model. Absent or blank arguments are an empty object."""
    if arguments is None:
        return {}
    if not isinstance(arguments, str):
        return (
            f"error: arguments for {name!r} must be a JSON string, got {type(arguments).__name__}"
        )
    try:
        raw = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as e:
        return (
            f"error: arguments for {name!r} are not valid JSON ({e.msg} at line {e.lineno} "
            f"column {e.colno}): {arguments[:200]!r}"
        )
    except RecursionError:
        return f"error: arguments for {name!r} are nested too deeply to parse"
    if not isinstance(raw, dict):
        return f"error: arguments for {name!r} must be a JSON object, got {type(raw).__name__}"
    return raw


def to_output(value: Any) -> ToolOutput:
    """A tool's return value as `function_call_output.output`."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, dict) and value.get("type") in _CONTENT_TYPES:
        return [value]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and v.get("type") in _CONTENT_TYPES for v in value)
    ):
        return list(value)
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def summary_line(output: ToolOutput) -> str:
    """The first line of a tool's output (its first text part), for progress displays."""
    if isinstance(output, list):
        texts = [str(p.get("text", "")) for p in output if p.get("type") == "input_text"]
        output = texts[0] if texts else ""
    return output.splitlines()[0][:160] if output else ""


def describe_exception(tool: str, exc: BaseException) -> str:
    """`tool 'x' raised ValueError: msg (at file.py:12 in fn)` — enough to correct a call."""
    where = ""
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        last = tb[-1]
        where = f" (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name})"
    text = str(exc) or "(no message)"
    return f"error: tool {tool!r} raised {type(exc).__name__}: {text}{where}"
