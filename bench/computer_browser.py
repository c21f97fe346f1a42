"""Click + screenshot through the contained browser vs raw Playwright on a host Chromium.

    python bench/computer_browser.py [-n 40] [--rounds 7] [--markdown]

Both browsers open the same page served on 127.0.0.1 (the contained one with the
'all' network policy, so it goes through its proxy like any page), 1024x768:

  raw Playwright   `chromium.launch(executable_path=/usr/bin/chromium, --no-sandbox)`
                   on the host, `page.mouse.click` + `page.screenshot(type="png")`
  contained        `BrowserComputer` (bubblewrap, an unprivileged uid, its own namespaces,
                   Chromium's own sandbox on, the policy proxy): `click` + `screenshot`

Rounds alternate a batch of `-n` click+screenshot pairs on each; the ratio is the
median of the rounds' ratios (a shared machine's load weighs on both alike). The
start time (launch up to the first screenshot) is measured once per backend.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio

from itemloop.sandbox.browser_computer import CHROMIUM, CHROMIUM_ARGS, BrowserComputer
from itemloop.sandbox.net_policy import NetworkPolicy

W, H = 1024, 768
PAGE = b"""<!doctype html><html><body style="margin:0;font:16px sans-serif">
<button id=b style="position:absolute;left:40px;top:40px;width:160px;height:50px"
 onclick="n.textContent = +n.textContent + 1">Go</button><div id=n
 style="position:absolute;left:40px;top:120px;font-size:24px">0</div>
<div style="position:absolute;left:300px;top:40px;width:600px;height:600px;
 background:linear-gradient(45deg,#48c,#c84)"></div></body></html>"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def batch(
    n: int, click: Callable[[], Awaitable[Any]], shot: Callable[[], Awaitable[Any]]
) -> float:
    t = time.perf_counter()
    for _ in range(n):
        await click()
        await shot()
    return (time.perf_counter() - t) / n


async def main(n: int, rounds: int, markdown: bool) -> None:
    from playwright.async_api import async_playwright

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        t0 = time.perf_counter()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", *CHROMIUM_ARGS]
            )
            page = await browser.new_page(viewport={"width": W, "height": H})
            await page.goto(url)
            await page.screenshot(type="png")
            raw_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            async with BrowserComputer(W, H, start_url=url, policy=NetworkPolicy.of("all")) as b:
                await b.screenshot()
                contained_start = time.perf_counter() - t0

                async def raw_click() -> None:
                    await page.mouse.click(120, 65)

                async def raw_shot() -> None:
                    await page.screenshot(type="png", full_page=False)

                async def ours_click() -> None:
                    await b.click(120, 65)

                await batch(5, raw_click, raw_shot)  # warm-up
                await batch(5, ours_click, b.screenshot)
                raws, ours, ratios = [], [], []
                for _ in range(rounds):
                    r = await batch(n, raw_click, raw_shot)
                    o = await batch(n, ours_click, b.screenshot)
                    raws.append(r)
                    ours.append(o)
                    ratios.append(o / r)
            await browser.close()
    finally:
        server.shutdown()
        server.server_close()
    raw_ms, ours_ms = statistics.median(raws) * 1e3, statistics.median(ours) * 1e3
    ratio = statistics.median(ratios)
    if markdown:
        print("| backend | click + screenshot, median | start (to first screenshot) |")
        print("| --- | ---: | ---: |")
        print(f"| raw Playwright, host Chromium | {raw_ms:.1f} ms | {raw_start:.2f} s |")
        print(f"| contained BrowserComputer | {ours_ms:.1f} ms | {contained_start:.2f} s |")
        print(f"\nRatio contained / raw: {ratio:.2f}x (median of {rounds} rounds of {n}).")
    else:
        print(f"raw Playwright       {raw_ms:7.1f} ms   start {raw_start:.2f} s")
        print(f"contained            {ours_ms:7.1f} ms   start {contained_start:.2f} s")
        print(
            f"ratio contained/raw  {ratio:.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    anyio.run(main, a.n, a.rounds, a.markdown)
