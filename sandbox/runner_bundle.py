"""The runner bundle: the host's Python, cut down to what `_runner.py` needs, for any image.

The docker sandbox's fast path runs the runner inside the container. Instead
of asking the image for a `python3`, it brings one: a directory with the
host's interpreter binary (the real one, not a venv link), the standard-library
modules the runner imports (found by importing it, with the same flags, in a
subprocess, plus every module it names anywhere, plus the `encodings`
package), their extension modules, every shared library those load, and the
dynamic loader. The container mounts it read-only at `BUNDLE_MOUNT` and starts

    <mount>/shlib/ld-linux-*.so.* --library-path <mount>/shlib \\
        <mount>/bin/python3 -I -S -B <mount>/runner.py --connect SOCKET

so the image's libc, or the absence of one, does not matter: the loader and
every library come from the bundle (an image on musl, or with no shell and
one static binary, runs it the same). `-I` keeps the image's environment
(`PYTHONPATH`, `PYTHONHOME`, ...) out, `loader_env` its `LD_PRELOAD`, ...;
the interpreter finds its standard
library next to itself (`lib/pythonX.Y/os.py`, the landmark). The runner forks
its keepers without exec, so only its own start needs the loader; commands
are the image's own programs, started as the image would start them.

A static shell (the host's `busybox`, when it is statically linked: Debian's
`busybox-static`) is bundled too, as `bin/sh`: the shell of scripts in an
image that has no `/bin/sh`.

Built once per (interpreter, runner, busybox, this module) into
`~/.cache/itemloop/runner-bundle-<hash>` (`$XDG_CACHE_HOME` respected): in a
temporary directory next to it, checked (the bundled interpreter, run on the
host through the bundled loader, imports the runner and maps no file from
outside the bundle), then renamed into place. A rename is atomic, so a bundle
directory that exists is complete; two processes building at once both
succeed and one of the two copies is kept. A dead build's temporary directory
is removed by a build an hour later; bundles of other versions are left in the
cache (about 35 MB each, most of it libpython).

What it does not cover: a host whose Python is not a dynamically linked ELF
program on glibc (the loader is asked for its dependencies with `--list`);
libraries loaded with `dlopen` by name at run time (the runner needs none);
an image's `/etc/ld.so.preload`, which glibc's loader honours for the runner
too (a library there that cannot load is reported and skipped by the loader);
a `writable_paths` grant that covers the cache directory, which lets commands
change the bundle that later sessions mount (the mount itself is read-only).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import py_compile
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .runner_channel import runner_python, runner_source

BUNDLE_MOUNT = "/run/itemloop-bundle"
"""Where a container sees the bundle (read-only)."""

SHLIB = "shlib"
"""The bundle's directory of shared libraries and the loader."""

BUILD_TIMEOUT_S = 60.0
"""How long each step of a build (a probe, the self-test) may take."""
STALE_BUILD_S = 3600.0
"""A temporary build directory this old is a dead build's: removed by the next build."""
TMP_PREFIX = ".runner-bundle-"

# Run by the host's interpreter with the runner's flags: import the runner as a
# module (its `main` does not run) and every module it names anywhere (imports
# inside functions too), then list the files of everything imported.
_PROBE = r"""
import ast, importlib, importlib.util, json, sys
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("itemloop_runner", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
with open(path, "rb") as f:
    tree = ast.parse(f.read())
names = set()
for node in ast.walk(tree):
    if isinstance(node, ast.Import):
        names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names.add(node.module)
for name in sorted(names):
    importlib.import_module(name)
import encodings, os
files = sorted({m.__file__ for m in list(sys.modules.values())
                if getattr(m, "__file__", None) and m.__name__ != "itemloop_runner"})
print(json.dumps({
    "names": sorted(names),
    "files": files,
    "encodings": os.path.dirname(encodings.__file__),
    "prefix": sys.base_prefix,
    "exec_prefix": sys.base_exec_prefix,
    "stdlib": "%s/python%d.%d" % (sys.platlibdir, sys.version_info[0], sys.version_info[1]),
}))
"""

# Run by the bundled interpreter through the bundled loader (on the host):
# the runner's modules load, and from the bundle alone.
_SELF_TEST = r"""
import importlib.util, json, sys
bundle, path = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("itemloop_runner", path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
for name in sys.argv[3:]:
    __import__(name)
outside = []
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if f and not f.startswith(bundle + "/"):
        outside.append(f)
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        f = parts[5].strip() if len(parts) == 6 else ""
        # glibc's locale and charset tables are data it does without in an image
        if f.startswith("/") and not f.startswith(bundle + "/") and not (
            "/locale/" in f or f.endswith("/gconv-modules.cache")
        ):
            outside.append(f)
print(json.dumps({"prefix": sys.prefix, "outside": sorted(set(outside))}))
"""

LOADER_VARIABLES = ("LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH")
"""What glibc's loader takes from the environment to load other code."""

GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
}


class BundleUnavailable(Exception):
    """The bundle cannot be built or cannot run there; the message says why."""


@dataclass(frozen=True)
class RunnerBundle:
    """A built bundle: `path` on the host, mounted at `mount` in a container."""

    path: Path
    loader: str
    """The loader's file name in `shlib/`."""
    has_shell: bool
    mount: str = BUNDLE_MOUNT

    @property
    def shell(self) -> str | None:
        """The bundled static shell as the container sees it; None without one."""
        return f"{self.mount}/bin/sh" if self.has_shell else None

    def python_argv(self, *args: str) -> list[str]:
        """The bundled interpreter started through the bundled loader, in the container."""
        m = self.mount
        return [
            f"{m}/{SHLIB}/{self.loader}",
            "--library-path",
            f"{m}/{SHLIB}",
            f"{m}/bin/python3",
            "-I",
            "-S",
            "-B",
            *args,
        ]

    def runner_argv(self, socket_path: str, seccomp: bytes | None = None) -> list[str]:
        """Start the runner in the container; it connects back to `socket_path`, having
        installed the seccomp filter `seccomp` (compiled BPF) on itself, if given."""
        extra = ["--seccomp", seccomp.hex()] if seccomp is not None else []
        return self.python_argv(f"{self.mount}/runner.py", "--connect", socket_path, *extra)

    def loader_env(self) -> dict[str, str]:
        """Variables that would reach the bundled loader from the image's ENV, emptied:
        a library the image preloads is built for the image's libc, not the bundle's."""
        return dict.fromkeys(LOADER_VARIABLES, "")

    def keepalive_argv(self) -> list[str]:
        """A container's long-lived first command that needs nothing from the image.

        It waits for a line (or EOF) on a stdin nobody writes to.
        """
        if self.shell is not None:
            return [self.shell, "-c", "read -r _; exit 0"]
        return self.python_argv("-c", "import os; os.read(0, 1)")


def engine_problem(version: dict[str, object]) -> str | None:
    """Why a bundle from this host cannot run on an engine reporting `version`
    (docker-py's `client.version()`); None when it can."""
    if sys.platform != "linux":
        return f"this host runs {sys.platform}, not Linux: its Python cannot run in a container"
    engine_os = str(version.get("Os", "")).lower()
    engine_arch = str(version.get("Arch", "")).lower()
    host_arch = host_goarch()
    if engine_os and engine_os != "linux":
        return f"the Docker engine runs {engine_os} containers, not Linux"
    if engine_arch and engine_arch != host_arch:
        return (
            f"the Docker engine runs on {engine_arch} and this host's Python is {host_arch}: "
            "it cannot run there"
        )
    return None


def host_goarch() -> str:
    """This machine's architecture, in Docker's (Go's) names."""
    machine = platform.machine().lower()
    return GOARCH.get(machine, machine)


# --- finding and building ----------------------------------------------------------

_LOCK = threading.Lock()


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "itemloop"


def runner_bundle(cache_dir: Path | None = None) -> RunnerBundle:
    """The bundle for this host and this itemloop, built on first use (see the module)."""
    # Resolved: the interpreter reports its prefix without symlinks.
    root = Path(os.path.realpath(cache_dir if cache_dir is not None else cache_root()))
    python = runner_python()
    busybox = static_busybox()
    key = bundle_key(python, busybox)
    final = root / f"runner-bundle-{key}"
    with _LOCK:
        bundle = _load(final)
        if bundle is not None:
            return bundle
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            _remove_stale_temporaries(root)
            tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
        except OSError as e:
            raise BundleUnavailable(f"cannot create the runner bundle in {root}: {e}") from None
        try:
            build(tmp, python, busybox)
            tmp.chmod(0o755)
            try:
                os.rename(tmp, final)
            except OSError:
                if _load(final) is None:  # not another builder's: a real failure
                    raise
        except OSError as e:
            raise BundleUnavailable(f"cannot build the runner bundle in {root}: {e}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        bundle = _load(final)
        if bundle is None:
            raise BundleUnavailable(f"the runner bundle in {final} is incomplete")
        return bundle


def _remove_stale_temporaries(root: Path) -> None:
    """Remove what builds that died (killed, power lost) left; a live build is younger."""
    now = time.time()
    for tmp in root.glob(TMP_PREFIX + "*"):
        try:
            if now - tmp.stat().st_mtime > STALE_BUILD_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def _load(path: Path) -> RunnerBundle | None:
    try:
        manifest = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
        return RunnerBundle(path, str(manifest["loader"]), bool(manifest["shell"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def bundle_key(python: str, busybox: str | None) -> str:
    """What a bundle depends on, hashed: a change of any of it builds a new one."""
    h = hashlib.sha256()
    h.update(runner_source().encode())
    h.update(Path(__file__).read_bytes())
    h.update(sys.version.encode())
    for f in (python, busybox):
        if f is None:
            h.update(b"-")
            continue
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode())
    return h.hexdigest()[:20]


def static_busybox() -> str | None:
    """The host's busybox when it is statically linked (it then runs in any image)."""
    for candidate in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if candidate and os.path.isfile(candidate):
            real = os.path.realpath(candidate)
            try:
                if elf_interpreter(real) is None:
                    return real
            except (OSError, ValueError):
                continue
    return None


def build(dest: Path, python: str, busybox: str | None) -> None:
    """Fill the empty directory `dest` with a bundle, and check it."""
    loader = elf_interpreter(python)
    if loader is None:
        raise BundleUnavailable(f"{python} is not a dynamically linked ELF program")
    runner = dest / "runner.py"
    runner.write_text(runner_source(), encoding="utf-8")
    probe = _run([python, "-I", "-S", "-B", "-c", _PROBE, str(runner)], "import the runner")
    found = json.loads(probe)
    stdlib = dest / found["stdlib"]
    dynload = stdlib / "lib-dynload"
    dynload.mkdir(parents=True)  # the exec_prefix landmark, even when empty

    # Standard-library modules, at the same place relative to the prefix.
    sources: list[Path] = []
    extensions: list[str] = []
    files = list(found["files"])
    enc = Path(found["encodings"])
    files += [str(p) for p in enc.glob("*.py")]
    for f in files:
        rel = _relative(f, found["prefix"]) or _relative(f, found["exec_prefix"])
        if rel is None:
            raise BundleUnavailable(f"the runner imports {f}, outside the standard library")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        if f.endswith(".py"):
            sources.append(target)
        else:
            extensions.append(f)
    for src in sources:
        py_compile.compile(
            str(src),
            cfile=importlib.util.cache_from_source(str(src)),
            dfile=str(src),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )

    # The interpreter, the loader and every library they and the extensions load.
    shlib = dest / SHLIB
    shlib.mkdir()
    (dest / "bin").mkdir()
    shutil.copyfile(python, dest / "bin" / "python3")
    libs: dict[str, str] = {}
    for obj in [python, *extensions]:
        libs.update(shared_libraries(loader, obj))
    for soname, path in libs.items():
        shutil.copyfile(path, shlib / soname)
    loader_name = os.path.basename(loader)
    shutil.copyfile(loader, shlib / loader_name)
    if busybox is not None:
        shutil.copyfile(busybox, dest / "bin" / "busybox")
        os.symlink("busybox", dest / "bin" / "sh")
    for program in [dest / "bin" / "python3", shlib / loader_name, dest / "bin" / "busybox"]:
        if program.exists():
            program.chmod(0o755)
    for d, _, names in os.walk(dest):
        os.chmod(d, 0o755)
        for n in names:
            p = os.path.join(d, n)
            if not os.path.islink(p) and not stat.S_IMODE(os.stat(p).st_mode) & 0o100:
                os.chmod(p, 0o644)
    _self_test(dest, loader_name, runner, found["names"])
    manifest = {"loader": loader_name, "shell": busybox is not None, "python": python}
    (dest / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")


def _self_test(dest: Path, loader: str, runner: Path, names: list[str]) -> None:
    argv = [
        str(dest / SHLIB / loader),
        "--library-path",
        str(dest / SHLIB),
        str(dest / "bin" / "python3"),
        "-I",
        "-S",
        "-B",
        "-c",
        _SELF_TEST,
        str(dest),
        str(runner),
        *names,
    ]
    report = json.loads(_run(argv, "run the bundled interpreter"))
    if report["prefix"] != str(dest):
        raise BundleUnavailable(
            f"the bundled interpreter took {report['prefix']} as its prefix, not the bundle"
        )
    if report["outside"]:
        raise BundleUnavailable(
            "the bundled interpreter loaded files from outside the bundle: "
            + ", ".join(report["outside"][:5])
        )


def _run(argv: list[str], what: str) -> str:
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            env={"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"},
            cwd="/",
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BundleUnavailable(f"runner bundle: cannot {what}: {e}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise BundleUnavailable(f"runner bundle: cannot {what}: {detail}")
    return proc.stdout


def _relative(path: str, prefix: str) -> str | None:
    rel = os.path.relpath(path, prefix)
    return None if rel.startswith("..") or os.path.isabs(rel) else rel


def shared_libraries(loader: str, obj: str) -> dict[str, str]:
    """soname -> host path of every shared library `obj` loads, as its loader resolves them."""
    out = _run([loader, "--list", obj], f"list the libraries of {obj}")
    libs: dict[str, str] = {}
    for line in out.splitlines():
        line = line.strip()
        if "=>" not in line:
            continue  # the vDSO, or the loader itself (bundled on its own)
        soname, _, rest = line.partition("=>")
        path = rest.strip().split(" (", 1)[0].strip()
        if not path.startswith("/"):
            raise BundleUnavailable(f"{obj} needs {soname.strip()}, which is {path or 'missing'}")
        if os.path.basename(path) == os.path.basename(loader):
            continue
        libs[soname.strip()] = os.path.realpath(path)
    return libs


PT_INTERP = 3
# By ELF class (32, 64-bit): where e_phoff and (e_phentsize, e_phnum) are in the
# file header, and p_offset and p_filesz in a program header, with their formats.
_ELF_LAYOUT = {
    1: (("I", 28), ("HH", 42), ("I", 4), ("I", 16)),
    2: (("Q", 32), ("HH", 54), ("Q", 8), ("Q", 32)),
}


def elf_interpreter(path: str) -> str | None:
    """The program interpreter (PT_INTERP) of the ELF file `path`; None for a static one.

    Raises ValueError for a file that is not ELF.
    """
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or len(head) < 64 or head[4] not in _ELF_LAYOUT:
            raise ValueError(f"{path} is not an ELF file")
        order = "<" if head[5] == 1 else ">"
        phoff, phnum, p_offset, p_filesz = _ELF_LAYOUT[head[4]]
        (table,) = struct.unpack_from(order + phoff[0], head, phoff[1])
        entsize, count = struct.unpack_from(order + phnum[0], head, phnum[1])
        f.seek(table)
        headers = f.read(entsize * count)
        for base in range(0, len(headers) - entsize + 1, entsize):
            if struct.unpack_from(order + "I", headers, base)[0] != PT_INTERP:
                continue
            (offset,) = struct.unpack_from(order + p_offset[0], headers, base + p_offset[1])
            (size,) = struct.unpack_from(order + p_filesz[0], headers, base + p_filesz[1])
            f.seek(offset)
            return f.read(size).rstrip(b"\0").decode()
    return None
