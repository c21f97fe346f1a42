"""The contained browser: its own namespaces as an unprivileged user, the network policy
for pages (held by the proxy below the page), downloads into and uploads from the workspace.

All network stays on this machine: 127.0.0.1, and addresses the netns test adds inside a
network namespace of its own (`unshare --net`, as root)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from computer_probe import CHROMIUM, HERE, LOCAL, pixel, require, until
from helpers import cmdline
from web_probe import html, serve

from itemloop.sandbox.browser_computer import BrowserComputer
from itemloop.sandbox.browser_files import sanitise_name
from itemloop.sandbox.idmap import COMMAND_ID
from itemloop.sandbox.net_policy import NetworkPolicy
from itemloop.tools.computer import ComputerExecutor

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("need_browser")]

BANNER_RED = (170, 0, 0)


async def text(b: BrowserComputer) -> str:
    return str(await b.page.evaluate("document.body ? document.body.innerText : ''"))


def descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parents[int(d)] = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


# -- the sandbox -------------------------------------------------------------------


def chromium_processes(sandbox_pid: int) -> list[int]:
    found = []
    for p in descendants(sandbox_pid):
        try:
            exe = os.readlink(f"/proc/{p}/exe")
        except OSError:
            continue  # it exited meanwhile
        if os.path.realpath(exe).startswith("/usr/lib/chromium/"):
            found.append(p)
    return found


def kill_each(pids: list[int]) -> None:
    """SIGKILL each of `pids`; one that exited since it was listed (a child of another
    killed first) is already where the test wants it."""
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def check_contained(pids: list[int]) -> None:
    """Each process is an unprivileged uid in namespaces other than ours, with a private HOME.

    A helper process that exited since it was listed is skipped; the browser's own process
    (the one without a --type) must be among those checked."""
    checked = []
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            spaces = {ns: os.readlink(f"/proc/{p}/ns/{ns}") for ns in NAMESPACES}
        except (FileNotFoundError, ProcessLookupError):
            continue
        uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
        assert all(u != "0" for u in uids), uids
        if os.geteuid() == 0:
            # the commands' unallocated id: no daemon of the host runs as it (nobody would)
            assert uids == [str(COMMAND_ID)] * 4
        for ns, space in spaces.items():
            assert space != os.readlink(f"/proc/self/ns/{ns}"), ns
        checked.append(p)
    browser = next(p for p in checked if b"--type=" not in cmdline(p))
    env = Path(f"/proc/{browser}/environ").read_bytes().split(b"\0")
    assert b"HOME=/tmp/home" in env
    assert not any(e.startswith(b"OPENAI_") for e in env)
    # the profile is in the sandbox's private /tmp: the host's copy stays empty
    cmd = cmdline(browser).split(b"\0")
    profile = os.fsdecode(next(a for a in cmd if a.startswith(b"--user-data-dir=")))
    profile = profile.partition("=")[2]
    assert not os.path.exists(profile) or not os.listdir(profile)
    assert b"--no-sandbox" not in cmd  # this kernel allows Chromium's own sandbox


NAMESPACES = ("user", "pid", "ipc", "net", "uts")


def _listing(d: Path) -> list[str]:
    return sorted(os.listdir(d)) if d.is_dir() else []


async def test_chromium_runs_unprivileged_in_namespaces_of_its_own() -> None:
    async with BrowserComputer(320, 240) as b:
        assert b.sandbox_pid is not None
        chromium = chromium_processes(b.sandbox_pid)
        assert len(chromium) >= 2  # the browser and at least one helper
        check_contained(chromium)
    assert not await anyio.Path(f"/proc/{chromium[0]}").exists()


# -- the network policy ---------------------------------------------------------------


async def test_a_server_on_host_loopback_gets_nothing() -> None:
    with serve({"/": html("<p>host loopback</p>")}) as site:
        async with BrowserComputer(640, 480, start_url="data:text/html,<p>start</p>") as b:
            status = await b.page.evaluate(
                f"fetch({site.url!r}).then(r => r.status).catch(e => 'error')"
            )
            await b.goto(site.url)
            shown = await text(b)
            notes = b.take_notes()
        assert status in ("error", 403)
        assert site.hits == []
        assert "Blocked by itemloop" in shown and "loopback" in shown
        assert any("127.0.0.1" in n and "loopback" in n for n in notes)


async def test_network_none_reaches_nothing() -> None:
    with serve({"/": html("<p>reached</p>")}) as site:
        async with BrowserComputer(640, 480, policy=NetworkPolicy.of("none")) as b:
            await b.goto(site.url)
            shown = await text(b)
        assert site.hits == []
        assert "--browser-network none" in shown
    with serve({"/": html("<p>reached</p>")}) as site:  # the same page under 'all' loads
        async with BrowserComputer(640, 480, policy=LOCAL) as b:
            await b.goto(site.url)
            assert "reached" in await text(b)


async def test_allow_list_by_host_name() -> None:
    with serve({"/": html("<p>the allowed site</p>")}) as site:
        rules = f"--host-resolver-rules=MAP *.test 127.0.0.1:{site.port}"
        policy = NetworkPolicy.of("all", allow=["allowed.test"])
        async with BrowserComputer(640, 480, policy=policy, extra_args=[rules]) as b:
            await b.goto("http://allowed.test/")
            assert "the allowed site" in await text(b)
            assert site.hits.count("/") == 1
            await b.goto("http://other.test/")
            shown = await text(b)
        assert "other.test" in shown and "not in --browser-allow allowed.test" in shown
        assert site.hits.count("/") == 1
        deny = NetworkPolicy.of("all", deny=["*.test"])
        async with BrowserComputer(640, 480, policy=deny, extra_args=[rules]) as b:
            await b.goto("http://allowed.test/")
            assert "--browser-deny *.test" in await text(b)
        assert site.hits.count("/") == 1


def test_private_and_link_local_refused_public_reached_in_a_netns() -> None:
    require(binaries=(CHROMIUM, "unshare", "ip", "nsenter", "setpriv"), modules=("playwright",))
    if os.geteuid() != 0:
        pytest.skip("creating a network namespace with addresses needs root")
    # 1.2.3.4 lives in a second namespace behind a veth pair: on this one's own loopback
    # it would be the host's own address, which the policy refuses.
    setup = "\n".join(
        [
            "set -e",
            "setpriv --pdeathsig KILL unshare --net sleep 600 &",
            "P=$!",
            "trap 'kill $P' EXIT",
            'while [ "$(readlink /proc/$P/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do :; done',
            "ip link set lo up",
            *[f"ip addr add {a}/32 dev lo" for a in ("10.7.7.7", "169.254.7.7")],
            "ip link add veth0 type veth peer name veth1 netns $P",
            "ip link set veth0 up",
            "ip route add 1.2.3.4/32 dev veth0",
            "nsenter -t $P -n sh -c 'ip link set lo up && ip addr add 1.2.3.4/32 dev veth1"
            " && ip link set veth1 up && ip route add default dev veth1'",
            f"PUBLIC_NETNS=/proc/$P/ns/net {sys.executable} {HERE / 'netns_probe.py'}",
        ]
    )
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", setup],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["hits"]["public"][0] == "/"  # the public-range listener IS reached
    assert out["hits"]["private"] == [] and out["hits"]["link_local"] == []
    assert out["fetched"] == {"10.7.7.7": "error", "169.254.7.7": "error"}
    assert "private addresses are not public" in out["texts"]["10.7.7.7"]
    assert "link-local addresses are not public" in out["texts"]["169.254.7.7"]
    assert any("169.254.7.7" in n for n in out["notes"])


async def test_blocked_navigation_reaches_the_model_on_screenshot_and_in_output() -> None:
    with serve({"/": html("<p>secret</p>")}) as site:
        link = f"<a href='{site.url}' style='display:block;width:640px;height:480px'>go</a>"
        start = "data:text/html;base64," + base64.b64encode(link.encode()).decode()
        async with BrowserComputer(640, 480, start_url=start) as b:
            ex = ComputerExecutor(b)
            click = {"type": "click", "button": "left", "x": 300, "y": 300}
            r = await ex.execute({"type": "computer_call", "call_id": "c1", "action": click})
            shot = {"type": "screenshot"}

            async def notes() -> Any:
                nonlocal r
                if not r.notes:
                    r = await ex.execute({"type": "computer_call", "call_id": "c2", "action": shot})
                return r

            r = await until(notes, lambda res: bool(res.notes))
            page_text = await until(lambda: text(b), lambda t: "Blocked by itemloop" in t)
        assert site.hits == []
        said = r.notes[0]["content"][0]["text"]
        assert "127.0.0.1" in said and "loopback" in said and "127.0.0.1" in r.summary
        png = base64.b64decode(r.output["output"]["image_url"].split(",", 1)[1])
        assert pixel(png, 2, 2) == BANNER_RED
        assert "loopback addresses are not public" in page_text


# -- files --------------------------------------------------------------------------


async def test_a_download_lands_in_the_workspace(tmp_path: Path) -> None:
    attachment = {"Content-Disposition": 'attachment; filename="report.txt"'}
    pages = {
        "/": html("<a id=d href='/file' style='display:block;width:600px;height:400px'>dl</a>"),
        "/file": ("text/plain", b"quarterly numbers\n", attachment),
    }
    with serve(pages) as site:
        async with BrowserComputer(
            640, 480, start_url=site.url, workspace=tmp_path, policy=LOCAL
        ) as b:
            saved = tmp_path / "downloads"

            async def names() -> list[str]:
                return await anyio.to_thread.run_sync(_listing, saved)

            await b.click(300, 200)
            await until(names, lambda n: len(n) == 1)
            await b.click(300, 200)
            got = await until(names, lambda n: len(n) == 2)
            notes = b.take_notes()
    assert got == ["report (1).txt", "report.txt"]
    assert (saved / "report.txt").read_bytes() == b"quarterly numbers\n"
    assert any('downloads/"report.txt"' in n for n in notes)


async def test_a_download_never_follows_a_symlinked_downloads_dir(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "downloads").symlink_to(outside)
    pages = {
        "/": html("<a href='/f' style='display:block;width:600px;height:400px'>dl</a>"),
        "/f": ("text/plain", b"x", {"Content-Disposition": "attachment; filename=x.txt"}),
    }
    with serve(pages) as site:
        async with BrowserComputer(640, 480, start_url=site.url, workspace=ws, policy=LOCAL) as b:
            await b.click(300, 200)
            notes = await until(lambda: _notes(b), bool)
    assert os.listdir(outside) == []
    assert "not saved" in notes[0] and "downloads/" in notes[0]


async def _notes(b: BrowserComputer) -> list[str]:
    return b.take_notes()


def test_download_names_are_sanitised() -> None:
    assert sanitise_name("../../etc/passwd") == "passwd"
    assert sanitise_name(".bashrc") == "_bashrc"
    assert sanitise_name("a\x00b\nc.txt") == "a_b_c.txt"
    assert sanitise_name("") == "download"
    assert len(sanitise_name("x" * 500 + ".pdf").encode()) <= 200


CHOOSER_PAGE = """<input type=file id=f style='position:absolute;left:20px;top:20px;
width:300px;height:60px'><pre id=out></pre><script>
document.getElementById('f').addEventListener('change', async e => {
  const f = e.target.files[0];
  document.getElementById('out').textContent = f.name + ':' + await f.text();
});</script>"""


async def test_a_file_chooser_picks_a_workspace_file(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "hello.txt").write_text("hello from the workspace")
    (tmp_path / "link.txt").symlink_to("/etc/hostname")
    start = "data:text/html;base64," + base64.b64encode(CHOOSER_PAGE.encode()).decode()
    async with BrowserComputer(640, 480, start_url=start, workspace=tmp_path) as b:
        ex = ComputerExecutor(b)
        click = {"type": "click", "button": "left", "x": 100, "y": 50}
        r = await ex.execute({"type": "computer_call", "call_id": "c1", "action": click})
        seen = [" ".join(n["content"][0]["text"] for n in r.notes)]

        async def chooser_noted() -> bool:
            seen.append(" ".join(b.take_notes()))
            return "file chooser" in " ".join(seen)

        await until(chooser_noted, bool)
        for bad in ("../etc/passwd", "/etc/passwd", "link.txt"):
            acts = [{"type": "type", "text": bad}, {"type": "keypress", "keys": ["ENTER"]}]
            r = await ex.execute({"type": "computer_call", "call_id": "c2", "actions": acts})
            assert not r.ok and "file chooser" in r.summary, bad
        acts = [
            {"type": "type", "text": "notes/hello.txt"},
            {"type": "keypress", "keys": ["ENTER"]},
        ]
        r = await ex.execute({"type": "computer_call", "call_id": "c3", "actions": acts})
        assert r.ok, r.summary
        shown = await until(
            lambda: b.page.evaluate("document.getElementById('out').textContent"), bool
        )
    assert shown == "hello.txt:hello from the workspace"


pytestmark.append(pytest.mark.timeout(180))


async def test_the_toolset_gives_the_browser_its_policy_and_workspace(tmp_path: Path) -> None:
    from itemloop.sandbox.base import SandboxOptions
    from itemloop.tools.config import ComputerConfig, SandboxConfig, ToolsetConfig
    from itemloop.tools.toolset import Toolset

    pages = {
        "/": html("<a href='/f' style='display:block;width:600px;height:400px'>dl</a>"),
        "/f": ("text/plain", b"via toolset", {"Content-Disposition": "attachment; filename=t.txt"}),
    }
    with serve(pages) as site:
        config = ToolsetConfig(
            builtins=("computer",),
            sandbox=SandboxConfig(
                workspace=tmp_path,
                options=SandboxOptions(hidden_paths=(str(tmp_path / "secret.txt"),)),
            ),
            computer=ComputerConfig(
                start_url=site.url, browser_network="all", browser_deny=("evil.test",)
            ),
        )
        async with Toolset(config) as tools:
            assert any("any address" in n and "except evil.test" in n for n in tools.notices)
            b = tools.computer
            assert isinstance(b, BrowserComputer)
            assert b.hidden_paths == [str((tmp_path / "secret.txt").resolve())]
            await b.click(300, 200)
            saved = tmp_path / "downloads"
            await until(lambda: anyio.to_thread.run_sync(_listing, saved), bool)
    assert (saved / "t.txt").read_bytes() == b"via toolset"


def test_a_planted_symlink_in_the_staging_dir_is_not_copied(tmp_path: Path) -> None:
    from itemloop.sandbox.browser_files import WorkspaceFileError, save_download

    secret = tmp_path / "secret"
    secret.write_text("root only")
    staged = tmp_path / "staged"
    staged.symlink_to(secret)
    ws = tmp_path / "ws"
    ws.mkdir()
    with pytest.raises(WorkspaceFileError, match="unreadable"):
        save_download(str(ws), str(staged), "x.txt")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(WorkspaceFileError, match="not a plain file"):
        save_download(str(ws), str(fifo), "x.txt")
    assert _listing(ws / "downloads") == []


# -- a page that crashes ------------------------------------------------------------


def renderer_processes(sandbox_pid: int) -> list[int]:
    return [p for p in chromium_processes(sandbox_pid) if b"--type=renderer" in cmdline(p)]


async def test_a_crashed_renderer_is_replaced_by_a_new_page() -> None:
    start = "data:text/html,<p>start page</p>"
    async with BrowserComputer(320, 240, start_url=start) as b:
        assert b.sandbox_pid is not None
        ex = ComputerExecutor(b)
        renderers = await anyio.to_thread.run_sync(renderer_processes, b.sandbox_pid)
        assert renderers
        kill_each(renderers)  # what a V8 out-of-memory does to it
        said: list[str] = []

        async def shot() -> Any:
            r = await ex.execute(
                {"type": "computer_call", "call_id": "c", "action": {"type": "screenshot"}}
            )
            said.extend(n["content"][0]["text"] for n in r.notes)
            return r

        await until(shot, lambda r: r.ok and any("crashed" in n for n in said))
        assert "start page" in await text(b)
        r = await ex.execute(
            {"type": "computer_call", "call_id": "d", "action": {"type": "click", "x": 5, "y": 5}}
        )
        assert r.ok, r.summary


async def test_a_page_that_stops_responding_is_replaced_after_two_timeouts_in_a_row() -> None:
    start = "data:text/html,<p>start page</p>"
    hang = "data:text/html,<p>hang</p><script>onmousedown = () => { for (;;) {} }</script>"
    async with BrowserComputer(320, 240, start_url=start, action_timeout_s=3) as b:
        ex = ComputerExecutor(b)
        await b.goto(hang)
        click = {"type": "click", "x": 5, "y": 5}
        # the click hangs, then the screenshot after it: two timeouts in a row
        r = await ex.execute({"type": "computer_call", "call_id": "h1", "action": click})
        said = [n["content"][0]["text"] for n in r.notes]
        assert not r.ok and "time" in r.summary.lower(), r.summary
        r = await ex.execute({"type": "computer_call", "call_id": "h2", "action": click})
        said += [n["content"][0]["text"] for n in r.notes]
        assert r.ok, r.summary
        assert any("did not respond" in n for n in said)
        assert "start page" in await text(b)


# -- a browser that dies --------------------------------------------------------------


def gone(pid: int) -> bool:
    """`pid` has exited (a zombie not yet reaped by Playwright's driver counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "ZX"
    except OSError:
        return True


async def test_a_browser_killed_under_the_session_is_restarted(tmp_path: Path) -> None:
    start = "data:text/html,<p>start page</p>"
    async with BrowserComputer(320, 240, start_url=start, workspace=tmp_path) as b:
        ex = ComputerExecutor(b)
        old_pid, old_staging = b.sandbox_pid, b.staging_dir
        assert old_pid is not None and old_staging is not None
        await b.goto("data:text/html,<p>elsewhere</p>")
        old = await anyio.to_thread.run_sync(chromium_processes, old_pid)
        assert old
        kill_each(old)  # what the OOM killer does to the browser
        await until(lambda: anyio.to_thread.run_sync(lambda: gone(old_pid)), bool)
        shot = {"type": "screenshot"}
        r = await ex.execute({"type": "computer_call", "call_id": "s1", "action": shot})
        assert r.ok, r.summary
        said = " ".join(n["content"][0]["text"] for n in r.notes)
        assert "browser" in said and "restarted" in said and "lost" in said, said
        assert "start page" in await text(b)
        new_pid = b.sandbox_pid
        assert new_pid is not None and new_pid != old_pid
        new = await anyio.to_thread.run_sync(chromium_processes, new_pid)
        assert len(new) >= 2
        check_contained(new)
        assert b.staging_dir is not None and await anyio.Path(b.staging_dir).is_dir()
        assert b.staging_dir != old_staging
        r = await ex.execute(
            {"type": "computer_call", "call_id": "c", "action": {"type": "click", "x": 5, "y": 5}}
        )
        assert r.ok and not r.notes, r.summary
        assert not await anyio.Path(old_staging).exists()  # the old jail was cleaned up
    assert all(gone(p) for p in old + new)


async def test_a_restart_that_fails_is_one_error_and_the_next_call_tries_again() -> None:
    start = "data:text/html,<p>start page</p>"
    async with BrowserComputer(320, 240, start_url=start) as b:
        ex = ComputerExecutor(b)
        old_pid = b.sandbox_pid
        assert old_pid is not None
        kill_each(await anyio.to_thread.run_sync(chromium_processes, old_pid))
        await until(lambda: anyio.to_thread.run_sync(lambda: gone(old_pid)), bool)
        b.executable_path = "/nonexistent/chromium"  # the restart cannot start a browser
        click = {"type": "click", "x": 5, "y": 5}
        r = await ex.execute({"type": "computer_call", "call_id": "c1", "action": click})
        assert not r.ok and "could not be started" in r.summary, r.summary
        assert r.output["type"] == "computer_call_output"
        b.executable_path = CHROMIUM
        r = await ex.execute({"type": "computer_call", "call_id": "c2", "action": click})
        assert not r.ok and "click was not done" in r.summary, r.summary
        assert any("restarted" in n["content"][0]["text"] for n in r.notes)
        assert "start page" in await text(b)
        assert b.sandbox_pid is not None
        check_contained(await anyio.to_thread.run_sync(chromium_processes, b.sandbox_pid))
