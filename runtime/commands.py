"""What each `itemloop` subcommand does, once the arguments are parsed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import AsyncExitStack
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from itemloop.sandbox.base import Sandbox, SandboxError, SandboxOptions
from itemloop.tools.base import Executor, Item, check_unique_names
from itemloop.tools.function import FunctionTool

if TYPE_CHECKING:
    from itemloop.tools.mcp_approval import ApprovalPolicy
    from itemloop.tools.mcp_config import McpServer

from .dispatch import Dispatcher
from .events import Event, RunFinished
from .items import ensure_call_ids
from .loop import Runtime, ToolLike
from .model import Model
from .progress import JsonPrinter, ProgressPrinter
from .session import SessionError


class CliError(Exception):
    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


async def run_command(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "tools":
        return await _tools(args)
    if command == "exec":
        return await _exec(args)
    if command == "demo":
        return await _demo(args)
    return await _run(args)


# -- shared pieces ---------------------------------------------------------------


def _tool_names(args: argparse.Namespace) -> list[str]:
    from .builtin import BUILTIN_TOOLS

    names = [n.strip() for n in str(args.tools).split(",") if n.strip()]
    for n in names:
        if n not in BUILTIN_TOOLS:
            raise CliError(f"--tools: unknown tool {n!r}; choose from {', '.join(BUILTIN_TOOLS)}")
    return names


def _functions(args: argparse.Namespace) -> list[FunctionTool]:
    from itemloop.tools.function import load_functions_file

    tools: list[FunctionTool] = []
    for path in args.functions:
        try:
            tools += load_functions_file(path)
        except FileNotFoundError as e:
            raise CliError(str(e)) from None
        except Exception as e:
            raise CliError(f"--functions {path}: {type(e).__name__}: {e}") from None
    try:
        check_unique_names([t.definition() for t in tools])
    except ValueError as e:
        raise CliError(f"--functions: {e}") from None
    return tools


def _mcp_servers(args: argparse.Namespace) -> list[McpServer]:
    from itemloop.tools.mcp_config import McpSpecError, servers_from_cli

    try:
        return servers_from_cli(
            args.mcp_stdio,
            args.mcp_http,
            args.mcp_env,
            args.mcp_header,
            call_timeout_s=args.mcp_timeout,
        )
    except McpSpecError as e:
        raise CliError(str(e)) from None


def _mcp_error(e: BaseException) -> CliError | None:
    from itemloop.tools.mcp_client import McpConnectError

    return CliError(str(e), status=1) if isinstance(e, McpConnectError) else None


def _approval_policy(args: argparse.Namespace) -> ApprovalPolicy | None:
    """--approve-mcp SERVER (repeatable, '*' for any); None: deny every request."""
    if not args.approve_mcp:
        return None
    from itemloop.tools.mcp_approval import approve_servers

    return approve_servers(None if "*" in args.approve_mcp else set(args.approve_mcp))


def _sandbox_tools(names: Sequence[str]) -> list[str]:
    return [n for n in names if n != "computer"]


def _computer(args: argparse.Namespace, names: Sequence[str]) -> tuple[Any, Executor | None]:
    """The computer to open (not yet started) and its executor, when --tools has computer."""
    if "computer" not in names:
        return None, None
    from itemloop.tools.computer import ComputerExecutor, acknowledge_all

    width, x, height = str(args.display_size).lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise CliError(
            f"--display-size {args.display_size!r}: expected WIDTHxHEIGHT, e.g. 1280x800"
        )
    w, h = int(width), int(height)
    computer: Any
    if args.computer == "xvfb":
        from itemloop.sandbox.xvfb_computer import XvfbComputer

        computer = XvfbComputer(w, h)
    else:
        from itemloop.sandbox.browser_computer import BrowserComputer

        computer = BrowserComputer(w, h, start_url=args.start_url)
    tool_type = args.computer_tool
    if tool_type == "auto":
        model = str(getattr(args, "model", "") or "")
        tool_type = "computer_use_preview" if model.startswith("computer-use") else "computer"
    executor = ComputerExecutor(
        computer,
        tool_type=tool_type,
        acknowledge_safety_checks=acknowledge_all if args.ack_safety_checks else None,
    )
    return computer, executor


def _sandbox_options(args: argparse.Namespace) -> SandboxOptions:
    env: dict[str, str] = {}
    for spec in args.env:
        key, eq, value = spec.partition("=")
        if not key:
            raise CliError(f"--env {spec!r}: expected KEY=VALUE or KEY")
        if not eq:
            if key not in os.environ:
                raise CliError(f"--env {key}: not set in this environment")
            value = os.environ[key]
        env[key] = value
    defaults = SandboxOptions()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return SandboxOptions(
        network=args.network,
        env=env,
        writable_paths=tuple(args.writable),
        default_timeout_s=pick(args.timeout, defaults.default_timeout_s),
        cpu_time_s=pick(args.cpu_time, defaults.cpu_time_s),
        max_file_size=pick(args.max_file_size, defaults.max_file_size),
        max_processes=pick(args.max_procs, defaults.max_processes),
        memory_bytes=pick(args.memory, defaults.memory_bytes),
        cpus=pick(args.cpus, defaults.cpus),
    )


def _open_sandbox(args: argparse.Namespace, workspace: Path) -> Sandbox:
    from itemloop.sandbox import open_sandbox

    if not workspace.is_dir():
        raise CliError(f"--workspace {workspace}: not a directory")
    if args.sandbox == "docker" and not args.image:
        raise CliError("--sandbox docker needs --image NAME (an image with /bin/sh)")
    try:
        sandbox: Sandbox = open_sandbox(
            args.sandbox, workspace, _sandbox_options(args), image=args.image
        )
        return sandbox
    except SandboxError as e:
        raise CliError(str(e)) from None


def _printer(args: argparse.Namespace) -> ProgressPrinter | JsonPrinter:
    return JsonPrinter() if getattr(args, "json", False) else ProgressPrinter()


async def _drive(rt: Runtime, prompt: str | None, printer: ProgressPrinter | JsonPrinter) -> int:
    final: RunFinished | None = None
    async with anyio.create_task_group() as tg:
        if isinstance(printer, ProgressPrinter):
            tg.start_soon(printer.spin)
        event: Event
        async for event in rt.run(prompt):
            printer(event)
            if isinstance(event, RunFinished):
                final = event
        tg.cancel_scope.cancel()
    if final is None or final.reason == "error":
        return 1
    return 0 if final.reason == "completed" else 3


# -- itemloop tools ----------------------------------------------------------------


async def _tools(args: argparse.Namespace) -> int:
    from itemloop.tools.function import FunctionExecutor

    names = _tool_names(args)
    defs: list[Item] = [{"type": n} for n in _sandbox_tools(names)]
    _, computer_executor = _computer(args, names)
    if computer_executor is not None:
        defs += computer_executor.definitions()
    functions = _functions(args)
    if functions:
        defs = FunctionExecutor(functions).definitions() + defs
    servers = _mcp_servers(args)
    if servers:
        from itemloop.tools.mcp import McpTools

        try:
            async with McpTools(servers) as mcp:
                defs = defs + mcp.definitions()
        except Exception as e:
            raise _mcp_error(e) or e from None
    try:
        check_unique_names(defs)
    except ValueError as e:
        raise CliError(str(e)) from None
    print(json.dumps(defs, indent=2, ensure_ascii=False))
    return 0


# -- itemloop run --------------------------------------------------------------------


def _model(args: argparse.Namespace) -> Model:
    if args.script is not None:
        from .scripted import ScriptedModel, ScriptError

        try:
            return ScriptedModel.from_file(args.script)
        except ScriptError as e:
            raise CliError(str(e)) from None
    key = os.environ.get("OPENAI_API_KEY")
    base_url = args.base_url or os.environ.get("OPENAI_BASE_URL")
    if not key and not base_url:
        raise CliError(
            "no model to talk to: set OPENAI_API_KEY (and --base-url for a server other than "
            "OpenAI's), or pass --script FILE to replay a scripted model. "
            "To see itemloop work offline, run: itemloop demo"
        )
    from .openai_model import OpenAIModel

    return OpenAIModel(
        args.model,
        base_url=base_url,
        api_key=key or "not-needed",
        stream=not args.no_stream,
        store=args.previous_response_id,
    )


async def _run(args: argparse.Namespace) -> int:
    if args.resume and args.session is None:
        raise CliError("--resume needs --session FILE")
    if args.prompt is None and not args.resume:
        raise CliError("run needs a PROMPT (or --resume with --session FILE)")
    if args.session is not None and args.session.exists() and not args.resume:
        raise CliError(f"--session {args.session} already exists: add --resume to continue it")
    if args.resume and args.prompt is None and not _has_history(args.session):
        raise CliError(f"--resume: {args.session} holds no session to continue; give a PROMPT")
    names = _tool_names(args)
    functions = _functions(args)
    model = _model(args)
    workspace = (args.workspace or Path.cwd()).resolve()
    from .compaction import make_compactor

    try:
        compactor = make_compactor(
            model,
            threshold=args.compact_threshold,
            strategy=args.compact_strategy,
            model_name=args.model,
        )
    except ValueError as e:
        raise CliError(str(e)) from None
    sandbox_tools = _sandbox_tools(names)
    sandbox = _open_sandbox(args, workspace) if sandbox_tools else None
    computer, computer_executor = _computer(args, names)
    try:
        rt = Runtime(
            model,
            tools=functions,
            sandbox=sandbox,
            builtin_tools=sandbox_tools,
            executors=[computer_executor] if computer_executor is not None else [],
            instructions=args.instructions,
            max_turns=args.max_turns,
            tool_timeout_s=args.tool_timeout,
            session=args.session,
            compactor=compactor,
            previous_response_id=args.previous_response_id,
            approve_mcp=_approval_policy(args),
            shell_timeout_s=args.timeout,
            shell_output_limit=args.output_limit,
            mcp_servers=_mcp_servers(args),
        )
    except ValueError as e:  # e.g. two tools with one name
        raise CliError(str(e)) from None
    try:
        async with AsyncExitStack() as stack:
            if computer is not None:
                await stack.enter_async_context(computer)
            async with rt:
                return await _drive(rt, args.prompt, _printer(args))
    except SandboxError as e:
        raise CliError(str(e), status=1) from None
    except (SessionError, OSError) as e:
        raise CliError(f"--session {args.session}: {e}", status=1) from None
    except ValueError as e:
        raise CliError(str(e)) from None
    except Exception as e:
        raise _mcp_error(e) or e from None


def _has_history(path: Path) -> bool:
    from .session import SessionError, SessionStore

    try:
        return bool(SessionStore(path).load().items)
    except (OSError, SessionError) as e:
        raise CliError(f"--session {path}: {e}") from None


# -- itemloop demo -------------------------------------------------------------------


async def _demo(args: argparse.Namespace) -> int:
    from itemloop.tools.custom import custom_tool

    from . import demo_tools
    from .scripted import ScriptedModel, load_script

    script = resources.files("itemloop.runtime").joinpath("demo_script.jsonl")
    with resources.as_file(script) as path:
        model = ScriptedModel(load_script(path), name="demo-script")
    async with AsyncExitStack() as stack:
        if args.workspace is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="itemloop-demo-"))
            workspace = Path(tmp)
        else:
            workspace = args.workspace.resolve()
        print(
            f"itemloop demo: scripted model, {args.sandbox} sandbox, workspace {workspace}",
            file=sys.stderr,
        )
        sandbox = _open_sandbox(args, workspace)
        tools: list[ToolLike] = [
            demo_tools.word_count,
            demo_tools.weather,
            custom_tool(demo_tools.shout, description="Upper-cases free-form text."),
        ]
        rt = Runtime(
            model,
            tools=tools,
            sandbox=sandbox,
            builtin_tools=("shell", "local_shell", "apply_patch"),
            shell_timeout_s=args.timeout,
            shell_output_limit=args.output_limit,
        )
        try:
            async with rt:
                return await _drive(rt, "Show me what you can do.", _printer(args))
        except SandboxError as e:
            raise CliError(str(e), status=1) from None
    return 1


# -- itemloop exec -------------------------------------------------------------------


def read_items(text: str) -> tuple[list[Item], list[str]]:
    """Items from JSON lines, or one JSON document (a Response, a list of items, or
    one item, pretty-printed or not); and a message per input that is not an item."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")) and "\n" in stripped:
        try:
            whole = json.loads(stripped)
        except json.JSONDecodeError:
            pass  # not one document: JSON lines
        else:
            return _items_of(whole, "input")
    items: list[Item] = []
    errors: list[str] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value: Any = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {lineno}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        found, errs = _items_of(value, f"line {lineno}")
        items += found
        errors += errs
    return items, errors


def _items_of(value: Any, where: str) -> tuple[list[Item], list[str]]:
    if isinstance(value, dict) and isinstance(value.get("output"), list) and "type" not in value:
        value = value["output"]  # a Response
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return [], [f'{where}: not an item (an item is a JSON object with a "type")']
    items: list[Item] = []
    errors: list[str] = []
    for n, v in enumerate(value):
        if isinstance(v, dict) and isinstance(v.get("type"), str):
            items.append(v)
        else:
            at = f"{where}" if len(value) == 1 else f"{where}, entry {n + 1}"
            errors.append(f'{at}: not an item (an item is a JSON object with a "type")')
    return items, errors


async def _exec(args: argparse.Namespace) -> int:
    if args.input is not None:
        try:
            text = args.input.read_text(encoding="utf-8")
        except OSError as e:
            raise CliError(f"--input {args.input}: {e.strerror or e}") from None
    else:
        text = await anyio.to_thread.run_sync(sys.stdin.read)
    items, errors = read_items(text)
    for err in errors:
        print(f"itemloop exec: {err}", file=sys.stderr)
    calls = [i for i in items if Dispatcher.is_call(i)]
    for note in ensure_call_ids(calls):
        print(f"itemloop exec: {note}", file=sys.stderr)
    names = _tool_names(args)
    functions = _functions(args)
    workspace = (args.workspace or Path.cwd()).resolve()
    sandbox_tools = _sandbox_tools(names)
    sandbox = _open_sandbox(args, workspace) if sandbox_tools else None
    computer, computer_executor = _computer(args, names)
    servers = _mcp_servers(args)
    from itemloop.tools.function import FunctionExecutor
    from itemloop.tools.mcp_approval import McpApprovalExecutor
    from itemloop.tools.router import function_call_executor

    try:
        async with AsyncExitStack() as stack:
            answering: list[Executor] = []
            if functions:
                answering.append(FunctionExecutor(functions, default_timeout_s=args.tool_timeout))
            if servers:
                from itemloop.tools.mcp import McpTools

                answering.append(await stack.enter_async_context(McpTools(servers)))
            executors: list[Executor] = [McpApprovalExecutor(_approval_policy(args))]
            if computer is not None and computer_executor is not None:
                await stack.enter_async_context(computer)
                executors.append(computer_executor)
            function_calls = function_call_executor(answering)
            if function_calls is not None:
                executors.append(function_calls)
            if sandbox is not None:
                from .builtin import builtin_executors

                await stack.enter_async_context(sandbox)
                executors += builtin_executors(
                    sandbox_tools, sandbox, timeout_s=args.timeout, output_limit=args.output_limit
                )
            dispatcher = Dispatcher(executors)
            check_unique_names(dispatcher.definitions())
            outputs = await dispatcher.run(calls, lambda e: None)
    except SandboxError as e:
        raise CliError(str(e), status=1) from None
    except ValueError as e:
        raise CliError(str(e)) from None
    except Exception as e:
        raise _mcp_error(e) or e from None
    for out in outputs:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 2 if errors else 0
