"""`McpServer`: how to reach one MCP server the user named, and the CLI specs for it.

Two transports: stdio (itemloop starts `command args...` as a subprocess and
speaks MCP over its stdin/stdout) and streamable HTTP (a URL).

Security: MCP servers are NOT sandboxed by itemloop. A stdio server is a process
the user configured explicitly; it runs on the host, as the user, with the
user's filesystem and network. What itemloop does limit is its environment: a
stdio server gets only a small safe set of variables (HOME, LOGNAME, PATH,
SHELL, TERM, USER — the `mcp` package's default) plus exactly what `env` names.
In particular `OPENAI_API_KEY` is not passed on unless the user puts it in `env`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "McpServer",
    "McpSpecError",
    "parse_http_spec",
    "parse_stdio_spec",
    "servers_from_cli",
]

_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class McpSpecError(ValueError):
    """A server description that cannot work; the message says what to change."""


@dataclass(frozen=True)
class McpServer:
    """One MCP server: `command` (stdio) or `url` (streamable HTTP), never both.

    `name` prefixes its tools' names (`<name>__<tool>`), so it must be short and
    match `[A-Za-z0-9_-]{1,32}`.
    """

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for a stdio server, over the safe default set (see the module doc)."""
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """HTTP headers sent with every request to `url` (e.g. `Authorization`)."""
    connect_timeout_s: float = 30.0
    """Bound on starting/connecting and listing the server's tools."""
    call_timeout_s: float | None = 300.0
    """Bound on one tool call; `None` for no bound."""
    max_reconnects: int = 1
    """How many times a server whose connection is lost is started/connected again."""
    required: bool = True
    """When False, a server that cannot be reached at start is skipped with a warning."""

    def __post_init__(self) -> None:
        if not _SERVER_NAME.match(self.name):
            raise McpSpecError(
                f"MCP server name {self.name!r} must be 1-32 characters of letters, digits, '_' or '-'"
            )
        if (self.command is None) == (self.url is None):
            raise McpSpecError(
                f"MCP server {self.name!r} needs exactly one of `command` (stdio) or `url` (HTTP)"
            )
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise McpSpecError(
                f"MCP server {self.name!r}: url must start with http:// or https://, got {self.url!r}"
            )
        if self.command is not None and not self.command.strip():
            raise McpSpecError(f"MCP server {self.name!r}: the command is empty")
        if self.connect_timeout_s <= 0:
            raise McpSpecError(f"MCP server {self.name!r}: connect_timeout_s must be > 0")
        if self.call_timeout_s is not None and self.call_timeout_s <= 0:
            raise McpSpecError(f"MCP server {self.name!r}: call_timeout_s must be > 0 or None")
        if self.max_reconnects < 0:
            raise McpSpecError(f"MCP server {self.name!r}: max_reconnects must be >= 0")
        object.__setattr__(self, "args", tuple(self.args))

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """For messages: `stdio: npx -y server` or `http: https://host/mcp` (never headers)."""
        if self.command is not None:
            return "stdio: " + shlex.join([self.command, *self.args])
        return f"http: {self.url}"


def _split_name(spec: str, flag: str) -> tuple[str, str]:
    name, sep, rest = spec.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise McpSpecError(f"{flag} takes NAME=VALUE, got {spec!r}")
    return name.strip(), rest.strip()


def parse_stdio_spec(spec: str) -> McpServer:
    """`--mcp-stdio 'NAME=COMMAND ARGS...'` (the command line shell-quoted) as an `McpServer`."""
    name, command_line = _split_name(spec, "--mcp-stdio")
    try:
        argv = shlex.split(command_line)
    except ValueError as e:
        raise McpSpecError(f"--mcp-stdio {name}: cannot split the command line: {e}") from None
    if not argv:
        raise McpSpecError(f"--mcp-stdio {name}: the command is empty")
    return McpServer(name, command=argv[0], args=tuple(argv[1:]))


def parse_http_spec(spec: str) -> McpServer:
    """`--mcp-http NAME=URL` as an `McpServer`."""
    name, url = _split_name(spec, "--mcp-http")
    return McpServer(name, url=url)


def servers_from_cli(
    stdio: Sequence[str] = (),
    http: Sequence[str] = (),
    env: Sequence[str] = (),
    headers: Sequence[str] = (),
    *,
    call_timeout_s: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[McpServer]:
    """The servers named by the CLI flags.

    `--mcp-stdio 'NAME=COMMAND ARGS'`, `--mcp-http NAME=URL`, and per server
    `--mcp-env NAME:KEY=VALUE` (or `NAME:KEY`, which copies KEY from itemloop's
    own environment — the only way a stdio server sees e.g. an API key) and
    `--mcp-header 'NAME:Header: value'`. `--mcp-timeout SECONDS` bounds each call.
    """
    environ = os.environ if environ is None else environ
    servers = [parse_stdio_spec(s) for s in stdio] + [parse_http_spec(s) for s in http]
    by_name: dict[str, McpServer] = {}
    for s in servers:
        if s.name in by_name:
            raise McpSpecError(f"two MCP servers are named {s.name!r}")
        by_name[s.name] = s
    extra_env: dict[str, dict[str, str]] = {}
    for item in env:
        name, key, value = _server_assignment(item, "--mcp-env", "=", by_name)
        if by_name[name].command is None:
            raise McpSpecError(f"--mcp-env {item!r}: {name!r} is an HTTP server; use --mcp-header")
        if value is None:
            if key not in environ:
                raise McpSpecError(
                    f"--mcp-env {item!r}: {key} is not set in itemloop's environment"
                )
            value = environ[key]
        extra_env.setdefault(name, {})[key] = value
    extra_headers: dict[str, dict[str, str]] = {}
    for item in headers:
        name, key, value = _server_assignment(item, "--mcp-header", ":", by_name)
        if by_name[name].url is None:
            raise McpSpecError(f"--mcp-header {item!r}: {name!r} is a stdio server; use --mcp-env")
        if value is None:
            raise McpSpecError(f"--mcp-header takes 'NAME:Header: value', got {item!r}")
        extra_headers.setdefault(name, {})[key] = value.strip()
    out = []
    for s in servers:
        changes: dict[str, object] = {}
        if s.name in extra_env:
            changes["env"] = extra_env[s.name]
        if s.name in extra_headers:
            changes["headers"] = extra_headers[s.name]
        if call_timeout_s is not None:
            changes["call_timeout_s"] = call_timeout_s
        out.append(dataclasses.replace(s, **changes) if changes else s)  # type: ignore[arg-type]
    return out


def _server_assignment(
    item: str, flag: str, sep: str, servers: Mapping[str, McpServer]
) -> tuple[str, str, str | None]:
    """`NAME:KEY<sep>VALUE` -> (NAME, KEY, VALUE or None when there is no separator)."""
    name, colon, rest = item.partition(":")
    if not colon or not rest:
        raise McpSpecError(f"{flag} takes NAME:KEY{sep}VALUE, got {item!r}")
    if name not in servers:
        known = ", ".join(sorted(servers)) or "(none)"
        raise McpSpecError(f"{flag} {item!r}: no MCP server named {name!r}; servers: {known}")
    key, has_value, value = rest.partition(sep)
    if not key.strip():
        raise McpSpecError(f"{flag} takes NAME:KEY{sep}VALUE, got {item!r}")
    return name, key.strip(), value if has_value else None
