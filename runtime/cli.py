"""The `itemloop` command line: run, exec, demo, tools, batch.

Heavy imports (openai, docker, pydantic models) happen inside the commands, so
`itemloop --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# Light modules only: `itemloop --help` must stay fast.
from itemloop.sandbox.browser_files import (
    MAX_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOADS,
)
from itemloop.sandbox.desktop_display import DEFAULT_WINDOW_MANAGER
from itemloop.tools.defaults import (
    DEFAULT_BUILTINS,
    DEFAULT_COMMAND_TIMEOUT_S,
    DEFAULT_DEFER_ABOVE,
    DEFAULT_OUTPUT_CHARS,
    DEFAULT_TOOL_TIMEOUT_S,
)

from .defaults import (
    DEFAULT_MAX_TURNS,
    DEFAULT_MODEL,
    DEFAULT_MODEL_MAX_TIME_S,
    DEFAULT_MODEL_TIMEOUT_S,
    default_model,
)

EPILOG = """\
sandboxes:
  local   bubblewrap (default): host filesystem read-only, workspace writable,
          private /tmp, no network, no inherited secrets. Needs the `bwrap`
          binary (Debian: apt-get install bubblewrap) and user namespaces.
  docker  one container per session from --image, network none, on a local
          engine. Any image of this machine's architecture, even without a
          shell or on musl, gets the fast path (~1.5 ms a command).
  host    plain subprocesses on the host, unconfined: only when asked for.

MCP servers (--mcp-stdio, --mcp-http) are programs you chose: they run on the
host as you, outside the sandbox, with only HOME, LOGNAME, PATH, SHELL, TERM,
USER and what --mcp-env gives them. Their tools are offered as SERVER__TOOL.

examples:
  itemloop demo
  OPENAI_API_KEY=... itemloop run "fix the failing test" --workspace .
  itemloop run "hi" --script turns.jsonl --sandbox host
  echo '{"type":"shell_call","call_id":"c1","action":{"commands":["ls"]}}' | itemloop exec
"""


def _add_sandbox_flags(
    p: argparse.ArgumentParser, workspace_default: str = "the current directory"
) -> None:
    g = p.add_argument_group("sandbox")
    g.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help=f"workspace directory (default: {workspace_default})",
    )
    g.add_argument(
        "--sandbox",
        choices=("local", "docker", "host"),
        default="local",
        help="where commands run (default: local, i.e. bubblewrap)",
    )
    g.add_argument("--image", default=None, help="Docker image for --sandbox docker")
    g.add_argument("--network", action="store_true", help="allow network access (off by default)")
    g.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for commands (repeatable; KEY alone passes the host's value)",
    )
    g.add_argument(
        "--writable",
        action="append",
        default=[],
        metavar="PATH",
        help="extra host path commands may write (repeatable)",
    )
    g.add_argument(
        "--hide",
        action="append",
        default=[],
        metavar="PATH",
        help="host path commands must not see, besides ~/.ssh, ~/.aws and other "
        "credential locations, which are always hidden (repeatable; local and docker)",
    )
    g.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"default timeout of one shell command (default: {DEFAULT_COMMAND_TIMEOUT_S:g})",
    )
    g.add_argument(
        "--output-limit",
        type=int,
        default=None,
        metavar="CHARS",
        help="cap on one call's output to the model: a shell command's, or a function, "
        "custom or MCP tool's; head and tail kept, a JSON value never cut "
        f"(default: {DEFAULT_OUTPUT_CHARS})",
    )
    g.add_argument(
        "--cpu-time",
        type=int,
        default=None,
        metavar="SECONDS",
        help="CPU-time limit per command (rlimit; default: none)",
    )
    g.add_argument(
        "--max-file-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest file a command may write (default: 8 GiB)",
    )
    g.add_argument(
        "--max-procs",
        type=int,
        default=None,
        metavar="N",
        help="process limit of the sandbox (local: its cgroup's, as root; docker: the "
        "container's PIDs limit; default: 4096)",
    )
    g.add_argument(
        "--memory",
        type=int,
        default=None,
        metavar="BYTES",
        help="memory limit of the sandbox, its tmpfs mounts included (local: its cgroup's, "
        "as root; docker: the container's; default: 4 GiB)",
    )
    g.add_argument(
        "--cpus",
        type=float,
        default=None,
        metavar="N",
        help="CPU limit of the sandbox (local: its cgroup's, as root; docker: the "
        "container's; default: 2)",
    )
    g.add_argument(
        "--max-workspace-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="stop commands once the workspace, the writable paths and the deleted files "
        "commands hold open grow past BYTES, each file or link costing at least 4 KiB (local; "
        "measured while any command or its background process runs, not reserved on disk; "
        "default: no limit)",
    )


def _add_approval_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("approvals")
    g.add_argument(
        "--policy",
        type=Path,
        default=None,
        metavar="FILE",
        help="approval policy (TOML): which calls run, ask or are denied "
        "(never read from where the sandbox can write)",
    )
    g.add_argument(
        "--approval",
        choices=("never", "untrusted", "on-request"),
        default=None,
        help="never: run every call; untrusted: only known read-only commands run "
        "without asking; on-request: all but the policy's allow rules ask "
        "(default: the policy file's, else never, or untrusted with --sandbox host)",
    )


def _add_computer_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("computer use (--tools computer)")
    g.add_argument(
        "--computer",
        choices=("browser", "xvfb"),
        default="browser",
        help="a headless Chromium page (default) or an X display (Xvfb + xdotool)",
    )
    g.add_argument("--start-url", default="about:blank", help="the browser's first page")
    g.add_argument(
        "--browser-network",
        choices=("none", "public", "all"),
        default="public",
        help="what browser pages may reach: nothing, public addresses only (default: not "
        "loopback, link-local/metadata, private, CGNAT), or any address",
    )
    g.add_argument(
        "--browser-allow",
        nargs="+",
        action="extend",
        default=[],
        metavar="HOST",
        help="only these hosts (globs: *.example.com) for browser pages; addresses still checked",
    )
    g.add_argument(
        "--browser-deny",
        nargs="+",
        action="extend",
        default=[],
        metavar="HOST",
        help="never these hosts (globs) for browser pages",
    )
    g.add_argument(
        "--browser-max-download",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest download a browser page may save in the workspace's downloads/; a "
        f"bigger one is cancelled (default: {_gib(MAX_DOWNLOAD_BYTES)})",
    )
    g.add_argument(
        "--browser-max-downloads",
        type=int,
        default=None,
        metavar="N",
        help="downloads the browser saves in a session; 0: none, each is cancelled "
        f"(default: {MAX_SESSION_DOWNLOADS})",
    )
    g.add_argument(
        "--browser-max-download-total",
        type=int,
        default=None,
        metavar="BYTES",
        help="the browser's saved downloads of a session together "
        f"(default: {_gib(MAX_SESSION_DOWNLOAD_BYTES)})",
    )
    g.add_argument(
        "--computer-app",
        action="append",
        default=[],
        metavar="CMD",
        help="with --computer xvfb: a shell command line started on the display when the "
        "session starts, in the sandbox (repeatable)",
    )
    g.add_argument(
        "--computer-wm",
        nargs="?",
        const=DEFAULT_WINDOW_MANAGER,
        default=None,
        metavar="CMD",
        help="with --computer xvfb: run a window manager on the display, for focus and "
        f"decorations (default CMD: {DEFAULT_WINDOW_MANAGER})",
    )
    g.add_argument(
        "--display-size", default="1024x768", metavar="WxH", help="screen size (default: 1024x768)"
    )
    g.add_argument(
        "--computer-tool",
        choices=("auto", "computer", "computer_use_preview"),
        default="auto",
        help="tool type offered: computer_use_preview for computer-use-preview models, "
        "computer for newer ones (default: auto, by --model)",
    )
    g.add_argument(
        "--ack-safety-checks",
        action="store_true",
        help="acknowledge the model's pending safety checks (off: such calls are not run)",
    )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):g} GiB"


def _add_tool_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tools")
    g.add_argument(
        "--tools",
        default=",".join(DEFAULT_BUILTINS),
        help="built-in tools to offer: shell, local_shell, apply_patch, computer "
        f"(comma-separated; '' for none; default: {','.join(DEFAULT_BUILTINS)})",
    )
    g.add_argument(
        "--functions",
        type=Path,
        action="append",
        default=[],
        metavar="FILE.py",
        help="offer the public functions defined in FILE.py as function tools",
    )
    g.add_argument(
        "--mcp-stdio",
        action="append",
        default=[],
        metavar="'NAME=COMMAND ARGS'",
        help="offer the tools of an MCP server started as COMMAND (stdio; repeatable)",
    )
    g.add_argument(
        "--mcp-http",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="offer the tools of an MCP server at URL (streamable HTTP; repeatable)",
    )
    g.add_argument(
        "--mcp-env",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE",
        help="environment for stdio server NAME (NAME:KEY copies itemloop's own value)",
    )
    g.add_argument(
        "--mcp-header",
        action="append",
        default=[],
        metavar="'NAME:Header: value'",
        help="HTTP header for MCP server NAME (repeatable)",
    )
    g.add_argument(
        "--mcp-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="timeout of one MCP tool call (default: 300)",
    )
    g.add_argument(
        "--mcp-namespaces",
        action="store_true",
        help="offer each MCP server's tools as a namespace named after it "
        "(default: top-level SERVER__TOOL functions, for servers without namespaces)",
    )
    g.add_argument(
        "--mcp-defer",
        action="append",
        default=[],
        metavar="SERVER",
        help="defer SERVER's tools: the model finds them with the tool_search tool "
        "instead of receiving them with every request ('*' for every server; repeatable)",
    )
    g.add_argument(
        "--defer-above",
        type=int,
        default=DEFAULT_DEFER_ABOVE,
        metavar="N",
        help="defer every MCP tool when a run has more than N function and MCP tools "
        f"(default: {DEFAULT_DEFER_ABOVE}; -1: never)",
    )
    g.add_argument(
        "--approve-mcp",
        action="append",
        default=None,
        metavar="SERVER",
        help="approve hosted MCP tool calls from SERVER ('*' for any)",
    )
    g.add_argument(
        "--tool-timeout",
        type=float,
        default=DEFAULT_TOOL_TIMEOUT_S,
        metavar="SECONDS",
        help=f"timeout of one function or custom tool call (default: {DEFAULT_TOOL_TIMEOUT_S:g})",
    )


def _add_model_flag(g: argparse._ActionsContainer) -> None:
    g.add_argument(
        "--model",
        default=default_model(),
        help=f"model name (default: $ITEMLOOP_MODEL or {DEFAULT_MODEL})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itemloop",
        description="Run the OpenAI Responses API agent loop locally: every tool call "
        "executed for real, inside a sandbox.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the agent loop on a prompt",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("prompt", nargs="?", help="the user's message (optional with --resume)")
    m = run.add_argument_group("model")
    _add_model_flag(m)
    m.add_argument(
        "--base-url",
        default=None,
        help="any Responses-compatible server (default: $OPENAI_BASE_URL or OpenAI); "
        "the key comes from $OPENAI_API_KEY",
    )
    m.add_argument(
        "--script",
        type=Path,
        default=None,
        metavar="FILE",
        help="scripted model: replay turns from a JSON Lines file (offline, no key)",
    )
    m.add_argument("--instructions", default=None, help="system/developer instructions")
    m.add_argument(
        "--model-timeout",
        type=float,
        default=DEFAULT_MODEL_TIMEOUT_S,
        metavar="SECONDS",
        help="limit on connecting to the model server and on its silence "
        f"(default: {DEFAULT_MODEL_TIMEOUT_S:g})",
    )
    m.add_argument(
        "--model-max-time",
        type=float,
        default=DEFAULT_MODEL_MAX_TIME_S,
        metavar="SECONDS",
        help=f"limit on one model request in total (default: {DEFAULT_MODEL_MAX_TIME_S:g})",
    )
    m.add_argument("--no-stream", action="store_true", help="ask for JSON responses instead of SSE")
    m.add_argument(
        "--previous-response-id",
        action="store_true",
        help="stateful mode: store responses server-side and send only new items",
    )
    loop = run.add_argument_group("loop")
    loop.add_argument(
        "--max-turns",
        type=int,
        default=DEFAULT_MAX_TURNS,
        help=f"stop after N model turns (default: {DEFAULT_MAX_TURNS})",
    )
    loop.add_argument(
        "--compact-threshold",
        type=int,
        default=None,
        metavar="TOKENS",
        help="compact the history before a request would reach TOKENS "
        "(default: a fraction of the model's context window)",
    )
    loop.add_argument(
        "--compact-strategy",
        choices=("auto", "remote", "local", "server"),
        default="auto",
        help="how to compact (default: auto)",
    )
    loop.add_argument(
        "--session",
        type=Path,
        default=None,
        metavar="FILE",
        help="journal every item to FILE (JSON Lines)",
    )
    loop.add_argument(
        "--resume", action="store_true", help="continue the session in --session FILE"
    )
    loop.add_argument("--json", action="store_true", help="print events as JSON lines")
    _add_tool_flags(run)
    _add_approval_flags(run)
    _add_computer_flags(run)
    _add_sandbox_flags(run)

    ex = sub.add_parser("exec", help="execute call items from JSON lines; print output items")
    ex.add_argument(
        "--input",
        type=Path,
        default=None,
        metavar="FILE",
        help="read items from FILE instead of stdin (JSON lines, or one Response JSON)",
    )
    ex.add_argument(
        "--session",
        type=Path,
        default=None,
        metavar="FILE",
        help="journal the calls and outputs in FILE; a call that needs approval then "
        "pauses (exit 4) instead of being denied: decide with itemloop approve|deny, "
        "then run exec --session FILE again to answer it",
    )
    _add_tool_flags(ex)
    _add_approval_flags(ex)
    _add_computer_flags(ex)
    _add_sandbox_flags(ex)

    demo = sub.add_parser("demo", help="a scripted session exercising every executor, offline")
    demo.add_argument("--json", action="store_true", help="print events as JSON lines")
    _add_sandbox_flags(demo, workspace_default="a new temporary directory")

    approvals = sub.add_parser(
        "approvals", help="list the calls of a paused run that wait for a decision"
    )
    approvals.add_argument("--session", type=Path, required=True, metavar="FILE")
    approvals.add_argument("--json", action="store_true", help="one JSON object per request")
    for verb, doing in (("approve", "approve"), ("deny", "deny")):
        d = sub.add_parser(verb, help=f"{doing} calls of a paused run (then run --resume)")
        d.add_argument("call_ids", nargs="*", metavar="CALL_ID")
        d.add_argument("--session", type=Path, required=True, metavar="FILE")
        d.add_argument("--all", action="store_true", help=f"{doing} every waiting call")
        d.add_argument("--reason", default=None, help="why (the model reads it)")
        d.add_argument(
            "--by", default="the user", help="who decided, for the journal (default: the user)"
        )
        if verb == "approve":
            d.add_argument(
                "--always",
                action="store_true",
                help="and allow what asked for the rest of the resumed run (a rule for exactly "
                "that command, path, action or tool)",
            )

    tools = sub.add_parser("tools", help="print the tool definitions the model would be sent")
    _add_model_flag(tools)
    _add_tool_flags(tools)
    _add_computer_flags(tools)
    _add_batch_parser(sub)
    return parser


BATCH_EPILOG = """\
a task line is a JSON object: "id", "prompt", optional "setup" and "check"
(lists of shell commands run in the task's sandbox before and after the agent),
and any setting of `itemloop run` in the session's settings schema, e.g.
  {"id": "t1", "prompt": "fix the bug", "script": "t1.jsonl",
   "tools": {"builtins": ["shell"], "sandbox": {"kind": "docker", "image": "python:3.12",
             "workspace": "repos/t1"}},
   "setup": ["pip install -e ."], "check": ["pytest -q"]}
Relative paths are relative to the tasks file. "tools.sandbox.workspace" is copied
for the task; without it the task starts in an empty directory.

Running the same command again skips the tasks with a result, resumes the
unfinished ones from their session files, and starts the rest.
"""


def _add_batch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .batch_defaults import DEFAULT_RAY_MAX_RETRIES

    batch = sub.add_parser(
        "batch",
        help="run many sessions at once from a tasks file, with grading (resumable)",
        epilog=BATCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("tasks", nargs="?", type=Path, metavar="TASKS.jsonl", help="one task a line")
    batch.add_argument(
        "--out", type=Path, default=None, metavar="RESULTS.jsonl", help="results, one a line"
    )
    batch.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help="sessions at once (default: 4 a core, as many as the available memory holds; "
        "with --ray: what the cluster's CPUs hold)",
    )
    batch.add_argument(
        "--sessions",
        type=Path,
        default=None,
        metavar="DIR",
        help="each task's workspace, session and journal (default: RESULTS.sessions beside "
        "--out; with --ray on several nodes: storage they share)",
    )
    batch.add_argument(
        "--summary",
        type=Path,
        default=None,
        metavar="RESULTS.jsonl",
        help="sum up a results file: pass rate, tokens, durations, failures by cause",
    )
    batch.add_argument("--json", action="store_true", help="with --summary: print it as JSON")
    r = batch.add_argument_group("Ray (pip install 'itemloop[ray]')")
    r.add_argument(
        "--ray", action="store_true", help="run the tasks as Ray tasks (a local cluster by default)"
    )
    r.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="the Ray cluster to run on (implies --ray; 'auto': the one `ray start` made here)",
    )
    r.add_argument(
        "--ray-cpus",
        type=int,
        default=None,
        metavar="N",
        help="CPUs of the local cluster started for the run (default: all)",
    )
    r.add_argument(
        "--ray-task-cpus",
        type=float,
        default=1.0,
        metavar="N",
        help="CPUs reserved for each task (default: 1; a fraction shares a core). A task "
        f"whose worker dies is run again up to {DEFAULT_RAY_MAX_RETRIES} times, resuming",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import anyio

    from .commands import CliError, run_command

    args.given = given_options(parser, args.command, sys.argv[1:] if argv is None else argv)
    try:
        status = anyio.run(run_command, args)
    except CliError as e:
        print(f"itemloop: {e}", file=sys.stderr)
        return e.status
    except KeyboardInterrupt:
        print("itemloop: interrupted", file=sys.stderr)
        status = 130
    _exit_past_abandoned_threads(status)
    return status


def given_options(
    parser: argparse.ArgumentParser, command: str, argv: Sequence[str]
) -> frozenset[str]:
    """The `dest` of every option of `command` that `argv` spells out, whatever its value
    (a flag given with its default value is still given: `--resume` then applies it)."""
    sub = next(
        a.choices[command]
        for a in parser._actions  # argparse keeps subparsers here, its only handle on them
        if isinstance(a, argparse._SubParsersAction)
    )
    given: set[str] = set()
    for action in sub._actions:
        for option in action.option_strings:
            if any(t == option or t.startswith(option + "=") for t in argv):
                given.add(action.dest)
    return frozenset(given)


def _exit_past_abandoned_threads(status: int) -> None:
    """A sync tool that overran its timeout keeps its worker thread; the run
    already answered that call, so the process must not wait for it to exit."""
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
