"""`BrowserComputer`: headless Debian Chromium in a sandbox of its own, driven through Playwright.

The `playwright` Python package brings its driver (a bundled binary in the
wheel) but no browser: this backend runs the system's Chromium (default
/usr/bin/chromium) and never runs `playwright install`. The screen is the
viewport of one page (the newest tab, when the page opens another), starting
at `start_url`. On exit the browser, its sandbox and the driver are closed.

Containment (`browser_jail.py`): Chromium runs in a bubblewrap sandbox, as an
unprivileged host user when itemloop is root, in its own user, PID, IPC and
(empty) network namespaces, with a private profile and HOME, the host
read-only, and Chromium's own sandbox on where a nested user namespace can be
made (else `--no-sandbox`, said in `notices`). Playwright drives it over the
DevTools pipe from outside, through a launcher given as `executable_path`.

Network (`browser_proxy.py`, `net_policy.py`): the sandbox's only way out is
the filtering proxy, served here on the host side, which holds every
connection to `policy` (default: public addresses only). Each refusal becomes
a note (`take_notes`) the computer tool shows the model on the screenshot.

Files (`browser_files.py`): with a `workspace`, downloads are saved into its
`downloads/` directory, and a file chooser the page opens is answered from
the workspace: the note says a chooser is open; the next `type` is taken as
workspace-relative path(s) (one a line) and Enter gives them to the page,
Escape cancels; paths the user hid (`hidden_paths`) are refused. Without a
workspace, downloads are refused and choosers cancelled, each with a note. A
page may start downloads without any action of the model; they are bounded:
`max_download_bytes` each, `max_downloads` and `max_session_download_bytes`
per session (defaults in `browser_files.py`). With `max_downloads` 0 the
browser refuses every download before a byte is staged, and says so.
Playwright reports no progress, so while downloads run the host's staging
directory is polled (`DOWNLOAD_POLL_S`) and the running ones are cancelled
together once a staged file passes the per-file limit or the session's bytes
would; the limits are checked again when a download is saved. The staged copy
is deleted once a download is saved, refused or cancelled.

A crashed page (its renderer died: V8 out of memory, killed) is replaced by a
new page at `start_url`, and so is a page on which `HUNG_AFTER_TIMEOUTS`
actions in a row timed out (a script looping forever); the model is told in a
note. What the page held (its form fields, its history) is lost with it.

A browser that died (its main process killed by the OOM killer, crashed, its
jail's processes killed) is found gone by the next action or screenshot:
Playwright says it disconnected, or bubblewrap has exited (checked too, so an
action does not race Playwright's news). The old jail is closed and cleaned
up (cgroup, temp dirs) and a new browser is started in a new jail with the
same settings, at `start_url` (one Playwright driver serves the session); the
model is told in a note that the pages were lost. An action other than a
screenshot, meant for the lost page, is not done and says so. A restart that
fails is that call's error; the next call tries again (each try is bounded by
`start_timeout_s`; the executor's screenshot after a failed action is a try).

Notes. A string a page chose (a download's name, a refused host name, a
failure message) reaches a note only through `page_words`: cut to
`MAX_PAGE_WORDS` characters, quoted as an ASCII JSON string, and said to be
the page's words; a download's note names the sanitised saved name, not the
suggested one. No note is longer than `MAX_NOTE_CHARS`, and at most
`MAX_NOTES` wait for the next call: older ones are left out, and a first note
says how many.

Not covered: downloads are not asked for (a page starts them; the limits bound
them); the staging directory can pass a limit by a poll's worth of bytes
before the download is cancelled, and downloads running together are cancelled
together; a page that hangs costs `HUNG_AFTER_TIMEOUTS` timed-out calls before
it is replaced, and a slow page that times out as often is replaced the same.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import shutil
import socket
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import anyio

from .base import SandboxUnavailable
from .browser_files import (
    MAX_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOADS,
    MAX_UPLOAD_BYTES,
    WorkspaceFileError,
    read_workspace_file,
    save_download,
)
from .browser_jail import BrowserJail, Handoff, launch_args
from .browser_proxy import PolicyProxy, ResolverRules
from .computer import Button, ComputerError, ComputerUnavailable, Environment, Point, canonical_key
from .net_policy import DEFAULT_POLICY, NetworkPolicy, Refusal

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        Download,
        FileChooser,
        Page,
        Playwright,
    )

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
MAX_NOTES = 8
MAX_PAGE_WORDS = 100
"""Characters of a page-chosen string (a download's name, a host name) a note quotes."""
MAX_NOTE_CHARS = 500
DOWNLOAD_POLL_S = 0.2
HUNG_AFTER_TIMEOUTS = 2
DISCARD_TIMEOUT_S = 10.0
CHROMIUM_SERVICE_HOSTS = (
    "update.googleapis.com",
    "clients2.google.com",
    "clients2.googleusercontent.com",
    "*.gvt1.com",
)
"""Chromium's own component-update traffic (it asks even with --disable-component-update):
refused by the proxy under every policy, without a note for the model."""

_PLAYWRIGHT_KEYS = {"Space": " ", "PrintScreen": "PrintScreen", "ContextMenu": "ContextMenu"}
_MOUSE: dict[Button, Literal["left", "middle", "right"]] = {
    "left": "left",
    "wheel": "middle",
    "right": "right",
}


def playwright_key(name: str) -> str:
    """The key name Playwright's keyboard takes, for a key named any way `canonical_key` accepts."""
    key = canonical_key(name)
    return _PLAYWRIGHT_KEYS.get(key, key)


class BrowserComputer:
    """A `Computer` that is one page of a contained headless Chromium (environment "browser")."""

    def __init__(
        self,
        width: int = 1024,
        height: int = 768,
        *,
        start_url: str = "about:blank",
        workspace: str | os.PathLike[str] | None = None,
        policy: NetworkPolicy = DEFAULT_POLICY,
        executable_path: str = CHROMIUM,
        extra_args: Sequence[str] = (),
        headless: bool = True,
        action_timeout_s: float = 10.0,
        start_timeout_s: float = 30.0,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
        max_downloads: int = MAX_SESSION_DOWNLOADS,
        max_session_download_bytes: int = MAX_SESSION_DOWNLOAD_BYTES,
        hidden_paths: Sequence[str] = (),
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"display size must be positive, got {width}x{height}")
        self._width = width
        self._height = height
        self.start_url = start_url
        self.workspace = os.fspath(workspace) if workspace is not None else None
        self.policy = policy
        self.executable_path = executable_path
        self.extra_args = list(extra_args)
        self.headless = headless
        self.action_timeout_s = action_timeout_s
        self.start_timeout_s = start_timeout_s
        self.max_download_bytes = max_download_bytes
        self.max_downloads = max_downloads
        self.max_session_download_bytes = max_session_download_bytes
        self.hidden_paths = [os.path.realpath(p) for p in hidden_paths]
        """Host paths the file chooser refuses (the sandbox's `hidden_paths`), resolved."""
        self.staging_dir: str | None = None
        """The host directory Chromium stages downloads in, while the browser runs."""
        self.notices: list[str] = []
        """What holds and what does not, for the person (Chromium's own sandbox, the policy)."""
        self.sandbox_pid: int | None = None
        """bubblewrap's pid on the host while the browser runs (its descendants are the browser)."""
        self._stack: AsyncExitStack | None = None
        self._context: BrowserContext | None = None
        self._page: Page | None = None
        self._notes: list[str] = []
        self._left_out = 0
        self._chooser: FileChooser | None = None
        self._chooser_text = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._downloads = 0
        self._saved_bytes = 0
        self._active: dict[Download, str | None] = {}
        """Downloads in progress, with why they were cancelled (None: not cancelled)."""
        self._guard: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._timeouts = 0
        """Actions timed out in a row: at `HUNG_AFTER_TIMEOUTS` the page is replaced."""
        self._outer: AsyncExitStack | None = None
        """Playwright's driver: the session's, across browser restarts."""
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._restarts = 0
        """Browsers started in place of one that died (the screenshot retries across one)."""

    @property
    def display_width(self) -> int:
        return self._width

    @property
    def display_height(self) -> int:
        return self._height

    @property
    def environment(self) -> Environment:
        return "browser"

    @property
    def page(self) -> Page:
        """The Playwright page on screen (for the program that embeds this, not for the model)."""
        if self._page is None:
            raise ComputerError("the browser is not open: use `async with BrowserComputer() as b:`")
        return self._page

    def take_notes(self) -> list[str]:
        """What happened since the last call that the model should be told (refused
        connections, downloads, a file chooser), oldest first; clears them."""
        notes, self._notes = self._notes, []
        if self._left_out:
            notes.insert(0, f"{self._left_out} earlier notes were left out (too many at once).")
            self._left_out = 0
        return notes

    def _note(self, text: str) -> None:
        if len(text) > MAX_NOTE_CHARS:  # a backstop: page data is quoted and cut before this
            text = text[: MAX_NOTE_CHARS - 1] + "…"
        if text not in self._notes:
            self._notes.append(text)
        self._left_out += max(0, len(self._notes) - MAX_NOTES)
        del self._notes[:-MAX_NOTES]

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if shutil.which(self.executable_path) is None:
            raise ComputerUnavailable(
                f"{self.executable_path} not found: install Debian's chromium "
                "(.ci/setup-computer.sh)"
            )
        try:
            from playwright.async_api import Error as PlaywrightError
            from playwright.async_api import async_playwright
        except ImportError as e:
            raise ComputerUnavailable(
                f"the `playwright` Python package is not installed: {e}"
            ) from None
        self._outer = AsyncExitStack()
        try:
            with anyio.fail_after(self.start_timeout_s):
                self._playwright = await self._outer.enter_async_context(async_playwright())
            await self._start(first=True)
        except BaseException as e:
            with anyio.CancelScope(shield=True):
                await self._close()
            err = _start_error(e, self.start_timeout_s, PlaywrightError)
            if err is e:
                raise
            raise err from None
        return self

    async def _start(self, *, first: bool) -> None:
        """Start a browser in a new jail and open a page at `start_url` (its exit stack is
        `_stack`); on failure what was started is closed again."""
        stack = AsyncExitStack()
        self._stack = stack
        self._browser = None
        try:
            try:
                jail = BrowserJail(self.executable_path)
            except SandboxUnavailable as e:
                raise ComputerUnavailable(str(e)) from None
            stack.callback(jail.cleanup)
            self.staging_dir = jail.downloads
            stack.push_async_callback(self._settle_tasks)
            control = await jail.listen()
            stack.push_async_callback(control.aclose)
            handed = anyio.Event()
            box: list[Handoff] = []
            proxy = PolicyProxy(
                self.policy,
                rules=ResolverRules.from_args(self.extra_args),
                on_refusal=self._on_refusal,
                quiet_deny=CHROMIUM_SERVICE_HOSTS,
            )

            async def serve() -> None:
                box.append(await jail.accept(control))
                handed.set()
                await proxy.serve(await _listener(box[0]))

            # An asyncio task, not a task group: the browser outlives __aenter__'s scopes, and
            # Playwright ties this backend to asyncio anyway.
            self._spawn(serve())
            assert self._playwright is not None
            with anyio.fail_after(self.start_timeout_s):
                browser: Browser = await self._playwright.chromium.launch(
                    executable_path=jail.launcher,
                    headless=self.headless,
                    chromium_sandbox=True,
                    downloads_path=jail.downloads,
                    args=launch_args([*CHROMIUM_ARGS, *self.extra_args]),
                    timeout=self.start_timeout_s * 1000,
                )
                stack.push_async_callback(browser.close)
                self._browser = browser
                await handed.wait()
                self.sandbox_pid = box[0].sandbox_pid
                if first:  # a restarted browser's jail holds the same
                    self._tell(jail, box[0])
                context = await browser.new_context(
                    viewport={"width": self._width, "height": self._height},
                    # Refused in the browser: nothing is staged that would not be saved.
                    accept_downloads=self.workspace is not None and self.max_downloads > 0,
                )
                context.set_default_timeout(self.action_timeout_s * 1000)
                context.on("page", self._on_new_page)
                self._context = context
                self._page = await context.new_page()
                self._watch(self._page)
                if self.start_url and self.start_url != "about:blank":
                    await self._page.goto(self.start_url)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._close_browser()
            raise

    def _tell(self, jail: BrowserJail, handoff: Handoff) -> None:
        self.notices.append(self.policy.describe())
        self.notices.extend(jail.notices)  # its limits, or why none hold
        if jail.root_run:
            self.notices.append(
                f"the browser runs as uid {jail.uid} (not root), in namespaces of its own"
            )
        if not handoff.chromium_sandbox:
            self.notices.append(
                "chromium's own sandbox is off (--no-sandbox): this kernel refuses "
                "a user namespace inside bubblewrap; the bubblewrap sandbox still holds"
            )

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._close()

    async def _close(self) -> None:
        await self._close_browser()
        outer, self._outer = self._outer, None
        self._playwright = None
        if outer is not None:
            with anyio.move_on_after(self.start_timeout_s):
                await outer.aclose()

    async def _close_browser(self) -> None:
        """Close the browser, its proxy and tasks, and clean up its jail (cgroup, temp dirs)."""
        stack, self._stack = self._stack, None
        self._browser = None
        self._page = None
        self._context = None
        self._chooser = None
        self._chooser_text = ""
        self._timeouts = 0
        self.sandbox_pid = None
        self.staging_dir = None
        if stack is not None:
            with anyio.move_on_after(self.start_timeout_s):
                await stack.aclose()

    def _gone(self) -> bool:
        """The browser of an open session has died (killed, crashed, its jail killed).
        Playwright learns it when the DevTools pipe closes; bubblewrap's exit may be seen
        first, and is checked too so an action does not race that news."""
        if self._outer is None:
            return False  # not open: `page` says so
        browser, pid = self._browser, self.sandbox_pid
        return browser is None or not browser.is_connected() or (pid is not None and _exited(pid))

    async def _restart(self) -> None:
        """Put a new browser (a new jail, the same settings) in place of one that died.
        A failed start is an error for this call; the next call tries again."""
        self._restarts += 1
        start = self.start_url or "about:blank"
        with anyio.CancelScope(shield=True):
            await self._close_browser()
        try:
            await self._start(first=False)
        except BaseException as e:
            from playwright.async_api import Error as PlaywrightError

            err = _start_error(e, self.start_timeout_s, PlaywrightError)
            if not isinstance(err, (ComputerError, ComputerUnavailable)):
                raise
            raise ComputerError(
                f"the browser had closed (its process died) and a new one could not be "
                f"started: {err}; the next action tries again"
            ) from None
        self._note(
            f"The browser had closed (its process died) and was restarted at {start}: "
            "the pages it had open, their history and form fields, were lost."
        )

    async def _settle_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_new_page(self, page: Page) -> None:
        self._page = page  # a link or script opened a tab: the screen follows it
        self._watch(page)

    def _watch(self, page: Page) -> None:
        if getattr(page, "_itemloop_watched", False):
            return
        page._itemloop_watched = True  # type: ignore[attr-defined]
        page.on("download", self._on_download)
        page.on("filechooser", self._on_file_chooser)
        page.on("crash", self._on_crash)

    def _on_crash(self, page: Page) -> None:
        if page is self._page:
            self._replace(page, "crashed (its renderer died, e.g. out of memory)")

    def _replace(self, page: Page, why: str) -> None:
        if self._renewing is None:
            self._renewing = asyncio.get_running_loop().create_task(self._renew(page, why))
            self._tasks.add(self._renewing)
            self._renewing.add_done_callback(self._tasks.discard)

    async def _renew(self, crashed: Page, why: str) -> None:
        """Put a new page on screen in place of `crashed` (its renderer died: V8 out of
        memory, killed; or it stopped responding); without this every later action
        fails ("Target crashed") or times out."""
        try:
            assert self._context is not None
            page = await self._context.new_page()  # `_on_new_page` puts it on screen
            start = self.start_url or "about:blank"
            self._note(f"The page {why}; a new page was opened at {start}.")
            if start != "about:blank":
                with suppress(Exception):
                    await page.goto(start)
            with suppress(Exception), anyio.move_on_after(self.action_timeout_s):
                await crashed.close(run_before_unload=False)
        except Exception as e:
            if not self._gone():  # else the browser's restart says what happened
                self._note(f"The page {why}, and no new page could be opened: {e}")
        finally:
            self._renewing = None

    def _on_refusal(self, refusal: Refusal) -> None:
        at = f"; address {refusal.address}" if refusal.address else ""
        self._note(
            f"Blocked: the page's connection to {page_words(refusal.host)} (a host name the "
            f"page chose{at}) was refused by the browser's network policy: {refusal.rule}."
        )

    def _on_download(self, download: Download) -> None:
        self._downloads += 1
        if self.max_downloads == 0 and self.workspace is not None:
            self._note(
                f"The page's download named {page_words(download.suggested_filename)} (the "
                "page's words) was cancelled: downloads are turned off for this browser "
                "(at most 0 downloads a session)."
            )
            self._spawn(_discard(download))
            return
        if self._downloads > self.max_downloads:
            self._note(
                f"The page started more downloads than this session allows (at most "
                f"{self.max_downloads} downloads); the rest were cancelled."
            )
            self._spawn(_discard(download))
            return
        self._spawn(self._save(download))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _save(self, download: Download) -> None:
        name = download.suggested_filename
        said = f"The page's download named {page_words(name)} (the page's words)"
        if self.workspace is None:
            self._note(f"{said} was refused: this browser has no workspace.")
            await _discard(download)
            return
        self._active[download] = None
        if self._guard is None:
            self._guard = asyncio.get_running_loop().create_task(self._guard_downloads())
            self._tasks.add(self._guard)
            self._guard.add_done_callback(self._tasks.discard)
        try:
            source = await download.path()
            limit = min(
                self.max_download_bytes, self.max_session_download_bytes - self._saved_bytes
            )
            where, size = await anyio.to_thread.run_sync(
                save_download, self.workspace, str(source), name, limit
            )
            self._saved_bytes += size
        except WorkspaceFileError as e:
            self._note(f"{said} was not saved: {e}")
        except Exception as e:  # the download failed or was cancelled in the browser
            why = self._active.get(download)
            if why is not None:
                self._note(f"{said} was cancelled: {why}.")
            else:
                self._note(f"{said} failed: {page_words(str(e))}")
        else:
            folder, _, saved = where.rpartition("/")
            self._note(
                f"The page downloaded a file, saved as {folder}/{page_words(saved)} "
                "in the workspace (the name is the page's words)."
            )
        finally:
            self._active.pop(download, None)
            await _discard(download)  # the staged copy, on the host's /tmp

    async def _guard_downloads(self) -> None:
        """Cancel the downloads in progress once the staging directory shows one past
        `max_download_bytes`, or all of them past what the session may still save.
        Playwright reports no progress, so the directory is polled while any runs; which
        staged file is which download is not known, so the running ones go together."""
        try:
            while self._active and self.staging_dir is not None:
                largest, total = await anyio.to_thread.run_sync(_usage, self.staging_dir)
                why = None
                if largest > self.max_download_bytes:
                    why = f"it passed {self.max_download_bytes} bytes, the most one download may be"
                elif self._saved_bytes + total > self.max_session_download_bytes:
                    why = (
                        f"the session's downloads passed {self.max_session_download_bytes} "
                        "bytes together, the most it may save"
                    )
                if why is not None:
                    for d, cancelled in list(self._active.items()):
                        if cancelled is None:
                            self._active[d] = why
                            with suppress(Exception):
                                await d.cancel()
                await anyio.sleep(DOWNLOAD_POLL_S)
        finally:
            self._guard = None

    def _on_file_chooser(self, chooser: FileChooser) -> None:
        if self.workspace is None:
            self._note("The page opened a file chooser; it was cancelled (no workspace).")
            return
        self._chooser = chooser
        self._chooser_text = ""
        many = " (several files: one path a line)" if chooser.is_multiple() else ""
        self._note(
            "The page opened a file chooser: type a workspace-relative path"
            f"{many}, then press Enter to choose it, or Escape to cancel."
        )

    async def _choose(self) -> None:
        chooser, text = self._chooser, self._chooser_text
        assert chooser is not None and self.workspace is not None
        paths = [p for p in text.splitlines() if p.strip()]
        if not paths:
            raise ComputerError("type a workspace-relative path for the file chooser first")
        if len(paths) > 1 and not chooser.is_multiple():
            raise ComputerError("this file chooser takes one file; type one path")
        files = []
        budget = MAX_UPLOAD_BYTES  # for all the files chosen at once
        for p in paths:
            try:
                # abandon_on_cancel: a read stuck in the kernel (a hung network mount) must not
                # hold the call past its timeout; the thread ends when the read does.
                name, data = await anyio.to_thread.run_sync(
                    read_workspace_file,
                    self.workspace,
                    p,
                    budget,
                    self.hidden_paths,
                    abandon_on_cancel=True,
                )
            except WorkspaceFileError as e:
                self._chooser_text = ""
                raise ComputerError(f"file chooser: {e}") from None
            budget -= len(data)
            files.append({"name": name, "mimeType": _mime(name), "buffer": data})
        self._chooser = None
        self._chooser_text = ""
        await chooser.set_files(files)  # type: ignore[arg-type]
        self._note("Chose " + ", ".join(paths) + " in the file chooser.")

    async def goto(self, url: str) -> None:
        """Load `url` in the page on screen (for the embedding program)."""
        async with self._action("goto"):
            await self.page.goto(url)

    # -- actions ---------------------------------------------------------------

    async def screenshot(self) -> bytes:
        restarts = self._restarts
        try:
            async with self._action("screenshot"):
                return await self.page.screenshot(type="png", full_page=False)
        except ComputerError:
            if self._restarts == restarts or self._page is None:
                raise
        # the browser died during it and a new one was started: show the new one
        async with self._action("screenshot"):
            return await self.page.screenshot(type="png", full_page=False)
        raise AssertionError("unreachable")  # pragma: no cover - _action re-raises

    async def click(
        self, x: int, y: int, button: Button = "left", *, keys: Sequence[str] = ()
    ) -> None:
        async with self._action("click"), self._holding(keys):
            page = self.page
            if button == "back":
                await page.go_back()
            elif button == "forward":
                await page.go_forward()
            else:
                await page.mouse.click(x, y, button=_MOUSE[button])

    async def double_click(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None:
        async with self._action("double_click"), self._holding(keys):
            await self.page.mouse.dblclick(x, y)

    async def scroll(
        self, x: int, y: int, scroll_x: int, scroll_y: int, *, keys: Sequence[str] = ()
    ) -> None:
        async with self._action("scroll"), self._holding(keys):
            await self.page.mouse.move(x, y)
            await self.page.mouse.wheel(scroll_x, scroll_y)

    async def type(self, text: str) -> None:
        if self._chooser is not None:
            self._chooser_text += text  # a path for the open file chooser, not for the page
            return
        async with self._action("type"):
            await self.page.keyboard.type(text)

    async def keypress(self, keys: Sequence[str]) -> None:
        names = [playwright_key(k) for k in keys]
        if self._chooser is not None and names in (["Enter"], ["Escape"]):
            if names == ["Escape"]:
                self._chooser = None
                self._chooser_text = ""
                self._note("The file chooser was cancelled.")
                return
            async with self._action("file chooser"):
                await self._choose()
            return
        async with self._action("keypress"):
            keyboard = self.page.keyboard
            pressed: list[str] = []
            try:
                for k in names:
                    if len(k) == 1 and not k.isascii():
                        await keyboard.insert_text(k)  # not on Playwright's US layout
                        continue
                    await keyboard.down(k)
                    pressed.append(k)
            finally:
                for k in reversed(pressed):
                    await keyboard.up(k)

    async def move(self, x: int, y: int, *, keys: Sequence[str] = ()) -> None:
        async with self._action("move"), self._holding(keys):
            await self.page.mouse.move(x, y)

    async def drag(self, path: Sequence[Point], *, keys: Sequence[str] = ()) -> None:
        if not path:
            return
        async with self._action("drag"), self._holding(keys):
            mouse = self.page.mouse
            await mouse.move(*path[0])
            await mouse.down()
            try:
                for x, y in path[1:]:
                    await mouse.move(x, y)
            finally:
                await mouse.up()

    async def wait(self, ms: int) -> None:
        await anyio.sleep(max(0, ms) / 1000)

    # -- helpers ---------------------------------------------------------------

    @asynccontextmanager
    async def _action(self, name: str) -> AsyncIterator[None]:
        """Turn Playwright's errors and hangs into `ComputerError`s; replace a page that
        timed out `HUNG_AFTER_TIMEOUTS` actions in a row (a script looping forever)."""
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        if self._gone():
            await self._restart()
            if name != "screenshot":  # it was meant for a page that is gone
                raise ComputerError(
                    f"{name} was not done: the browser had closed and was restarted"
                )
        try:
            with anyio.fail_after(self.action_timeout_s * 2):
                if self._renewing is not None:  # the page crashed: act on its successor
                    await asyncio.shield(self._renewing)
                yield
            self._timeouts = 0
        except (TimeoutError, PlaywrightTimeout) as e:
            self._timeouts += 1
            if self._timeouts >= HUNG_AFTER_TIMEOUTS and self._page is not None:
                self._timeouts = 0
                self._replace(self._page, "did not respond (actions timed out twice in a row)")
            if isinstance(e, PlaywrightTimeout):
                raise ComputerError(f"{name} timed out in the browser: {e.message}") from None
            raise ComputerError(
                f"{name} timed out after {self.action_timeout_s * 2:g} s in the browser"
            ) from None
        except PlaywrightError as e:
            if self._gone():  # it died during the action
                await self._restart()
                raise ComputerError(
                    f"{name} failed: the browser closed during it and was restarted"
                ) from None
            raise ComputerError(f"{name} failed in the browser: {e.message}") from None

    @asynccontextmanager
    async def _holding(self, keys: Sequence[str]) -> AsyncIterator[None]:
        """Hold the modifier `keys` down around the block."""
        names = [playwright_key(k) for k in keys]
        keyboard = self.page.keyboard
        pressed: list[str] = []
        try:
            for k in names:
                await keyboard.down(k)
                pressed.append(k)
            yield
        finally:
            for k in reversed(pressed):
                await keyboard.up(k)


def _start_error(
    e: BaseException, timeout_s: float, playwright_error: type[Exception]
) -> BaseException:
    """The error to raise for `e`, raised while starting the browser."""
    if isinstance(e, TimeoutError):
        return ComputerError(f"chromium did not start within {timeout_s:g} s")
    if isinstance(e, playwright_error):
        return ComputerError(f"chromium did not start: {getattr(e, 'message', e)}")
    return e


def _exited(pid: int) -> bool:
    """`pid` has exited: gone, or a zombie its parent (Playwright's driver) has not reaped."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


async def _listener(handoff: Handoff) -> anyio.abc.SocketListener:
    sock: socket.socket = handoff.listener
    sock.setblocking(False)
    return await anyio.abc.SocketListener.from_socket(sock)


async def _discard(download: Download) -> None:
    """Cancel `download` if it still runs and delete its staged copy."""
    with suppress(Exception), anyio.move_on_after(DISCARD_TIMEOUT_S):
        await download.cancel()
        await download.delete()


def _usage(directory: str) -> tuple[int, int]:
    """(the largest file's size, all files' sizes together) in `directory`."""
    sizes = [0]
    with suppress(OSError), os.scandir(directory) as entries:  # gone: the browser closed
        for e in entries:
            with suppress(OSError):  # a download finished and was removed meanwhile
                sizes.append(e.stat(follow_symlinks=False).st_size)
    return max(sizes), sum(sizes)


def page_words(text: str, limit: int = MAX_PAGE_WORDS) -> str:
    """`text`, chosen by a page, for a note to the model: cut to `limit` characters (an
    ellipsis says so) and quoted as an ASCII JSON string, so it reads as data, not as our
    words (and a bidi override or a control character shows as its escape)."""
    if len(text) <= limit:
        return json.dumps(text)
    return json.dumps(text[: limit - 1])[:-1] + '…"'


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
