"""The browser's network policy: what a page the model is steered to can reach.

Offline: two "sites" are served on 127.0.0.1 and named through Chromium's host
resolver rules (which itemloop's proxy applies too): docs.example.test, a page
with a link to intranet.example.test. Three contained browsers run the same
computer calls (the model clicks the link), each under another policy:

1. the default (`public`): both names point at 127.0.0.1, a loopback address,
   so even the first page is refused;
2. `all` with an allow list (`--browser-allow docs.example.test`): the docs
   load, the click on the intranet link is refused;
3. `all`: both load.

Each refusal reaches the model as a banner on the screenshot and a note after
the output; this prints the notes, the page's text and what the sites served.

    python examples/browser_policy.py

Needs `bash .ci/setup-computer.sh` (chromium, bubblewrap) and the `playwright` package.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio

from itemloop.sandbox.browser_computer import BrowserComputer
from itemloop.sandbox.net_policy import NetworkPolicy
from itemloop.tools.computer import ComputerExecutor

DOCS = b"""<!doctype html><body style="margin:0;font:20px sans-serif">
<h1 style="margin:20px">Docs</h1>
<a href="http://intranet.example.test/" style="position:absolute;left:20px;top:100px;
 width:400px;height:60px;display:block">Intranet</a></body>"""
INTRANET = b"<!doctype html><body><h1>Intranet: payroll</h1></body>"


@contextmanager
def sites() -> Iterator[tuple[int, list[str]]]:
    served: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").split(":")[0]
            body = {"docs.example.test": DOCS, "intranet.example.test": INTRANET}.get(host)
            if body is None or self.path != "/":
                self.send_error(404)
                return
            served.append(host)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), served
    finally:
        server.shutdown()
        server.server_close()


async def visit(name: str, policy: NetworkPolicy, port: int) -> None:
    rules = f"--host-resolver-rules=MAP *.example.test 127.0.0.1:{port}"
    async with BrowserComputer(640, 360, policy=policy, extra_args=[rules]) as browser:
        executor = ComputerExecutor(browser, tool_type="computer")
        said: list[str] = []
        try:
            await browser.goto("http://docs.example.test/")
        except Exception:
            pass  # a refused first page is still a page: the proxy's error
        calls = [
            {"type": "click", "button": "left", "x": 200, "y": 130},
            {"type": "screenshot"},
        ]
        for i, action in enumerate(calls):
            result = await executor.execute(
                {"type": "computer_call", "call_id": f"c{i}", "action": action}
            )
            said += [n["content"][0]["text"].split("] ", 1)[1] for n in result.notes]
        # Notes of a navigation still under way come with the next call: wait for the load.
        await browser.page.wait_for_load_state()
        result = await executor.execute(
            {"type": "computer_call", "call_id": "last", "action": {"type": "screenshot"}}
        )
        said += [n["content"][0]["text"].split("] ", 1)[1] for n in result.notes]
        text = " ".join((await browser.page.evaluate("document.body.innerText")).split())
        print(f"== {name}: {policy.describe()}")
        print(f"   page: {text[:110]}")
        for note in dict.fromkeys(said):
            print(f"   note: {note}")


async def main() -> None:
    with sites() as (port, served):
        runs = [
            ("default", NetworkPolicy()),
            ("allow list", NetworkPolicy.of("all", allow=["docs.example.test"])),
            ("all", NetworkPolicy.of("all")),
        ]
        for name, policy in runs:
            served.clear()
            await visit(name, policy, port)
            print(f"   served: {', '.join(served) or 'nothing'}")


if __name__ == "__main__":
    anyio.run(main)
