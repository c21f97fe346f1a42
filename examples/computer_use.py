"""Computer use: the model drives a headless Chromium by screen coordinates.

A small to-do page is served on 127.0.0.1; the browser (Debian's chromium via
Playwright) opens it, and each `computer_call` the model makes is run on the
page and answered with a screenshot. Offline, a scripted model makes the calls,
including one with an off-screen click, whose error comes back to the model as
a banner drawn on the screenshot.

    python examples/computer_use.py [--save-screenshot FILE]
    OPENAI_API_KEY=... python examples/computer_use.py      # the real API

Needs `bash .ci/setup-computer.sh` (chromium) and the `playwright` package.
"""

from __future__ import annotations

import argparse
import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio

from itemloop.runtime import ComputerConfig, Runtime, Toolset, ToolsetConfig, choose_model
from itemloop.runtime.events import CallFinished, RunFinished
from itemloop.sandbox.browser_computer import BrowserComputer

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>To-do</title>
<style>
  body { margin: 0; font: 18px sans-serif; background: #f4f4f8; }
  h1 { position: absolute; left: 40px; top: 10px; margin: 0; font-size: 28px; }
  #item { position: absolute; left: 40px; top: 70px; width: 400px; height: 36px; font-size: 18px; }
  #add { position: absolute; left: 460px; top: 70px; width: 100px; height: 42px; font-size: 18px; }
  #list { position: absolute; left: 40px; top: 130px; margin: 0; padding-left: 24px; }
</style></head>
<body>
<h1>To-do</h1>
<input id="item" placeholder="New item" autocomplete="off">
<button id="add">Add</button>
<ol id="list"></ol>
<script>
  const item = document.getElementById('item');
  function add() {
    if (!item.value.trim()) return;
    const li = document.createElement('li');
    li.textContent = item.value.trim();
    document.getElementById('list').appendChild(li);
    item.value = '';
  }
  document.getElementById('add').addEventListener('click', add);
  item.addEventListener('keydown', e => { if (e.key === 'Enter') add(); });
</script>
</body></html>
"""

INPUT = {"x": 240, "y": 88}
ADD_BUTTON = {"x": 510, "y": 91}


def computer_call(n: int, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "computer_call",
        "id": f"cu_{n}",
        "call_id": f"call_{n}",
        "status": "completed",
        "pending_safety_checks": [],
        "actions": actions,
    }


def click(at: dict[str, int]) -> dict[str, Any]:
    return {"type": "click", "button": "left", **at}


SCRIPT = [
    [computer_call(1, [{"type": "screenshot"}])],
    [
        computer_call(
            2,
            [
                click(INPUT),
                {"type": "type", "text": "Buy milk"},
                {"type": "keypress", "keys": ["ENTER"]},
            ],
        )
    ],
    # A slip: this click is off the screen. Nothing runs; the screenshot says why.
    [computer_call(3, [{"type": "click", "button": "left", "x": 5000, "y": 91}])],
    [
        computer_call(
            4,
            [click(INPUT), {"type": "type", "text": "Walk the dog"}, click(ADD_BUTTON)],
        )
    ],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Added 'Buy milk' and 'Walk the dog'."}],
        }
    ],
]

PROMPT = (
    "The browser shows a to-do list page. Add two items to the list: 'Buy milk' and "
    "'Walk the dog'. Then say what you added."
)


@contextmanager
def serve_page() -> Iterator[str]:
    """The to-do page on 127.0.0.1, for the length of the block; its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def main(save: Path | None) -> None:
    model = choose_model(SCRIPT)
    # The computer-use-preview model takes the preview tool; newer models the `computer` tool.
    preview = model.name.startswith(("computer-use", "scripted"))
    last_png = b""
    with serve_page() as url:
        config = ToolsetConfig(
            builtins=("computer",),
            computer=ComputerConfig(
                start_url=url,
                tool="computer_use_preview" if preview else "computer",
                # The page is served on 127.0.0.1, which the default policy (public) refuses.
                browser_network="all",
            ),
        )
        # The toolset starts the browser and closes it when the run's Runtime closes.
        async with Runtime(model, Toolset(config), max_turns=20) as rt:
            async for event in rt.run(PROMPT):
                if isinstance(event, CallFinished):
                    print(f"[{'ok' if event.ok else 'error'}] {event.summary}")
                    image = event.output["output"]["image_url"]
                    last_png = base64.b64decode(image.split(",", 1)[1])
                elif isinstance(event, RunFinished):
                    if event.error:
                        print(f"run error: {event.error}")
                    print(f"answer: {event.final_text}")
            browser = rt.toolset.computer
            assert isinstance(browser, BrowserComputer)
            items = await browser.page.evaluate(
                "[...document.querySelectorAll('#list li')].map(li => li.textContent)"
            )
            print(f"list on the page: {', '.join(items) or '(empty)'}")
    if save is not None and last_png:
        await anyio.Path(save).write_bytes(last_png)
        print(f"last screenshot: {save}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--save-screenshot", type=Path, default=None, metavar="FILE")
    a = p.parse_args()
    anyio.run(main, a.save_screenshot)
