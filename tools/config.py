"""`ToolsetConfig`: which tools a run offers and what they run on, as plain data.

One schema for every place a toolset is described: the command line builds
one from its flags, a session journal records one so `--resume` can rebuild
the same tools, a batch task line or a configuration file is one as JSON.
It is a pydantic model (unknown keys are refused, with the path of the bad
field in the message) holding only data: Python functions and objects the
library caller builds (custom tools, executors, a computer) are given to the
`Toolset` beside it, never stored in it.

Defaults live with the concept they belong to (the sandbox's limits in
`SandboxOptions`, MCP timeouts in `McpServer`, the browser's download limits
in `browser_files.py`, the command timeout in `defaults.py`); this module only
gathers them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import pydantic

from itemloop.sandbox.base import SandboxOptions
from itemloop.sandbox.browser_files import (
    MAX_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOADS,
)
from itemloop.sandbox.net_policy import DEFAULT_NETWORK_MODE, NetworkMode, NetworkPolicy

from .defaults import (
    DEFAULT_BUILTINS,
    DEFAULT_COMMAND_TIMEOUT_S,
    DEFAULT_DEFER_ABOVE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_OUTPUT_CHARS,
    DEFAULT_TOOL_TIMEOUT_S,
    BuiltinTool,
)
from .mcp_config import McpServer

SANDBOX_TOOLS: Final[frozenset[str]] = frozenset({"shell", "local_shell", "apply_patch"})
"""The built-in tools that run in the sandbox; `computer` drives a `Computer` instead."""


class _Data(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class SandboxConfig(_Data):
    """Where commands run and which directory is the workspace."""

    kind: Literal["local", "docker", "host"] = "local"
    image: str | None = None
    """The Docker image, for `kind="docker"`."""
    workspace: Path = Path(".")
    options: SandboxOptions = SandboxOptions()


class ComputerConfig(_Data):
    """The screen `computer_call`s act on (when `computer` is among the built-ins)."""

    backend: Literal["browser", "xvfb"] = "browser"
    start_url: str = "about:blank"
    """The browser's first page."""
    browser_network: NetworkMode = DEFAULT_NETWORK_MODE
    """What browser pages may reach (`sandbox/net_policy.py`): none, public addresses, all."""
    browser_allow: tuple[str, ...] = ()
    """Only these hosts (globs) for pages; empty: any the network mode lets through."""
    browser_deny: tuple[str, ...] = ()
    """Never these hosts (globs) for pages."""
    max_download_bytes: int = pydantic.Field(default=MAX_DOWNLOAD_BYTES, ge=0)
    """The most one download a page starts may be; a bigger one is cancelled."""
    max_downloads: int = pydantic.Field(default=MAX_SESSION_DOWNLOADS, ge=0)
    """Downloads the browser saves in a session; 0: none (each is cancelled at once)."""
    max_session_download_bytes: int = pydantic.Field(default=MAX_SESSION_DOWNLOAD_BYTES, ge=0)
    """The session's saved downloads together, in bytes."""
    display_width: int = pydantic.Field(default=1024, gt=0)
    display_height: int = pydantic.Field(default=768, gt=0)
    tool: Literal["auto", "computer", "computer_use_preview"] = "auto"
    """The tool type offered; `auto` picks by the model's name."""
    ack_safety_checks: bool = False
    """Acknowledge the model's pending safety checks; off: such calls are not run."""
    apps: tuple[str, ...] = ()
    """Shell command lines started on the X display when the session starts (`xvfb`)."""
    window_manager: str | None = None
    """The window manager's command line on the X display (`xvfb`; None: none)."""

    @pydantic.model_validator(mode="after")
    def _valid_policy(self) -> ComputerConfig:
        _ = self.browser_policy  # refuses a malformed host pattern here
        return self

    @property
    def browser_policy(self) -> NetworkPolicy:
        return NetworkPolicy.of(self.browser_network, self.browser_allow, self.browser_deny)


class ToolsetConfig(_Data):
    """Every tool of a run, as data."""

    builtins: tuple[BuiltinTool, ...] = DEFAULT_BUILTINS
    """Built-in tools to offer (`--tools`)."""
    functions: tuple[Path, ...] = ()
    """Python files whose public functions (or `__all__`) are offered as function tools."""
    mcp_servers: tuple[McpServer, ...] = ()
    mcp_namespaces: bool = False
    """Offer each MCP server's tools as a namespace named after it (else `SERVER__TOOL`)."""
    mcp_defer: tuple[str, ...] = ()
    """MCP servers whose tools are deferred, found through tool search (`*`: every one)."""
    defer_above: int | None = pydantic.Field(default=DEFAULT_DEFER_ABOVE, ge=0)
    """Defer every MCP tool when there are more function and MCP tools than this (None: never)."""
    policy: Path | None = None
    """The approval policy file (TOML; see `tools/policy`)."""
    approval: Literal["never", "untrusted", "on-request"] | None = None
    """The preset: overrides the policy file's; None: the file's, else `never`
    inside local/docker and `untrusted` on host."""
    approve_mcp: tuple[str, ...] = ()
    """Hosted MCP servers whose approval requests are approved (`*`: any); others are denied."""
    tool_timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S
    """Per function or custom tool call."""
    command_timeout_s: float = pydantic.Field(default=DEFAULT_COMMAND_TIMEOUT_S, ge=0)
    """Per shell command, when the call does not say."""
    output_limit: int = pydantic.Field(default=DEFAULT_OUTPUT_CHARS, ge=0)
    """Per call's output to the model, in characters: a shell command's stdout+stderr, or
    a function, custom or MCP tool's text (head and tail kept; see `output_cap.py`)."""
    max_concurrency: int = pydantic.Field(default=DEFAULT_MAX_CONCURRENCY, ge=1)
    max_patch_file_bytes: int = pydantic.Field(default=DEFAULT_MAX_FILE_BYTES, gt=0)
    """The largest file apply_patch reads to edit."""
    sandbox: SandboxConfig = SandboxConfig()
    computer: ComputerConfig = ComputerConfig()

    @pydantic.field_validator("builtins")
    @classmethod
    def _unique_builtins(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(names))

    @property
    def needs_sandbox(self) -> bool:
        return any(n in SANDBOX_TOOLS for n in self.builtins)
