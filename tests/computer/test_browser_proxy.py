"""PolicyProxy over real sockets on 127.0.0.1: what a hostile client of the proxy gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
from computer_probe import require
from web_probe import html, serve

from itemloop.sandbox.browser_proxy import PolicyProxy, ProxyLimits, ResolverRules
from itemloop.sandbox.net_policy import NetworkPolicy, Refusal

pytestmark = pytest.mark.anyio


async def loopback_listener() -> anyio.abc.SocketListener:
    """One listening socket on 127.0.0.1 (what the jail hands the proxy)."""
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    return listener


@asynccontextmanager
async def proxy(
    policy: NetworkPolicy, refused: list[Refusal], **kw: object
) -> AsyncIterator[Callable[[bytes], object]]:
    listener = await loopback_listener()
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    p = PolicyProxy(policy, on_refusal=refused.append, **kw)  # type: ignore[arg-type]

    async def ask(request: bytes) -> bytes:
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(request)
            out = b""
            with anyio.fail_after(15):
                async for chunk in s:
                    out += chunk
            return out

    async with anyio.create_task_group() as tg:
        tg.start_soon(p.serve, listener)
        yield ask
        tg.cancel_scope.cancel()


async def test_names_resolving_to_loopback_are_refused_by_address() -> None:
    refused: list[Refusal] = []
    with serve({"/": html("secret")}) as site:
        async with proxy(NetworkPolicy(), refused) as ask:
            req = f"GET http://localhost:{site.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            out = await ask(req)
    assert out.startswith(b"HTTP/1.1 403") and b"loopback" in out  # type: ignore[attr-defined]
    assert site.hits == [] and refused[0].address in ("127.0.0.1", "::1")


async def test_connect_refused_and_origin_form_refused() -> None:
    refused: list[Refusal] = []
    with serve({"/": html("secret")}) as site:
        async with proxy(NetworkPolicy(), refused) as ask:
            out = await ask(f"CONNECT 127.0.0.1:{site.port} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            assert out.startswith(b"HTTP/1.1 403")  # type: ignore[attr-defined]
            out = await ask(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 400")  # type: ignore[attr-defined]
            out = await ask(b"\x00\xff garbage\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 400")  # type: ignore[attr-defined]
    assert site.hits == []


async def test_one_request_per_connection_a_second_never_rides_the_first() -> None:
    refused: list[Refusal] = []
    with serve({"/": html("ok")}) as site:
        async with proxy(NetworkPolicy.of("all", deny=["evil.test"]), refused) as ask:
            two = (
                f"GET http://127.0.0.1:{site.port}/ HTTP/1.1\r\nHost: a\r\n\r\n"
                f"GET http://evil.test:{site.port}/other HTTP/1.1\r\nHost: evil.test\r\n\r\n"
            ).encode()
            out = await ask(two)
    assert out.split(b"\r\n")[0].endswith(b" 200 OK")  # type: ignore[attr-defined]
    assert site.hits == ["/"]


async def test_resolver_rules_map_names_and_quiet_hosts_are_not_reported() -> None:
    refused: list[Refusal] = []
    with serve({"/": html("mapped")}) as site:
        rules = ResolverRules.from_args([f"--host-resolver-rules=MAP *.test 127.0.0.1:{site.port}"])
        async with proxy(
            NetworkPolicy.of("all"), refused, rules=rules, quiet_deny=["update.test"]
        ) as ask:
            out = await ask(b"GET http://docs.test/ HTTP/1.1\r\nHost: docs.test\r\n\r\n")
            assert b"mapped" in out  # type: ignore[operator]
            out = await ask(b"GET http://update.test/ HTTP/1.1\r\nHost: update.test\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 403")  # type: ignore[attr-defined]
    assert site.hits == ["/"] and refused == []


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET http://127.0.0.1:99999/ HTTP/1.1", b"400"),
        (b"GET http://127.0.0.1:abc/ HTTP/1.1", b"400"),
        (b"GET http://[::1/ HTTP/1.1", b"400"),
        (b"GET http://127.0.0.1:0/ HTTP/1.1", b"400"),
        (b"CONNECT 127.0.0.1:99999 HTTP/1.1", b"400"),
        (b"CONNECT 127.0.0.1:0 HTTP/1.1", b"400"),
        (b"CONNECT 127.0.0.1:abc HTTP/1.1", b"400"),
        (b"CONNECT :443 HTTP/1.1", b"400"),
        (b"CONNECT " + b"a" * 64 + b".com:443 HTTP/1.1", b"502"),
        (b"CONNECT a..b:443 HTTP/1.1", b"502"),
    ],
)
async def test_a_malformed_target_is_answered_and_the_proxy_serves_on(
    request_line: bytes, status: bytes
) -> None:
    refused: list[Refusal] = []
    with serve({"/": html("still here")}) as site:
        async with proxy(NetworkPolicy.of("all"), refused) as ask:
            out = await ask(request_line + b"\r\nHost: x\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 " + status)  # type: ignore[attr-defined]
            good = f"GET http://127.0.0.1:{site.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()
            assert b"still here" in await ask(good)  # type: ignore[operator]
    assert site.hits == ["/"]


async def _read_all(s: anyio.abc.SocketStream) -> bytes:
    out = b""
    with anyio.fail_after(15):
        async for chunk in s:
            out += chunk
    return out


async def test_a_head_that_never_ends_is_answered_408_and_closed() -> None:
    listener = await loopback_listener()
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    p = PolicyProxy(NetworkPolicy.of("all"), limits=ProxyLimits(head_timeout_s=0.2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(p.serve, listener)
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(b"GET http://127.0.0.1/ HTTP/1.1\r\nX-slow: ")
            assert (await _read_all(s)).startswith(b"HTTP/1.1 408")
        tg.cancel_scope.cancel()


async def test_a_tunnel_without_bytes_either_way_is_closed() -> None:
    silent = await anyio.create_tcp_listener(local_host="127.0.0.1")
    silent_port = silent.extra(anyio.abc.SocketAttribute.local_port)
    held: list[anyio.abc.SocketStream] = []

    async def hold(s: anyio.abc.SocketStream) -> None:
        held.append(s)  # accepted, never answered, never closed
        await anyio.sleep_forever()

    listener = await loopback_listener()
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    p = PolicyProxy(NetworkPolicy.of("all"), limits=ProxyLimits(idle_timeout_s=0.2))
    async with anyio.create_task_group() as tg:
        tg.start_soon(silent.serve, hold)
        tg.start_soon(p.serve, listener)
        async with await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(f"CONNECT 127.0.0.1:{silent_port} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            out = await _read_all(s)
        assert out == b"HTTP/1.1 200 Connection Established\r\n\r\n" and len(held) == 1
        tg.cancel_scope.cancel()


async def test_connections_beyond_the_cap_are_refused_503() -> None:
    listener = await loopback_listener()
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    p = PolicyProxy(NetworkPolicy.of("all"), limits=ProxyLimits(max_connections=1))
    with serve({"/": html("ok")}) as site:
        async with anyio.create_task_group() as tg:
            tg.start_soon(p.serve, listener)
            async with await anyio.connect_tcp("127.0.0.1", port) as first:
                await first.send(b"GET http://127.0.0.1/ HTTP/1.1\r\nX-slow: ")
                # Refused at once, before any request (one sent early may see a reset instead).
                async with await anyio.connect_tcp("127.0.0.1", port) as second:
                    assert (await _read_all(second)).startswith(b"HTTP/1.1 503")
                await first.send(b"1\r\n\r\n")  # the first is served on
                assert (await _read_all(first)).startswith(b"HTTP/1.1 ")
            async with await anyio.connect_tcp("127.0.0.1", port) as third:
                req = f"GET http://127.0.0.1:{site.port}/ HTTP/1.1\r\nHost: x\r\n\r\n"
                await third.send(req.encode())
                assert b"ok" in await _read_all(third)  # its slot is free again
            tg.cancel_scope.cancel()
    assert site.hits == ["/"]


OUT_OF_FDS_PROXY = r"""
import logging, os, resource, sys
import anyio, anyio.abc
from itemloop.sandbox.browser_proxy import PolicyProxy
from itemloop.sandbox.net_policy import NetworkPolicy

logging.basicConfig(stream=sys.stdout, format="%(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

async def main() -> None:
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    held = []
    try:
        while True:
            held.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    for fd in held[:3]:
        os.close(fd)  # a few descriptors free: a few clients, not six
    print(listener.extra(anyio.abc.SocketAttribute.local_port), flush=True)
    await PolicyProxy(NetworkPolicy()).serve(listener)

anyio.run(main)
"""


def test_running_out_of_descriptors_does_not_end_the_proxy() -> None:
    """A page holding connections open until the proxy's process is out of descriptors:
    the accept that fails is tried again, and once the holders close, the waiting client
    is served. (anyio's Listener.serve ended there, and the browser lost its way out.)"""
    import socket

    child = subprocess.Popen(
        [sys.executable, "-c", OUT_OF_FDS_PROXY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        # More clients than free descriptors: the proxy accepts some, the rest wait.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(6)]
        *holders, waiting = clients
        for h in holders:
            h.sendall(b"GET http://a.test/ HTTP/1.1\r\nX-slow: ")
        line = child.stdout.readline()
        assert "accept failed (Too many open files)" in line, (line, child.poll())
        for h in holders:
            h.close()
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        waiting.settimeout(15)
        answer = waiting.recv(1 << 16)
        assert answer.startswith(b"HTTP/1.1 400"), (answer, child.poll())
        waiting.close()
        assert child.poll() is None
    finally:
        child.kill()
        _, err = child.communicate()
    assert "Traceback" not in err, err


async def test_a_trailing_dot_or_capitals_do_not_skip_the_resolver_pin() -> None:
    refused: list[Refusal] = []
    with serve({"/": html("mapped")}) as site:
        rules = ResolverRules.from_args([f"--host-resolver-rules=MAP *.test 127.0.0.1:{site.port}"])
        async with proxy(NetworkPolicy.of("all", allow=["docs.test"]), refused, rules=rules) as ask:
            for host in (b"docs.test.", b"DOCS.Test."):
                out = await ask(b"GET http://" + host + b"/ HTTP/1.1\r\nHost: x\r\n\r\n")
                assert b"mapped" in out  # type: ignore[operator]
    assert site.hits == ["/", "/"] and refused == []


# Run in a network namespace of its own with 1.2.3.4 on its loopback: a listener there is
# the host's own public address; 5.6.7.8 is public and not the host's.
OWN_ADDRESS_PROBE = """
import ipaddress, json, sys
import anyio, anyio.abc
from web_probe import html, serve
from itemloop.sandbox.browser_proxy import PolicyProxy
from itemloop.sandbox.net_policy import NetworkPolicy

async def main():
    refused = []
    p = PolicyProxy(NetworkPolicy(), on_refusal=refused.append)
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with serve({"/": html("own")}, "1.2.3.4", 8080) as site:
        async with anyio.create_task_group() as tg:
            tg.start_soon(p.serve, listener)
            async with await anyio.connect_tcp("127.0.0.1", port) as s:
                await s.send(b"GET http://1.2.3.4:8080/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                out = b"".join([c async for c in s])
            tg.cancel_scope.cancel()
    other = NetworkPolicy().check_address("h", ipaddress.ip_address("5.6.7.8"))
    json.dump({"answer": out.split(b"\\r\\n")[0].decode(), "hits": site.hits,
               "rules": [r.rule for r in refused], "other": repr(other)}, sys.stdout)

anyio.run(main)
"""


def test_the_hosts_own_public_address_is_refused_in_a_netns() -> None:
    require(binaries=("unshare", "ip"))
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace with addresses needs root")
    here = Path(__file__).parent
    setup = f"ip link set lo up && ip addr add 1.2.3.4/32 dev lo && exec {sys.executable} -c "
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", setup + '"$0"', OWN_ADDRESS_PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=here,
        env={**os.environ, "PYTHONPATH": str(here)},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["answer"].startswith("HTTP/1.1 403") and out["hits"] == []
    assert out["rules"] and "the host's own address (1.2.3.4)" in out["rules"][0]
    assert out["other"] == "None"  # a public address not the host's passes
