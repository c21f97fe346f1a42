"""Fixtures for the computer-use tests: real Xvfb, xdotool, Chromium; no mocks.

A test skips when a binary or the `playwright`/`pillow` package is missing,
except in CI (env CI set), where .ci/setup-computer.sh installed them and a
skip would hide a broken install: there it fails.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from computer_probe import CHROMIUM, LOCAL, H, W, require

from itemloop.sandbox.browser_computer import BrowserComputer

HERE = Path(__file__).parent


@pytest.fixture
def need_x() -> None:
    require(binaries=("Xvfb", "xdotool"), modules=("PIL", "tkinter"))


@pytest.fixture
def need_browser() -> None:
    require(binaries=(CHROMIUM,), modules=("playwright", "PIL"))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: one browser serves a whole test module


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>probe</title>
<style>
  body { margin: 0; font: 16px sans-serif; }
  #go { position: absolute; left: 40px; top: 40px; width: 160px; height: 50px; }
  #name { position: absolute; left: 40px; top: 120px; width: 300px; height: 30px; font-size: 18px; }
  #status { position: absolute; left: 40px; top: 180px; font-size: 24px; }
  #tall { position: absolute; top: 0; left: 0; width: 10px; height: 3000px; }
</style></head>
<body>
<div id="tall"></div>
<button id="go" onclick="clicked()">Go</button>
<input id="name" autocomplete="off">
<div id="status">waiting</div>
<script>
  window.clicks = 0;
  window.keys = [];
  function clicked() {
    window.clicks += 1;
    document.getElementById('status').textContent = 'clicked ' + window.clicks;
    document.body.style.background = '#8f8';
  }
  document.addEventListener('keydown', e => window.keys.push(
    (e.ctrlKey ? 'C-' : '') + (e.shiftKey ? 'S-' : '') + e.key));
  document.addEventListener('dblclick', e => { window.dbl = [e.clientX, e.clientY]; });
</script>
</body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local web server on 127.0.0.1 serving the probe page at /; its base URL."""
    tmp_path = tmp_path_factory.mktemp("site")
    (tmp_path / "index.html").write_text(PAGE, encoding="utf-8")

    class Handler(_Quiet):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(tmp_path), **kw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
async def shared_browser(site: str) -> AsyncIterator[BrowserComputer]:
    require(binaries=(CHROMIUM,), modules=("playwright", "PIL"))
    async with BrowserComputer(W, H, start_url=site, policy=LOCAL) as b:
        yield b


@pytest.fixture
async def browser(shared_browser: BrowserComputer, site: str) -> BrowserComputer:
    """The module's browser, back on a fresh load of the probe page."""
    await shared_browser.goto(site)
    return shared_browser
