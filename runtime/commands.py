"""What each `itemloop` subcommand does, once the arguments are parsed.

Flags become configuration in one place (`run_config`, `toolset_config`),
the same `RunConfig`/`ToolsetConfig` a library caller writes; every command
then builds its tools with `Toolset`. The runtime's own errors become exit
statuses in one place (`exit_status`): 1 for a failure of the runtime or what
it starts (a sandbox, an MCP server, the journal), 2 for bad usage or input.
SIGTERM and SIGHUP stop a command as Ctrl-C does (`stoppable`): commands
killed, calls answered, journal saved, sandbox removed; the status is then
128 + the signal's number, as for Ctrl-C's 130.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any

import anyio

from itemloop.sandbox.base import SandboxError, SandboxOptions
from itemloop.tools.config import ComputerConfig, SandboxConfig, ToolsetConfig
from itemloop.tools.defaults import BUILTIN_TOOLS
from itemloop.tools.items import (
    KINDS,
    Item,
    call_id_of,
    ensure_call_ids,
    is_call,
    is_unknown_call,
    unanswered_calls,
    user_message,
)
from itemloop.tools.toolset import Toolset

from .approvals import Approval, ApprovalRequest, Approver
from .config import RunConfig
from .dispatch import Dispatcher
from .events import Event, RunFinished
from .loop import Runtime
from .progress import JsonPrinter, ProgressPrinter
from .session import SessionError


class CliError(Exception):
    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a command as Ctrl-C does. SIGINT itself is asyncio's: it cancels
the main task, and `anyio.run` then raises KeyboardInterrupt (`cli.main`: status 130)."""


async def run_command(args: argparse.Namespace) -> int:
    command: str = args.command
    handler = {
        "tools": _tools,
        "exec": _exec,
        "demo": _demo,
        "batch": _batch,
        "approvals": _approvals,
        "approve": _decide,
        "deny": _decide,
    }.get(command, _run)
    with exit_status(session=getattr(args, "session", None)):
        status, signum = await stoppable(lambda: handler(args))
    if signum is not None:
        print(f"itemloop: stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum  # what a shell reports for a process the signal ended
    return status


async def stoppable(work: Callable[[], Awaitable[int]]) -> tuple[int, int | None]:
    """Run `work`; a `STOP_SIGNALS` signal cancels it exactly as Ctrl-C does.

    As asyncio does for Ctrl-C, the signal cancels the task running `work`
    once, natively (the CLI runs on asyncio): a run then kills its commands,
    answers its calls, saves its journal and removes its sandbox, and that
    cleanup is not cancelled again. (An anyio scope cancelled around it all
    would cancel every await of the cleanup too; a task group would wrap
    `work`'s errors in a group.) Returns `work`'s status and the signal that
    stopped it (None if none did). A second signal while the cleanup runs
    ends the process at once, as the signal would have (the sandboxes die
    with it: `--die-with-parent`, the container's watchdog).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        received.append(signum)
        task.cancel()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        status = await work()
    except asyncio.CancelledError:
        if not received or task.uncancel() > 0:
            raise  # not (only) ours: Ctrl-C, or a caller's cancellation
        return 1, received[0]
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    if received:
        # `work` ended on its own meanwhile: a cancellation not delivered yet lands here.
        with suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        task.uncancel()
        return status, received[0]
    return status, None


@contextmanager
def exit_status(session: Path | None = None) -> Iterator[None]:
    """Turn the runtime's own errors into a `CliError` with the exit status they mean.

    Anything else is a bug and propagates as it is, traceback and cause intact.
    """
    from itemloop.tools.mcp_client import McpConnectError

    try:
        yield
    except CliError:
        raise
    except (SandboxError, McpConnectError) as e:
        raise CliError(str(e), status=1) from None
    except SessionError as e:
        raise CliError(f"--session {session}: {e}", status=1) from None
    except OSError as e:
        if session is None:
            raise
        raise CliError(f"--session {session}: {e}", status=1) from None
    except ValueError as e:  # bad configuration: two tools with one name, a bad --functions file
        raise CliError(str(e)) from None


# -- flags -> configuration -----------------------------------------------------------


def _builtins(args: argparse.Namespace) -> list[str]:
    names = [n.strip() for n in str(args.tools).split(",") if n.strip()]
    for n in names:
        if n not in BUILTIN_TOOLS:
            raise CliError(f"--tools: unknown tool {n!r}; choose from {', '.join(BUILTIN_TOOLS)}")
    return names


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
    given = {
        "cpu_time_s": args.cpu_time,
        "max_file_size": args.max_file_size,
        "max_processes": args.max_procs,
        "memory_bytes": args.memory,
        "cpus": args.cpus,
        "max_workspace_bytes": args.max_workspace_size,
    }
    return SandboxOptions(
        network=args.network,
        env=env,
        writable_paths=tuple(args.writable),
        hidden_paths=tuple(os.path.abspath(os.path.expanduser(p)) for p in args.hide),
        **{k: v for k, v in given.items() if v is not None},
    )


def _sandbox_config(args: argparse.Namespace) -> SandboxConfig:
    workspace = (args.workspace or Path.cwd()).resolve()
    if not workspace.is_dir():
        raise CliError(f"--workspace {workspace}: not a directory")
    if args.sandbox == "docker" and not args.image:
        raise CliError(
            "--sandbox docker needs --image NAME (any Linux image of this machine's architecture)"
        )
    if args.sandbox == "host" and args.hide:
        raise CliError("--hide: the host sandbox hides nothing; choose --sandbox local or docker")
    return SandboxConfig(
        kind=args.sandbox, image=args.image, workspace=workspace, options=_sandbox_options(args)
    )


def _computer_config(args: argparse.Namespace) -> ComputerConfig:
    width, x, height = str(args.display_size).lower().partition("x")
    if not (x and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise CliError(
            f"--display-size {args.display_size!r}: expected WIDTHxHEIGHT, e.g. 1280x800"
        )
    limits = {
        "max_download_bytes": ("--browser-max-download", args.browser_max_download),
        "max_downloads": ("--browser-max-downloads", args.browser_max_downloads),
        "max_session_download_bytes": (
            "--browser-max-download-total",
            args.browser_max_download_total,
        ),
    }
    for flag, value in limits.values():
        if value is not None and value < 0:
            raise CliError(f"{flag} {value}: expected 0 or more")
    return ComputerConfig(
        backend=args.computer,
        start_url=args.start_url,
        browser_network=args.browser_network,
        browser_allow=tuple(args.browser_allow),
        browser_deny=tuple(args.browser_deny),
        display_width=int(width),
        display_height=int(height),
        tool=args.computer_tool,
        ack_safety_checks=args.ack_safety_checks,
        apps=tuple(args.computer_app),
        window_manager=args.computer_wm,
        **{k: v for k, (_, v) in limits.items() if v is not None},
    )


def toolset_config(args: argparse.Namespace) -> ToolsetConfig:
    """The tools the flags of `run`, `exec` and `tools` describe."""
    from itemloop.tools.mcp_config import servers_from_cli

    builtins = _builtins(args)
    settings: dict[str, Any] = {
        "builtins": builtins,
        "functions": args.functions,
        "mcp_servers": servers_from_cli(
            args.mcp_stdio,
            args.mcp_http,
            args.mcp_env,
            args.mcp_header,
            call_timeout_s=args.mcp_timeout,
        ),
        "approve_mcp": args.approve_mcp or (),
        "policy": getattr(args, "policy", None),
        "approval": getattr(args, "approval", None),
        "mcp_namespaces": args.mcp_namespaces,
        "mcp_defer": args.mcp_defer,
        "defer_above": None if args.defer_above < 0 else args.defer_above,
        "tool_timeout_s": args.tool_timeout,
    }
    if "computer" in builtins:
        settings["computer"] = _computer_config(args)
    if hasattr(args, "sandbox"):  # `itemloop tools` starts no sandbox
        settings["sandbox"] = _sandbox_config(args)
        if args.timeout is not None:
            settings["command_timeout_s"] = args.timeout
        if args.output_limit is not None:
            settings["output_limit"] = args.output_limit
    return ToolsetConfig(**settings)


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run the flags of `itemloop run` describe."""
    settings: dict[str, Any] = {
        "model": args.model,
        "base_url": args.base_url,
        "script": args.script,
        "instructions": args.instructions,
        "stream": not args.no_stream,
        "model_timeout_s": args.model_timeout,
        "model_max_time_s": args.model_max_time,
        "previous_response_id": args.previous_response_id,
        "max_turns": args.max_turns,
        "compact_threshold": args.compact_threshold,
        "compact_strategy": args.compact_strategy,
        "tools": toolset_config(args),
    }
    return RunConfig(**settings)


# -- running ------------------------------------------------------------------------


def _printer(args: argparse.Namespace) -> ProgressPrinter | JsonPrinter:
    if getattr(args, "json", False):
        return JsonPrinter()
    return ProgressPrinter(session=getattr(args, "session", None))


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
    return {"completed": 0, "max_turns": 3, "needs_approval": 4}.get(final.reason, 3)


# -- itemloop tools ----------------------------------------------------------------


async def _tools(args: argparse.Namespace) -> int:
    config = toolset_config(args)
    async with Toolset(config, model_name=args.model, describe_only=True) as toolset:
        defs = toolset.definitions()
    print(json.dumps(defs, indent=2, ensure_ascii=False))
    return 0


# -- itemloop run --------------------------------------------------------------------


async def _run(args: argparse.Namespace) -> int:
    if args.resume and args.session is None:
        raise CliError("--resume needs --session FILE")
    if args.prompt is None and not args.resume:
        raise CliError("run needs a PROMPT (or --resume with --session FILE)")
    if args.session is not None and args.session.exists() and not args.resume:
        raise CliError(f"--session {args.session} already exists: add --resume to continue it")
    from .config import build_runtime, recordable

    config = run_config(args)
    if args.session is not None:
        from .session import SessionStore

        store = SessionStore(args.session)
        state = store.load() if args.resume else None
        if state is not None:
            if args.prompt is None and not state.items:
                raise CliError(
                    f"--resume: {args.session} holds no session to continue; give a PROMPT"
                )
            if state.config is not None:
                config = _resumed_config(state.config, config, getattr(args, "given", ()))
        # The settings and the prompt are on disk before anything starts: a stop
        # during start-up (sandbox, MCP servers) leaves a session --resume continues.
        store.record_config(recordable(config))
        prompt = args.prompt
        if prompt is not None and not (state and unanswered_calls(state.items)):
            # (Calls a stop left unanswered are answered first, then the prompt follows.)
            store.append([user_message(prompt)])
            prompt = None
        store.close()
    else:
        prompt = args.prompt
    rt = build_runtime(config, session=args.session, approver=_terminal_approver())
    async with rt:
        return await _drive(rt, prompt, _printer(args))


# Which parts of a RunConfig each flag of `itemloop run` sets: on --resume, a
# flag given again replaces those parts of the recorded settings, and only those.
_OPTIONS = ("tools", "sandbox", "options")
FLAG_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "model": (("model",),),
    "base_url": (("base_url",),),
    "script": (("script",),),
    "instructions": (("instructions",),),
    "no_stream": (("stream",),),
    "model_timeout": (("model_timeout_s",),),
    "model_max_time": (("model_max_time_s",),),
    "previous_response_id": (("previous_response_id",),),
    "max_turns": (("max_turns",),),
    "compact_threshold": (("compact_threshold",),),
    "compact_strategy": (("compact_strategy",),),
    "tools": (("tools", "builtins"),),
    "functions": (("tools", "functions"),),
    "mcp_stdio": (("tools", "mcp_servers"),),
    "mcp_http": (("tools", "mcp_servers"),),
    "mcp_env": (("tools", "mcp_servers"),),
    "mcp_header": (("tools", "mcp_servers"),),
    "mcp_timeout": (("tools", "mcp_servers"),),
    "approve_mcp": (("tools", "approve_mcp"),),
    "policy": (("tools", "policy"),),
    "approval": (("tools", "approval"),),
    "mcp_namespaces": (("tools", "mcp_namespaces"),),
    "mcp_defer": (("tools", "mcp_defer"),),
    "defer_above": (("tools", "defer_above"),),
    "tool_timeout": (("tools", "tool_timeout_s"),),
    "computer": (("tools", "computer", "backend"),),
    "start_url": (("tools", "computer", "start_url"),),
    "browser_network": (("tools", "computer", "browser_network"),),
    "browser_allow": (("tools", "computer", "browser_allow"),),
    "browser_deny": (("tools", "computer", "browser_deny"),),
    "browser_max_download": (("tools", "computer", "max_download_bytes"),),
    "browser_max_downloads": (("tools", "computer", "max_downloads"),),
    "browser_max_download_total": (("tools", "computer", "max_session_download_bytes"),),
    "display_size": (
        ("tools", "computer", "display_width"),
        ("tools", "computer", "display_height"),
    ),
    "computer_tool": (("tools", "computer", "tool"),),
    "ack_safety_checks": (("tools", "computer", "ack_safety_checks"),),
    "computer_app": (("tools", "computer", "apps"),),
    "computer_wm": (("tools", "computer", "window_manager"),),
    "workspace": (("tools", "sandbox", "workspace"),),
    "sandbox": (("tools", "sandbox", "kind"),),
    "image": (("tools", "sandbox", "image"),),
    "timeout": (("tools", "command_timeout_s"),),
    "output_limit": (("tools", "output_limit"),),
    "network": ((*_OPTIONS, "network"),),
    "env": ((*_OPTIONS, "env"),),
    "writable": ((*_OPTIONS, "writable_paths"),),
    "hide": ((*_OPTIONS, "hidden_paths"),),
    "cpu_time": ((*_OPTIONS, "cpu_time_s"),),
    "max_file_size": ((*_OPTIONS, "max_file_size"),),
    "max_procs": ((*_OPTIONS, "max_processes"),),
    "memory": ((*_OPTIONS, "memory_bytes"),),
    "cpus": ((*_OPTIONS, "cpus"),),
    "max_workspace_size": ((*_OPTIONS, "max_workspace_bytes"),),
}


def _resumed_config(recorded: dict[str, Any], flags: RunConfig, given: Iterable[str]) -> RunConfig:
    """The recorded settings, with the parts that flags given again set replaced."""
    from .config import from_record

    merged = copy.deepcopy(recorded)
    current = flags.model_dump(mode="json")
    for dest in sorted(given):
        for path in FLAG_PATHS.get(dest, ()):
            old, new = _get(merged, path), _get(current, path)
            if old != new:
                _set(merged, path, new)
                print(
                    f"itemloop: --resume: {'.'.join(path)} is {_show(new)} "
                    f"(the session had {_show(old)}): given again on the command line",
                    file=sys.stderr,
                )
    return from_record(merged)


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _terminal_approver() -> Approver | None:
    """Ask at the terminal when a person is there; else None: the run pauses."""
    if sys.stdin.isatty() and sys.stderr.isatty():
        from .terminal_approver import TerminalApprover

        return TerminalApprover()
    return None


async def _deny_unattended(request: ApprovalRequest) -> Approval:
    """`itemloop exec` with no terminal: nobody to ask, so an `ask` is a denial."""
    from .approvals import Approval

    return Approval(
        False,
        by=request.asked_by,
        reason="it needs approval and itemloop exec has nobody to ask (no terminal); "
        "allow it with a rule in --policy FILE, or run with --approval never",
    )


async def _exec_in_session(
    args: argparse.Namespace, config: ToolsetConfig, calls: list[Item]
) -> int:
    """`exec --session FILE`: the calls join the journal and are answered as a resumed
    run answers what it finds unanswered — a saved output is printed, a started call
    is not run again, a paused one waits for its decision (exit 4) — by a run of no
    model turn. Running it again, with no new calls, answers what was decided."""
    from .policy_gate import PolicyGate, load_policy
    from .scripted import ScriptedModel
    from .session import SessionStore

    store = SessionStore(args.session)
    known = {call_id_of(i) for i in store.load().items if is_call(i)}
    new = [c for c in calls if call_id_of(c) not in known]
    store.append(new)
    store.close()
    toolset = Toolset(config)
    rt = Runtime(
        ScriptedModel([], name="exec"),  # never asked: the run has no model turn
        toolset,
        max_turns=0,
        session=args.session,
        gate=PolicyGate(load_policy(config), toolset),
        approver=_terminal_approver(),
    )
    async with rt:
        before = len(rt.history)
        final = await rt.run_until_done(None)
        answered = rt.history[before:]
    for out in answered:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if final.reason == "needs_approval":
        ProgressPrinter(session=args.session)(final)
        return 4
    return 0


# -- itemloop approvals | approve | deny ------------------------------------------------


async def _approvals(args: argparse.Namespace) -> int:
    from .session import SessionStore

    waiting = SessionStore(args.session).load().waiting()
    if not waiting:
        print(f"nothing waits for a decision in {args.session}", file=sys.stderr)
        return 0
    for request in waiting:
        if args.json:
            print(json.dumps(request, ensure_ascii=False))
        else:
            print(
                f"{request.get('call_id')}  {request.get('name')}  (asked by {request.get('asked_by')})"
            )
            for line in str(request.get("show", "")).splitlines():
                print(f"    {line}")
    return 0


async def _decide(args: argparse.Namespace) -> int:
    from .approvals import Approval, decide_in_session

    if not args.all and not args.call_ids:
        raise CliError(f"{args.command}: name the CALL_IDs to decide on, or --all")
    approve = args.command == "approve"
    decision = Approval(
        approve=approve, by=args.by, reason=args.reason, always=getattr(args, "always", False)
    )
    decided = decide_in_session(args.session, None if args.all else args.call_ids, decision)
    verb = "approved" if approve else "denied"
    for cid in decided:
        print(f"{verb} {cid}", file=sys.stderr)
    if decided:
        print(
            f"continue the run with: itemloop run --session {args.session} --resume",
            file=sys.stderr,
        )
    return 0


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
            args.workspace = Path(tmp)
        sandbox = _sandbox_config(args)
        print(
            f"itemloop demo: scripted model, {sandbox.kind} sandbox, workspace {sandbox.workspace}",
            file=sys.stderr,
        )
        config = ToolsetConfig(
            builtins=("shell", "local_shell", "apply_patch"),
            sandbox=sandbox,
            **{
                k: v
                for k, v in {
                    "command_timeout_s": args.timeout,
                    "output_limit": args.output_limit,
                }.items()
                if v is not None
            },
        )
        toolset = Toolset(
            config,
            functions=[demo_tools.word_count, demo_tools.weather],
            custom=[custom_tool(demo_tools.shout, description="Upper-cases free-form text.")],
        )
        async with Runtime(model, toolset) as rt:
            return await _drive(rt, "Show me what you can do.", _printer(args))
    return 1


# -- itemloop batch ------------------------------------------------------------------


async def _batch(args: argparse.Namespace) -> int:
    from .batch_cli import batch_command

    return await batch_command(args)


# -- itemloop exec -------------------------------------------------------------------


def read_items(text: str) -> tuple[list[Item], list[str]]:
    """Items from JSON lines, or one JSON document (a Response, a list of items, or
    one item, pretty-printed or not); and a message per input that is not an item."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")) and "\n" in stripped:
        try:
            whole = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
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
        except RecursionError:
            errors.append(f"line {lineno}: JSON nested too deeply to read")
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
    calls = [i for i in items if is_call(i)]
    unknown = [i for i in items if is_unknown_call(i)]
    for item in unknown:
        print(
            f"itemloop exec: {item['type']} is not a call type itemloop executes "
            f"(it executes: {', '.join(KINDS)}); not answered",
            file=sys.stderr,
        )
    for note in ensure_call_ids(calls):
        print(f"itemloop exec: {note}", file=sys.stderr)
    from .policy_gate import PolicyGate, load_policy

    config = toolset_config(args)
    policy = load_policy(config)
    if args.session is not None:
        return await _exec_in_session(args, config, calls) or (2 if errors or unknown else 0)
    async with Toolset(config) as toolset:
        dispatcher = Dispatcher(
            toolset,
            gate=PolicyGate(policy, toolset),
            approver=_terminal_approver() or _deny_unattended,
        )
        outputs = await dispatcher.run(calls, lambda e: None)
    for out in outputs:
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 2 if errors or unknown else 0
