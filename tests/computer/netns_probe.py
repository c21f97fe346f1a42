"""Run by test_browser_containment under `unshare --net` with 10.7.7.7 and 169.254.7.7 on
its loopback and 1.2.3.4 in a second namespace ($PUBLIC_NETNS) behind a veth pair (an
address of the host's own is refused as such): a page on the public-range address fetches
the private and link-local listeners, then the browser navigates to each; prints JSON."""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import anyio
from web_probe import html, serve

from itemloop.sandbox.browser_computer import BrowserComputer

PUBLIC, PRIVATE, LINK_LOCAL = "1.2.3.4", "10.7.7.7", "169.254.7.7"
PAGE = f"""<p id="t">public page</p><script>
window.results = {{}};
window.done = Promise.all(["{PRIVATE}", "{LINK_LOCAL}"].map(h =>
  fetch("http://" + h + ":8080/data").then(r => r.text()).catch(e => "error")
    .then(v => {{ window.results[h] = v; }})));
</script>"""


@contextmanager
def public_netns() -> Iterator[None]:
    """This thread in $PUBLIC_NETNS meanwhile (a socket made there stays there)."""
    setns = ctypes.CDLL(None, use_errno=True).setns
    with open("/proc/thread-self/ns/net") as back, open(os.environ["PUBLIC_NETNS"]) as there:
        assert setns(there.fileno(), 0x40000000) == 0, os.strerror(ctypes.get_errno())
        try:
            yield
        finally:
            assert setns(back.fileno(), 0x40000000) == 0, os.strerror(ctypes.get_errno())


async def main() -> None:
    pages = {"/": html(PAGE), "/data": ("text/plain", b"secret", {})}
    with ExitStack() as stack, serve(pages, PRIVATE, 8080) as priv:
        with public_netns():
            pub = stack.enter_context(serve(pages, PUBLIC, 8080))
        with serve(pages, LINK_LOCAL, 8080) as ll:
            async with BrowserComputer(640, 480) as b:
                await b.goto(f"http://{PUBLIC}:8080/")
                await b.page.evaluate("window.done")
                fetched = await b.page.evaluate("window.results")
                texts = {}
                for host in (PRIVATE, LINK_LOCAL):
                    try:
                        await b.goto(f"http://{host}:8080/data")
                    except Exception as e:
                        texts[host] = f"goto failed: {e}"
                    texts[host] = await b.page.evaluate("document.body.innerText")
                notes = b.take_notes()
            hits = {"public": pub.hits, "private": priv.hits, "link_local": ll.hits}
    json.dump({"fetched": fetched, "texts": texts, "notes": notes, "hits": hits}, sys.stdout)


anyio.run(main)
