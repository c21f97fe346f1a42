"""`Toolset`: every tool of a run, assembled once, with the lifetimes of what they need.

    config = ToolsetConfig(builtins=("shell", "apply_patch"), sandbox=SandboxConfig(workspace=Path(".")))
    async with Toolset(config, functions=[get_weather]) as tools:
        tools.definitions()                # what the model is sent
        tools.executor_for(call)           # who answers a call (None: no such tool)

Built from a `ToolsetConfig` (plain data) plus the Python objects a library
caller has (functions, custom tools, extra executors, a sandbox or computer it
built itself). `Runtime`, `itemloop exec`, `itemloop tools` and the demo all
build their tools here, so a setting means the same everywhere.

On enter it starts what the tools need — MCP servers, the sandbox, the
computer — and on exit stops them in reverse order; what it was given it owns
all the same (a sandbox passed in is entered and closed here). A failure
while starting stops what had started and raises.

Routing: named calls (`function_call`, `custom_tool_call`) go by name to the
executor whose definitions name the tool; every other call type goes to the
one executor that answers it. Two tools with one name, or two executors for
one call type, are a `ValueError` at enter. A call nothing answers gets
`unknown_tool_message`: what was called, what it is not, and every tool the
model may call, by the name it would use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import anyio.abc

from itemloop.sandbox.base import Sandbox

from .base import Executor, check_unique_names
from .config import ToolsetConfig
from .custom import CustomExecutor, CustomTool
from .function import FunctionExecutor, FunctionTool, load_functions_file
from .items import KINDS, Item, kind_for_tool, kind_of
from .mcp_approval import McpApprovalExecutor, approve_servers

if TYPE_CHECKING:
    from itemloop.sandbox.computer import Computer
    from itemloop.sandbox.desktop_display import DesktopDisplay

    from .mcp import McpTools
    from .policy import Grants
    from .search.index import ToolIndex, ToolKey

FunctionLike = FunctionTool | Callable[..., Any]
_R = TypeVar("_R", bound=AbstractAsyncContextManager[Any])


class Toolset:
    def __init__(
        self,
        config: ToolsetConfig | None = None,
        *,
        functions: Sequence[FunctionLike] = (),
        function_groups: Mapping[str, tuple[str, Sequence[FunctionLike]]] | None = None,
        custom: Sequence[CustomTool] = (),
        executors: Sequence[Executor] = (),
        hosted: Sequence[Item] = (),
        sandbox: Sandbox | None = None,
        sandbox_started: bool = False,
        computer: Computer | None = None,
        model_name: str = "",
        describe_only: bool = False,
    ) -> None:
        """`function_groups` maps a namespace name to (its description, its functions).
        `sandbox` and `computer`, when given, replace the ones the config
        describes (and are started and closed here, unless `sandbox_started`
        says the caller already started the sandbox and closes it itself); `hosted` tool definitions (web search, hosted MCP, ...) are
        sent as they are; `model_name` picks the computer tool type on `auto`.
        Without a `config`, the toolset holds only what is given: no built-ins
        and no sandbox unless `sandbox` is.
        With `describe_only`, entering builds every tool but starts only the
        MCP servers (their tools are known only from them): for listing the
        definitions, not for running calls."""
        self.config = config if config is not None else ToolsetConfig(builtins=())
        self._functions = list(functions)
        self._groups = dict(function_groups or {})
        self._custom = list(custom)
        self._extra = list(executors)
        self.hosted = list(hosted)
        self._given_sandbox = sandbox
        self._sandbox_started = sandbox_started
        self._given_computer = computer
        self.model_name = model_name
        self.describe_only = describe_only
        self.sandbox: Sandbox | None = None
        """The sandbox the tools run in, once entered (None when no tool needs one)."""
        self.computer: Computer | None = None
        self.mcp: McpTools | None = None
        self.executors: list[Executor] = []
        self._by_type: dict[str, Executor] = {}
        self._by_name: dict[tuple[str, str, str], Executor] = {}
        """(call type, namespace or "", name) -> the executor of a named tool."""
        self._definitions: list[Item] = []
        self.search: ToolIndex | None = None
        """The deferred tools, when there are any: found through the `tool_search` tool."""
        self.loaded: set[ToolKey] = set()
        """Deferred tools a search has loaded in this run (namespace or None, name)."""
        self._granted: dict[tuple[str, bool, tuple[str, ...]], Executor] = {}
        self._granting = anyio.Lock()
        self._tg: anyio.abc.TaskGroup | None = None
        self._closing = anyio.Event()
        self._stack: AsyncExitStack | None = None

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("this toolset is already started")
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            # Resources started later, from the dispatcher's tasks (granted sandboxes),
            # live in tasks of this group: entered and exited in one task each.
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            closing = anyio.Event()
            self._closing = closing
            stack.callback(closing.set)
            self.executors = await self._start(stack)
            self._route()
        except BaseException:
            # Exit clean, so that what is raised is the error itself, not a group
            # made of it by the task groups of what had started.
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(et, e, tb)

    async def _start(self, stack: AsyncExitStack) -> list[Executor]:
        """Build the executors, starting what they need, in the order of their definitions."""
        c = self.config
        executors: list[Executor] = []
        functions: list[FunctionLike] = list(self._functions)
        for path in c.functions:
            functions += load_functions_file(path)
        if functions:
            executors.append(FunctionExecutor(functions, default_timeout_s=c.tool_timeout_s))
        for name, (description, group) in self._groups.items():
            executors.append(
                FunctionExecutor(
                    group,
                    default_timeout_s=c.tool_timeout_s,
                    namespace=name,
                    namespace_description=description,
                )
            )
        if c.mcp_servers:
            from .mcp import McpTools  # the mcp package is a large import

            self.mcp = await stack.enter_async_context(
                McpTools(c.mcp_servers, namespaces=c.mcp_namespaces)
            )
            executors.append(self.mcp)
        if self._custom:
            executors.append(CustomExecutor(self._custom, default_timeout_s=c.tool_timeout_s))
        desktop = self._desktop_display(stack)
        if self._given_sandbox is not None and self._sandbox_started:
            self.sandbox = self._given_sandbox  # the caller's to close
        elif c.needs_sandbox or self._given_sandbox is not None:
            self.sandbox = await self._start_it(stack, self._sandbox(desktop))
        for name in c.builtins:
            if name == "computer":
                executors.append(await self._computer_executor(stack, desktop))
            else:
                assert self.sandbox is not None
                executors.append(_sandbox_executor(name, self.sandbox, c))
        executors.append(McpApprovalExecutor(_approval_policy(c.approve_mcp)))
        return executors + self._extra

    async def _start_it(self, stack: AsyncExitStack, resource: _R) -> _R:
        return resource if self.describe_only else await stack.enter_async_context(resource)

    def _sandbox(self, desktop: DesktopDisplay | None = None) -> Sandbox:
        if self._given_sandbox is not None:
            return self._given_sandbox
        from itemloop.sandbox import open_sandbox

        s = self.config.sandbox
        options = s.options if desktop is None else desktop.sandbox_options(s.options)
        return open_sandbox(s.kind, s.workspace.resolve(), options, image=s.image)

    def _desktop_display(self, stack: AsyncExitStack) -> DesktopDisplay | None:
        """The X display's host side, when it is to live in the session's sandbox: an
        `xvfb` computer, and a `local` sandbox started here (it must start with the
        display's variables and directory). Else the display gets a sandbox of its own."""
        c = self.config
        if (
            "computer" not in c.builtins
            or c.computer.backend != "xvfb"
            or self._given_computer is not None
            or self._given_sandbox is not None
            or not c.needs_sandbox
            or c.sandbox.kind != "local"
            or self.describe_only
        ):
            return None
        from itemloop.sandbox.desktop_display import DesktopDisplay

        desktop = DesktopDisplay(network=c.sandbox.options.network)
        stack.callback(desktop.close)  # the computer closes it too; twice is harmless
        return desktop

    async def _computer_executor(
        self, stack: AsyncExitStack, desktop: DesktopDisplay | None = None
    ) -> Executor:
        from .computer import ComputerExecutor, acknowledge_all

        c = self.config.computer
        computer = self._given_computer
        if computer is None:
            if c.backend == "xvfb":
                from itemloop.sandbox.xvfb_computer import XvfbComputer

                shared = desktop is not None and self.sandbox is not None
                computer = XvfbComputer(
                    c.display_width,
                    c.display_height,
                    sandbox=self.sandbox if shared else None,
                    display=desktop if shared else None,
                    workspace=self.config.sandbox.workspace.resolve(),
                    apps=c.apps,
                    window_manager=c.window_manager,
                )
            else:
                from itemloop.sandbox.browser_computer import BrowserComputer

                computer = BrowserComputer(
                    c.display_width,
                    c.display_height,
                    start_url=c.start_url,
                    workspace=self.config.sandbox.workspace.resolve(),
                    policy=c.browser_policy,
                    max_download_bytes=c.max_download_bytes,
                    max_downloads=c.max_downloads,
                    max_session_download_bytes=c.max_session_download_bytes,
                    hidden_paths=self.config.sandbox.options.hidden_paths,
                )
        self.computer = await self._start_it(stack, computer)
        return ComputerExecutor(
            self.computer,
            tool_type=computer_tool_type(c.tool, self.model_name),
            acknowledge_safety_checks=acknowledge_all if c.ack_safety_checks else None,
        )

    async def granted(self, call: Item, grants: Grants) -> Executor | None:
        """The executor for a call a policy rule granted sandbox permissions (network,
        extra writable paths): a sandbox tool runs it in a second sandbox over the same
        workspace that has them (the session's sandbox keeps one network namespace for
        its whole life), started on first use and kept for the toolset's lifetime.
        Other tools run as usual: grants mean nothing to them."""
        base = self.executor_for(call)
        name = _BUILTIN_OF_CALL.get(str(call.get("type")))
        if base is None or name is None or self._tg is None:
            return base
        key = (name, grants.network, tuple(grants.writable))
        async with self._granting:
            executor = self._granted.get(key)
            if executor is None:
                sandbox = await self._tg.start(self._hold, self._sandbox_with(grants))
                executor = _sandbox_executor(name, sandbox, self.config)
                self._granted[key] = executor
        return executor

    async def _hold(self, sandbox: Sandbox, *, task_status: anyio.abc.TaskStatus[Sandbox]) -> None:
        """Run `sandbox` until the toolset closes (one task enters and exits it)."""
        async with sandbox:
            task_status.started(sandbox)
            await self._closing.wait()

    def _sandbox_with(self, grants: Grants) -> Sandbox:
        import dataclasses
        import os

        from itemloop.sandbox import open_sandbox
        from itemloop.sandbox.hidden import inside

        s = self.config.sandbox
        # A grant inside the workspace or a writable path is writable already; the
        # sandbox refuses writable paths that nest (`check_writable_paths`).
        roots = [os.path.realpath(r) for r in (str(s.workspace), *s.options.writable_paths)]
        writable = [
            os.path.expanduser(p)
            for p in grants.writable
            if not any(inside(os.path.realpath(os.path.expanduser(p)), r) for r in roots)
        ]
        options = dataclasses.replace(
            s.options,
            network=s.options.network or grants.network,
            writable_paths=(*s.options.writable_paths, *writable),
        )
        return open_sandbox(s.kind, s.workspace.resolve(), options, image=s.image)

    @property
    def notices(self) -> list[str]:
        """What a person should know about the tools: MCP servers skipped at start, the
        sandbox's and the computer's own notices (which protections hold, docker's exec
        path and its cost, what browser pages may reach)."""
        notes = list(self.mcp.warnings) if self.mcp is not None else []
        notes += getattr(self.sandbox, "notices", ())
        return notes + list(getattr(self.computer, "notices", ()))

    # -- routing ---------------------------------------------------------------

    def _route(self) -> None:
        by_type: dict[str, Executor] = {}
        by_name: dict[tuple[str, str, str], Executor] = {}
        definitions: list[Item] = []
        deferred: list[Item] = []
        defer_mcp = self._defer_mcp()
        for ex in self.executors:
            defs = ex.definitions()
            for d in defs:
                is_mcp = ex is self.mcp
                if d.get("defer_loading") or (is_mcp and defer_mcp(d)):
                    deferred.append({k: v for k, v in d.items() if k != "defer_loading"})
                else:
                    definitions.append(d)
            for t in ex.item_types:
                kind = KINDS.get(t)
                if kind is not None and kind.named:
                    for namespace, d in _named_tools(defs):
                        if kind_for_tool(str(d.get("type"))) is kind:
                            by_name[(t, namespace, str(d.get("name", "")))] = ex
                elif t in by_type:
                    raise ValueError(
                        f"two executors answer {t} items: {type(by_type[t]).__name__} and "
                        f"{type(ex).__name__}"
                    )
                else:
                    by_type[t] = ex
        if deferred:
            from .search.executor import ToolSearchExecutor
            from .search.index import ToolIndex

            self.search = ToolIndex(deferred)
            searcher = ToolSearchExecutor(self.search, self.loaded.update)
            self.executors.append(searcher)
            by_type["tool_search_call"] = searcher
            definitions += searcher.definitions()
        definitions += self.hosted
        check_unique_names(definitions + deferred)
        self._by_type, self._by_name, self._definitions = by_type, by_name, definitions

    def _defer_mcp(self) -> Callable[[Item], bool]:
        """Which MCP tool definitions are deferred: by server, or all above the threshold."""
        c = self.config
        if self.mcp is None:
            return lambda d: False
        count = sum(len(d.get("tools", ())) or 1 for ex in self.executors for d in ex.definitions())
        if "*" in c.mcp_defer or (c.defer_above is not None and count > c.defer_above):
            return lambda d: True
        servers = set(c.mcp_defer)
        server_of = {name: conn.server.name for (_, name), (conn, _) in self.mcp.routes.items()}
        return lambda d: (
            (d.get("name") if d.get("type") == "namespace" else server_of.get(str(d.get("name"))))
            in servers
        )

    def definitions(self) -> list[Item]:
        """The tool definitions sent to the model up front, in a stable order
        (deferred tools are left out: the `tool_search` tool finds them)."""
        if self._stack is None and not self._definitions:
            raise RuntimeError("enter the toolset (`async with Toolset(...)`) before using it")
        return list(self._definitions)

    def definitions_for(self, history: Sequence[Item]) -> list[Item]:
        """The definitions for a request with `history`: those sent up front, and the
        deferred tools a search loaded whose `tool_search_output` is no longer in the
        history (compaction removed it, or the run resumed from a journal)."""
        if self.search is None or not self.loaded:
            return self.definitions()
        from .search.call import keys_of

        present: set[ToolKey] = set()
        for item in history:
            if item.get("type") == "tool_search_output":
                present.update(keys_of(item.get("tools") or []))
        missing = [k for k in self.loaded if k not in present and k in self.search]
        return self.definitions() + self.search.definitions(sorted(missing, key=str))

    def executor_for(self, call: Item) -> Executor | None:
        """The executor that answers `call`; None when no tool of this run does."""
        kind = kind_of(call)
        if kind is None:
            return None
        if kind.named:
            key = (kind.call_type, str(call.get("namespace") or ""), str(call.get("name", "")))
            return self._by_name.get(key)
        return self._by_type.get(kind.call_type)

    def unknown_tool_message(self, call: Item) -> str:
        """The answer to a call no tool of this run takes, listing what the model may call."""
        kind = kind_of(call)
        t = str(call.get("type"))
        label = f"{kind.tool_types[0]} tool" if kind is not None else t
        offered = self._offered()
        if kind is not None and kind.named:
            name = str(call.get("name", ""))
            namespace = call.get("namespace")
            where = f" in namespace {namespace!r}" if namespace else ""
            msg = f"error: there is no {label} named {name!r}{where}"
            other = offered.get(name)
            if other is not None:
                msg += f"; {name!r} is {other}, not a {label}"
        else:
            msg = f"error: the {label} is not enabled in this run"
        listing = ", ".join(
            name if what.startswith("the built-in") else f"{name} ({what.removeprefix('a ')})"
            for name, what in offered.items()
        )
        return f"{msg}. Tools you can call: {listing or '(none)'}"

    def _offered(self) -> dict[str, str]:
        """Every tool the model may call, by the name it would use -> what it is."""
        offered: dict[str, str] = {}
        for namespace, d in _named_tools(self._definitions):
            tool_type = str(d.get("type", ""))
            if namespace:
                offered.setdefault(f"{namespace}.{d.get('name')}", f"a {tool_type} tool")
                continue
            if tool_type == "tool_search" and self.search is not None:
                offered.setdefault("tool_search", f"finds {len(self.search)} more tools")
                continue
            kind = kind_for_tool(tool_type)
            if kind is not None and kind.named:
                offered.setdefault(str(d.get("name", "")), f"a {tool_type} tool")
            elif kind is not None:
                offered.setdefault(tool_type, f"the built-in {tool_type} tool")
            else:  # hosted: web_search, file_search, mcp, ...
                name = d.get("server_label") or d.get("name") or tool_type
                offered.setdefault(str(name), f"a hosted {tool_type} tool")
        return offered


_BUILTIN_OF_CALL = {
    "shell_call": "shell",
    "local_shell_call": "local_shell",
    "apply_patch_call": "apply_patch",
}
"""The sandbox tools, by the call type they answer (what grants apply to)."""


def _named_tools(defs: Sequence[Item]) -> list[tuple[str, Item]]:
    """(namespace or "", definition) of every tool in `defs`, namespaces opened up."""
    out: list[tuple[str, Item]] = []
    for d in defs:
        if d.get("type") == "namespace":
            for inner in d.get("tools") or ():
                if isinstance(inner, dict):
                    out.append((str(d.get("name", "")), inner))
        else:
            out.append(("", d))
    return out


def _sandbox_executor(name: str, sandbox: Sandbox, c: ToolsetConfig) -> Executor:
    if name == "shell":
        from .shell import ShellExecutor

        return ShellExecutor(
            sandbox, default_timeout_s=c.command_timeout_s, default_output_limit=c.output_limit
        )
    if name == "local_shell":
        from .local_shell import LocalShellExecutor

        return LocalShellExecutor(
            sandbox, default_timeout_s=c.command_timeout_s, default_output_limit=c.output_limit
        )
    from .apply_patch import ApplyPatchExecutor

    return ApplyPatchExecutor(sandbox, max_file_bytes=c.max_patch_file_bytes)


def _approval_policy(servers: Sequence[str]) -> Callable[[Item], bool] | None:
    if not servers:
        return None
    return approve_servers(None if "*" in servers else set(servers))


def computer_tool_type(choice: str, model_name: str) -> Any:
    """`computer_use_preview` for the computer-use-preview models, `computer` for newer ones."""
    if choice != "auto":
        return choice
    return "computer_use_preview" if model_name.startswith("computer-use") else "computer"
