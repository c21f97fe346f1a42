"""The docker sandbox's fast path in any image, and the exec path it falls back to.

Three images besides the python one (`.ci/setup-sandboxes.sh` builds them):
busybox only (`/bin/sh` and its applets), no shell at all (one static binary,
`.ci/probe.c`, and its tool links), and musl without glibc (the probe linked
against musl, busybox-static as `/bin/sh`). The runner comes from the bundle
(`runner_bundle`), mounted read-only; a script in the image without a shell
runs under the bundled busybox.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from backends import BUSYBOX_IMAGE, MUSL_IMAGE, NOSHELL_IMAGE

from itemloop.sandbox import SandboxOptions, SandboxUnavailable
from itemloop.sandbox.channel_sandbox import ChannelSandbox
from itemloop.sandbox.docker_sandbox import DockerSandbox
from itemloop.sandbox.runner_bundle import (
    BUNDLE_MOUNT,
    engine_problem,
    host_goarch,
    runner_bundle,
)
from itemloop.tools.shell import ShellExecutor

pytestmark = [pytest.mark.anyio, pytest.mark.docker]

Make = Callable[..., ChannelSandbox]
Procs = Callable[[str], list[str]]

IMAGES = ["docker", "docker-noshell", "docker-musl"]
"""busybox only, no shell at all, musl."""
PROBE_IMAGES = ["docker-noshell", "docker-musl"]
"""The images whose tools are the probe (`.ci/probe.c`): static, and linked against musl."""


def _unique_sleep() -> tuple[str, str]:
    """Two sleep durations no other process on this machine is likely to use."""
    n = 400000 + uuid.uuid4().int % 500000
    return str(n), str(n + 1)


def _docker(sb: ChannelSandbox) -> DockerSandbox:
    assert isinstance(sb, DockerSandbox)
    return sb


def _fast(sb: ChannelSandbox) -> ChannelSandbox:
    """`sb`, checked to run its commands through the runner (the fast path)."""
    assert _docker(sb).mode == "runner", sb.notices
    return sb


# --- the fast path ---------------------------------------------------------------


@pytest.mark.parametrize("kind", IMAGES)
async def test_commands_go_through_the_runner(kind: str, workspace: Path, make: Make) -> None:
    async with make(kind, workspace) as sb:
        _fast(sb)
        assert [n for n in sb.notices if "set-user-ID" not in n] == [], sb.notices
        r = await sb.run(["true"])
        assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
        r = await sb.run(["echo", "a b", "c"])
        assert r.stdout == "a b c\n"
        r = await sb.run(["no-such-command-itemloop"])
        assert r.exit_code == 127
        r = await sb.run(script="echo out; echo err >&2; exit 3")
        assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
        await sb.write_file("sub/f.txt", b"hello")
        r = await sb.run(["cat", "f.txt"], cwd="sub")
        assert r.stdout == "hello"


@pytest.mark.parametrize("kind", IMAGES)
async def test_scripts_use_the_image_shell_or_the_bundled_one(
    kind: str, workspace: Path, make: Make
) -> None:
    async with make(kind, workspace) as sb:
        _fast(sb)
        bundle = _docker(sb).bundle
        assert bundle is not None
        if kind == "docker-noshell":
            assert sb.shell == f"{BUNDLE_MOUNT}/bin/sh" == bundle.shell
        else:
            assert sb.shell == "/bin/sh"
        r = await sb.run(["/bin/sh", "-c", "echo image shell"])
        assert r.exit_code == (127 if kind == "docker-noshell" else 0), r
        # shell_call, the tool that needs a shell, works in every image.
        res = await ShellExecutor(sb).execute(
            {
                "type": "shell_call",
                "call_id": "c1",
                "status": "completed",
                "action": {"commands": ["x=1; echo $((x + 1))"]},
            }
        )
        assert res.ok, res.output
        assert res.output["output"][0]["stdout"] == "2\n"


async def test_musl_image_has_no_glibc(workspace: Path, make: Make) -> None:
    """The musl image is what it claims: the bundle brings the only glibc in it."""
    async with make("docker-musl", workspace) as sb:
        _fast(sb)
        for path in ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"):
            r = await sb.run(["exists", path])
            assert r.exit_code == 1, path
        r = await sb.run(["exists", "/lib/ld-musl-x86_64.so.1"])
        assert r.exit_code == 0


@pytest.mark.parametrize("kind", IMAGES)
async def test_timeout_kills_the_whole_tree(
    kind: str, workspace: Path, make: Make, host_procs: Procs
) -> None:
    a, b = _unique_sleep()
    script = f"sleep {a} & (setsid sh -c 'sleep {b} & exit 0' &) ; sleep {a}"
    async with make(kind, workspace) as sb:
        _fast(sb)
        r = await sb.run(script=script, timeout_s=1.0)
        assert r.timed_out and r.exit_code is None
        assert host_procs(f"sleep {a}") == [] and host_procs(f"sleep {b}") == []
        if kind in PROBE_IMAGES:
            # The image's own program: a background child and a setsid daemon.
            r = await sb.run(["tree", a, b], timeout_s=1.0)
            assert r.timed_out and r.exit_code is None
            assert host_procs(f"sleep {a}") == [] and host_procs(f"sleep {b}") == []
        r = await sb.run(["echo", "alive"])
        assert r.stdout == "alive\n"


@pytest.mark.parametrize("kind", IMAGES)
async def test_background_process_lives_until_the_session_closes(
    kind: str, workspace: Path, make: Make, host_procs: Procs
) -> None:
    a, b = _unique_sleep()
    async with make(kind, workspace) as sb:
        _fast(sb)
        r = await sb.run(script=f"sleep {a} & echo $! > bg.pid; echo started")
        assert (r.exit_code, r.stdout) == (0, "started\n")
        r = await sb.run(script="kill -0 $(cat bg.pid) && echo running")
        assert r.stdout == "running\n"
        if kind in PROBE_IMAGES:
            r = await sb.run(["bg", b])  # the child keeps stdout open: the call returns anyway
            assert r.exit_code == 0
            r = await sb.run(["alive", r.stdout.strip()])
            assert r.stdout == "running\n"
        assert host_procs(f"sleep {a}") != []
    assert host_procs(f"sleep {a}") == [] and host_procs(f"sleep {b}") == []


@pytest.mark.parametrize("kind", IMAGES)
async def test_output_is_capped(kind: str, workspace: Path, make: Make) -> None:
    async with make(kind, workspace) as sb:
        _fast(sb)
        r = await sb.run(
            script="head -c 50000000 /dev/zero | tr '\\0' a; echo END", output_limit=2000
        )
        assert r.exit_code == 0
        assert r.stdout.endswith("aEND\n") and r.stdout_dropped == 50000004 - 2000
        if kind in PROBE_IMAGES:
            r = await sb.run(["spew", "50000000"], output_limit=2000)
            assert r.exit_code == 0
            assert r.stdout.startswith("a" * 900) and r.stdout.endswith("aEND\n")
            assert r.stdout_dropped == 50000004 - 2000


@pytest.mark.parametrize("kind", IMAGES)
async def test_cancelled_command_is_killed(
    kind: str, workspace: Path, make: Make, host_procs: Procs
) -> None:
    a, _ = _unique_sleep()
    fifo = workspace / "started"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    async with make(kind, workspace) as sb:
        _fast(sb)
        outcome: list[object] = []

        async def command() -> None:
            outcome.append(await sb.run(script=f"echo up > started; exec sleep {a}"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(command)
            # Opening the FIFO blocks until the command has opened it to write.
            line = await anyio.to_thread.run_sync(fifo.read_text)
            assert line == "up\n"
            tg.cancel_scope.cancel()
        assert outcome == []
        assert host_procs(f"sleep {a}") == []
        r = await sb.run(["echo", "alive"])
        assert r.stdout == "alive\n"


@pytest.mark.parametrize("kind", IMAGES)
async def test_nothing_the_bundle_adds_is_writable(kind: str, workspace: Path, make: Make) -> None:
    async with make(kind, workspace) as sb:
        _fast(sb)
        bundle = _docker(sb).bundle
        assert bundle is not None
        before = (bundle.path / "runner.py").read_bytes()
        targets = ["runner.py", "bin/python3", "bin/busybox", "shlib/libc.so.6", "new-file"]
        for t in targets:
            r = await sb.run(script=f"echo x > {BUNDLE_MOUNT}/{t}")
            assert r.exit_code != 0 and "Read-only file system" in r.stderr, (t, r)
        if kind in PROBE_IMAGES:
            r = await sb.run(["write", f"{BUNDLE_MOUNT}/runner.py"])
            assert r.exit_code == 1 and "Read-only file system" in r.stderr, r
        r = await sb.run(["cat", "/proc/mounts"])
        mount = [ln for ln in r.stdout.splitlines() if ln.split()[1] == BUNDLE_MOUNT]
        assert len(mount) == 1 and "ro" in mount[0].split()[3].split(","), r.stdout
        assert (bundle.path / "runner.py").read_bytes() == before
        assert not (bundle.path / "new-file").exists()


# --- the bundle --------------------------------------------------------------------

BUILD = """
import sys
from pathlib import Path
from itemloop.sandbox.runner_bundle import runner_bundle
print(runner_bundle(Path(sys.argv[1])).path)
"""


def test_two_processes_building_at_once_get_one_complete_bundle(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", BUILD, str(cache)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    paths = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert paths[0] == paths[1]
    assert sorted(os.listdir(cache)) == [os.path.basename(paths[0])]  # no temporary left
    bundle = runner_bundle(cache)  # and this process finds it complete
    assert str(bundle.path) == paths[0]
    manifest = json.loads((bundle.path / "bundle.json").read_text())
    assert (bundle.path / "shlib" / manifest["loader"]).is_file()


def test_engine_of_another_architecture_cannot_run_the_bundle() -> None:
    import docker

    version = docker.from_env().version()
    assert engine_problem(version) is None  # this machine's engine
    other = "arm64" if host_goarch() != "arm64" else "amd64"
    why = engine_problem({**version, "Arch": other})
    assert why is not None and other in why and host_goarch() in why
    why = engine_problem({**version, "Os": "windows"})
    assert why is not None and "windows" in why


# --- the exec path -----------------------------------------------------------------


async def test_fast_path_off_takes_the_exec_path_and_says_so(workspace: Path, make: Make) -> None:
    async with make("docker-exec", workspace) as sb:
        assert _docker(sb).mode == "exec"
        (notice,) = [n for n in sb.notices if "set-user-ID" not in n]
        assert "fast_path=False" in notice and "docker exec" in notice and "\n" not in notice
        r = await sb.run(script="echo via exec")
        assert (r.exit_code, r.stdout) == (0, "via exec\n")


async def test_unusable_bundle_cache_takes_the_exec_path_and_says_why(
    workspace: Path, make: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "cache-file"
    not_a_dir.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_dir))
    async with make("docker", workspace) as sb:
        assert _docker(sb).mode == "exec"
        said = [n for n in sb.notices if "set-user-ID" not in n]
        assert len(said) == 1 and str(not_a_dir) in said[0], sb.notices
        r = await sb.run(["echo", "still works"])
        assert r.stdout == "still works\n"


@pytest.mark.parametrize(
    "docker_host", ["tcp://127.0.0.1:1", "ssh://nobody@127.0.0.1:1", "https://127.0.0.1:1"]
)
async def test_engine_on_another_machine_is_refused(
    docker_host: str, workspace: Path, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    make("docker", workspace)  # skips without the local engine and image
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    sb = DockerSandbox(workspace, SandboxOptions(), image="itemloop-test:busybox")
    with pytest.raises(SandboxUnavailable) as e:
        async with sb:
            pass
    message = str(e.value)
    assert docker_host in message and "this machine" in message, message
    assert "bind mount" in message


# --- the image's environment -------------------------------------------------------


@contextlib.contextmanager
def derived_image(base: str, lines: str) -> Iterator[str]:
    """A throw-away image `FROM base` plus Dockerfile `lines` (built offline), removed after."""
    import docker

    client = docker.from_env()
    tag = f"itemloop-test-derived:{uuid.uuid4().hex[:12]}"
    dockerfile = f"FROM {base}\n{lines}"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True)


@pytest.fixture
def image_with_env(make: Make, workspace: Path) -> Iterator[str]:
    """The musl image with ENV lines: a variable, and an LD_PRELOAD of musl's libc
    (which a glibc program like the bundled interpreter cannot load)."""
    make("docker-musl", workspace)  # skips without the engine and the image
    env = "ENV ITEMLOOP_FROM_IMAGE=from-image LD_PRELOAD=/lib/ld-musl-x86_64.so.1\n"
    with derived_image(MUSL_IMAGE, env) as tag:
        yield tag


@pytest.mark.parametrize(
    ("base", "fast_path"), [(NOSHELL_IMAGE, True), (BUSYBOX_IMAGE, True), (BUSYBOX_IMAGE, False)]
)
async def test_image_entrypoint_is_not_run(
    base: str, fast_path: bool, workspace: Path, make: Make
) -> None:
    """An image whose ENTRYPOINT exits at once, as an application image's might."""
    make("docker", workspace)  # skips without the engine and the image
    with derived_image(base, 'ENTRYPOINT ["/bin/false"]\n') as image:
        sb = DockerSandbox(workspace, SandboxOptions(), image=image, fast_path=fast_path)
        async with sb:
            assert sb.mode == ("runner" if fast_path else "exec")
            r = await sb.run(["echo", "up"])
            assert r.stdout == "up\n"


async def test_image_environment_reaches_commands_not_the_runner(
    image_with_env: str, workspace: Path
) -> None:
    async with DockerSandbox(workspace, SandboxOptions(), image=image_with_env) as sb:
        _fast(sb)
        r = await sb.run(script='echo "$ITEMLOOP_FROM_IMAGE $LD_PRELOAD"')
        assert r.stdout == "from-image /lib/ld-musl-x86_64.so.1\n", r
        # The sandbox's own variables still win over the image's.
        r = await sb.run(script='echo "$HOME"', env={"ITEMLOOP_FROM_IMAGE": "mine"})
        assert r.stdout == "/tmp\n"
        r = await sb.run(script='echo "$ITEMLOOP_FROM_IMAGE"', env={"ITEMLOOP_FROM_IMAGE": "mine"})
        assert r.stdout == "mine\n"
