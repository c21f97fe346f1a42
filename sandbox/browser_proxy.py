"""The browser's only way out: an HTTP proxy that holds every connection to the network policy.

The contained browser (`browser_jail.py`) lives in an empty network namespace
whose one open door is a listening socket on 127.0.0.1 inside it, made there
and handed to itemloop; `PolicyProxy.serve` accepts on it on the host side.
Each connection carries one request, parsed with h11:

- `CONNECT host:port` (HTTPS, WSS, any tunnel): checked, then a byte tunnel.
- An absolute-form request (`GET http://host:port/path`): checked, then sent
  on as origin-form with `Connection: close`, its body (Content-Length or
  chunked) re-framed by h11, and the answer piped back until the server
  closes. One request per client connection: a second request on the same
  connection can never ride an earlier, checked upstream.
- Anything else (an origin-form request sent straight to the proxy's port
  by a page) is refused with 400.

Checking: the name against the policy (`NetworkPolicy.check_name`), then the
name is resolved here (after Chromium's `--host-resolver-rules`, which
Chromium does not apply to proxied names, are applied by `ResolverRules`)
and every resolved address is checked (`check_address`); the connection goes
only to a checked address. A refusal answers 403 with an HTML page naming
the host, the address and the rule (Chromium shows it for plain HTTP; for a
tunnel it shows its own ERR_TUNNEL_CONNECTION_FAILED page) and is reported
through `on_refusal`, which the browser turns into a note for the model.
Hosts matching `quiet_deny` (the browser's own update and telemetry
services) are refused without a report.

Failures are the connection's own: a malformed target (a port outside
1..65535 or not a number, an unclosed "[", no host) is a 400, a name that
does not resolve or an unreachable address a 502, and anything unexpected
a 502 too; the serving task never dies from one connection.

Limits (`ProxyLimits`, their one home): a request head over 64 KiB is
refused (400) and one not complete within 30 s answered 408; resolving and
connecting time out after 15 s; a tunnel or forwarded request with no bytes
either way for 5 minutes is closed; at most 256 connections are served at
once, one more is answered 503 and closed (Chromium keeps at most 32 per
proxy). So a page or a process of the jail holding connections open costs
itemloop at most 256 fds and tasks, each for a bounded time while idle.

Accepting survives running out: when the process is out of file
descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), `serve` logs it
and tries again after `accept_retry_s`, while the connections it serves end
and free what they held; the waiting client stays in the backlog. (anyio's
`Listener.serve` would end, and every later page would find the proxy gone.)

Not covered: what a reachable server does with the connection; a slow but
never idle transfer (a byte every few minutes) is not cut off; HTTP/1.0
keep-alive tricks are moot (one request per connection).
"""

from __future__ import annotations

import errno
import fnmatch
import html
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11

from .net_policy import IPAddress, NetworkPolicy, Refusal, host_name

log = logging.getLogger("itemloop.browser_proxy")

OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""accept() errors that pass once other connections end: retried, not fatal."""


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    """What one client of the proxy may hold, and for how long (the defaults are the limits)."""

    max_head_bytes: int = 64 * 1024
    """A request head (request line and headers) longer than this is refused (400)."""
    head_timeout_s: float = 30.0
    """A request head not complete this long after the connection is accepted: 408, closed."""
    connect_timeout_s: float = 15.0
    """Resolving a name, and connecting to each of its addresses."""
    idle_timeout_s: float = 300.0
    """A tunnel or forwarded request with no bytes either way for this long is closed."""
    max_connections: int = 256
    """Connections served at once; one beyond it is answered 503 and closed. Chromium keeps
    at most 32 sockets per proxy, so only a client that is not Chromium's network stack
    reaches it."""
    accept_retry_s: float = 0.1
    """Out of descriptors or memory while accepting: the wait before trying again."""


_HOP_HEADERS = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te"}
_HOP_HEADERS |= {b"upgrade", b"trailer"}


@dataclass(frozen=True, slots=True)
class ResolverRules:
    """Chromium's `--host-resolver-rules` (MAP and EXCLUDE), applied by the proxy.

    Chromium sends proxied names to the proxy unresolved, so rules the embedding
    program gives the browser (tests map names to local listeners) are applied
    here. `MAP pattern replacement[:port]`, `EXCLUDE pattern`; first match wins.
    """

    rules: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def from_args(cls, args: Sequence[str]) -> ResolverRules:
        rules: list[tuple[str, str, str]] = []
        for a in args:
            if not a.startswith("--host-resolver-rules="):
                continue
            for rule in a.partition("=")[2].split(","):
                words = rule.split()
                if len(words) == 3 and words[0].upper() == "MAP":
                    rules.append(("MAP", host_name(words[1]), words[2]))
                elif len(words) == 2 and words[0].upper() == "EXCLUDE":
                    rules.append(("EXCLUDE", host_name(words[1]), ""))
        return cls(tuple(rules))

    def map(self, host: str, port: int) -> tuple[str, int]:
        """Where `host` (normalised by `host_name`, as the policy sees it) goes."""
        host = host_name(host)
        for kind, pattern, replacement in self.rules:
            if not fnmatch.fnmatchcase(host, pattern):
                continue
            if kind == "EXCLUDE":
                break
            rhost, sep, rport = replacement.rpartition(":")
            if sep and rport.isdigit() and not rhost.endswith(":"):
                return rhost.strip("[]"), int(rport)
            return replacement.strip("[]"), port
        return host, port


class BadRequest(Exception):
    """A request the proxy cannot act on (malformed target, port, name): answered 400."""


class ProxyRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.describe())
        self.refusal = refusal


class PolicyProxy:
    """Serves the browser's proxy connections under `policy` (see the module docstring)."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        rules: ResolverRules | None = None,
        on_refusal: Callable[[Refusal], None] = lambda r: None,
        limits: ProxyLimits = ProxyLimits(),
        quiet_deny: Sequence[str] = (),
    ) -> None:
        self.policy = policy
        self.quiet_deny = tuple(quiet_deny)
        self.rules = rules or ResolverRules()
        self.on_refusal = on_refusal
        self.limits = limits

    async def serve(self, listener: anyio.abc.SocketListener) -> None:
        """Accept and serve connections until cancelled; one over the cap is answered 503."""
        active = 0

        async def one(client: anyio.abc.SocketStream) -> None:
            nonlocal active
            async with client:
                if active >= self.limits.max_connections:
                    await self._busy(client)
                    return
                active += 1  # tasks start in accept order, so the cap is exact
                try:
                    await self._handle(client)
                finally:
                    active -= 1  # before the close, so the slot is free when the client sees it

        async with listener, anyio.create_task_group() as tg:
            while True:
                try:
                    client = await listener.accept()
                except OSError as e:
                    if e.errno not in OUT_OF_RESOURCES:
                        raise
                    log.warning("proxy: accept failed (%s); trying again", e.strerror)
                    await anyio.sleep(self.limits.accept_retry_s)
                    continue
                tg.start_soon(one, client)

    async def _busy(self, client: anyio.abc.SocketStream) -> None:
        with anyio.move_on_after(self.limits.head_timeout_s):
            text = "Too many connections to the proxy at once; try again."
            await _send(client, 503, "Busy", text)

    # -- one connection --------------------------------------------------------

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        try:
            await self._one_request(client)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        except h11.ProtocolError:
            await _send(client, 400, "Bad request", "The proxy could not parse the request.")
        except BadRequest as e:
            await _send(client, 400, "Bad request", str(e))
        except Exception as e:  # one connection's failure stays its own
            await _send(client, 502, "Proxy error", f"The proxy failed on this request: {e!r}")

    async def _one_request(self, client: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        request: object = None
        with anyio.move_on_after(self.limits.head_timeout_s):
            request = await _next_event(conn, client)
        if request is None:
            text = f"No complete request within {self.limits.head_timeout_s:g} s."
            await _send(client, 408, "Request timeout", text)
            return
        if not isinstance(request, h11.Request):
            return
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        host, port = _target(method, target)
        host = host_name(host)  # once, for the quiet list, the policy and the resolver rules
        if any(fnmatch.fnmatchcase(host, p) for p in self.quiet_deny):
            await _send(client, 403, "Blocked by itemloop", f"{host}: the browser's own traffic")
            return
        try:
            upstream = await self._connect(host, port)
        except ProxyRefused as e:
            self.on_refusal(e.refusal)
            await _send(client, 403, "Blocked by itemloop", _refusal_text(e.refusal))
            return
        except OSError as e:
            await _send(client, 502, "Unreachable", f"{host}:{port} could not be reached: {e}")
            return
        idle = _Idle(self.limits.idle_timeout_s)
        async with upstream:
            with idle.scope:
                if method == "CONNECT":
                    await client.send(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    leftover = conn.trailing_data[0]
                    if leftover:
                        await upstream.send(leftover)
                    await _splice(client, upstream, idle)
                else:
                    await self._forward(conn, request, client, upstream, idle)

    async def _forward(
        self,
        conn: h11.Connection,
        request: h11.Request,
        client: anyio.abc.SocketStream,
        upstream: anyio.abc.SocketStream,
        idle: _Idle,
    ) -> None:
        url = urlsplit(request.target.decode("ascii", "replace"))
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_HEADERS]
        headers.append((b"connection", b"close"))
        out = h11.Connection(h11.CLIENT)
        head = h11.Request(method=request.method, target=path.encode(), headers=headers)
        await upstream.send(out.send(head) or b"")
        while True:
            event = await _next_event(conn, client)
            idle.touch()
            if isinstance(event, h11.Data):
                await upstream.send(out.send(event) or b"")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                await upstream.send(out.send(h11.EndOfMessage()) or b"")
                break
        async for chunk in upstream:
            idle.touch()
            await client.send(chunk)

    async def _connect(self, host: str, port: int) -> anyio.abc.SocketStream:
        """A connection to `host`, every address checked; ProxyRefused or OSError."""
        refused = self.policy.check_name(host)
        if refused:
            raise ProxyRefused(refused)
        target, port = self.rules.map(host, port)
        addresses: list[IPAddress] = []
        try:
            addresses = [ipaddress.ip_address(target)]
        except ValueError:
            with anyio.fail_after(self.limits.connect_timeout_s):
                infos = await anyio.getaddrinfo(target, port, type=socket.SOCK_STREAM)
            for info in infos:
                ip = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
                if ip not in addresses:
                    addresses.append(ip)
        for ip in addresses:
            refused = self.policy.check_address(host, ip)
            if refused:
                raise ProxyRefused(refused)
        last: OSError = OSError(f"{host} has no address")
        for ip in addresses:
            try:
                with anyio.fail_after(self.limits.connect_timeout_s):
                    return await anyio.connect_tcp(str(ip), port)
            except TimeoutError:
                last = OSError(f"connecting to {ip} timed out")
            except OSError as e:
                last = e
        raise last


async def _next_event(conn: h11.Connection, stream: anyio.abc.SocketStream) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            data = await stream.receive()
        except anyio.EndOfStream:
            data = b""
        conn.receive_data(data)


class _Idle:
    """A cancel scope whose deadline moves `timeout_s` ahead each time bytes move."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.scope = anyio.CancelScope(deadline=anyio.current_time() + timeout_s)

    def touch(self) -> None:
        self.scope.deadline = anyio.current_time() + self.timeout_s


async def _splice(a: anyio.abc.SocketStream, b: anyio.abc.SocketStream, idle: _Idle) -> None:
    async def pump(src: anyio.abc.SocketStream, dst: anyio.abc.SocketStream) -> None:
        try:
            async for chunk in src:
                idle.touch()
                await dst.send(chunk)
            await dst.send_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, a, b)
        tg.start_soon(pump, b, a)


def _target(method: str, target: str) -> tuple[str, int]:
    """The host and port a request asks for; BadRequest if it names none or a bad one."""
    if method == "CONNECT":
        return _host_port(target, 443)
    try:
        url = urlsplit(target)
        host, port = url.hostname, url.port
    except ValueError as e:  # a port out of range or not a number, an unclosed "["
        raise BadRequest(f"The URL {target!r} is malformed: {e}") from e
    if url.scheme != "http" or not host:
        raise BadRequest("The proxy takes absolute http URLs only.")
    return host, _port(80 if port is None else str(port), target)


def _host_port(authority: str, default: int) -> tuple[str, int]:
    host, sep, port = authority.rpartition(":")
    if not sep or (host.count(":") and not host.endswith("]")):  # no port, or bare IPv6
        host, port = authority, ""
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise BadRequest(f"{authority!r} names no host.")
    return host, _port(port or default, authority)


def _port(port: str | int, target: str) -> int:
    """`port` as a TCP port (1..65535); BadRequest otherwise."""
    text = str(port)
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise BadRequest(f"{target!r}: the port must be a number from 1 to 65535.")
    return int(text)


def _refusal_text(r: Refusal) -> str:
    return r.describe()


async def _send(client: anyio.abc.SocketStream, status: int, title: str, text: str) -> None:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title></head><body style='font:18px sans-serif;margin:40px'>"
        f"<h1 style='color:#a00'>{html.escape(title)}</h1><p id='itemloop-proxy'>"
        f"{html.escape(text)}</p></body></html>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n"
    )
    try:
        await client.send(head.encode() + body)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


__all__ = ["BadRequest", "PolicyProxy", "ProxyLimits", "ProxyRefused", "ResolverRules"]
