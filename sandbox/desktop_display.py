"""`DesktopDisplay`: the host's half of a contained X display (files, address, screenshots).

The X server (Xvfb) runs inside a sandbox (`xvfb_computer`); this module holds
what itemloop keeps on the host for it, made before the sandbox starts so that
the sandbox can be given it (`env`, `writable_paths`):

- a private directory (mode 0700, bound read-write into the sandbox at the same
  path) holding the display's cookie (`Xauthority`: one FamilyWild
  MIT-MAGIC-COOKIE-1 entry, 128 random bits; Xvfb gets it with `-auth`, clients
  with XAUTHORITY) and Xvfb's framebuffer file (`-fbdir`), plus the logs and
  exit codes of the applications started on the display;
- the display's address, chosen by the sandbox's network:
  * network off (the default): TCP on 127.0.0.1 of the sandbox's own network
    namespace (`127.0.0.1:0`, port 6000). The sandbox's seccomp filter refuses
    `socket(AF_UNIX)` to commands, so a Unix socket is out of their reach, and
    that namespace is private to the sandbox: nothing on the host can connect.
  * network on: the sandbox shares the host's network namespace, so TCP would
    be the host's loopback. The display is a pathname socket in the sandbox's
    private /tmp/.X11-unix (`:N`), Xvfb's abstract socket is off
    (`-nolisten local`). X clients try the abstract name `@/tmp/.X11-unix/XN`
    first, and anyone in the host's namespace could bind it and pose as the
    display (and read the cookie clients send): itemloop binds that name
    itself, without listening, for the display's lifetime (`AbstractGuard`), so
    clients get ECONNREFUSED there and fall back to the private socket.
- screenshots without any X connection: Xvfb's framebuffer is an XWD file in
  the private directory, memory-mapped by Xvfb (what it draws is in it). It is
  opened once (O_NOFOLLOW, checked to be a regular file) when the display is
  up and read with `pread` on that descriptor, so a command that replaces the
  file (a symlink to a host file) or truncates it gets an error, never another
  file's bytes nor a fault in itemloop.

Not covered: a command of the same session has the cookie (that is the point:
it can start programs on the display) and can draw on the display, kill Xvfb,
or rewrite the framebuffer file; what it shows is the session's own doing.
"""

from __future__ import annotations

import dataclasses
import io
import os
import secrets
import socket
import stat
import struct
import tempfile
from typing import Any

from .base import SandboxOptions
from .leftovers import remove_temp_dirs, remove_tree, temp_prefix

DEFAULT_WINDOW_MANAGER = "openbox --sm-disable"
"""`--computer-wm` without a command: Debian's openbox (.ci/setup-computer.sh)."""
AUTH_NAME = "Xauthority"
FB_NAME = "Xvfb_screen0"
_FAMILY_WILD = 0xFFFF
_XWD_HEADER = struct.Struct(">25I")
_MAX_LINE_PAD = 64
"""Bytes a scanline of 32-bit pixels may be padded by (Xvfb pads to 4: none)."""
_MAX_HEADER = 4096
"""The XWD header and window name Xvfb writes are about 100 bytes."""
_MAX_COLORS = 65536
_MAX_GUARDED_DISPLAY = 1000


class DisplayError(Exception):
    """The framebuffer could not be read; the message is meant for a person."""


class AbstractGuard:
    """A bound, non-listening abstract Unix socket holding `@/tmp/.X11-unix/X<number>`
    in this process's network namespace (see the module docstring)."""

    def __init__(self) -> None:
        self.socket: socket.socket | None = None
        self.number = -1
        for n in range(1, _MAX_GUARDED_DISPLAY):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.bind(f"\0/tmp/.X11-unix/X{n}")
            except OSError:
                s.close()
                continue
            self.socket, self.number = s, n
            return
        raise OSError("no free X display number (every abstract name up to :999 is taken)")

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


def xauthority_entry(number: int, cookie: bytes) -> bytes:
    """One Xauthority record: any address (FamilyWild), display `number`, `cookie`."""

    def field(b: bytes) -> bytes:
        return struct.pack(">H", len(b)) + b

    return (
        struct.pack(">H", _FAMILY_WILD)
        + field(b"")
        + field(str(number).encode())
        + field(b"MIT-MAGIC-COOKIE-1")
        + field(cookie)
    )


class DesktopDisplay:
    """The host side of one contained display; `close()` removes its directory."""

    def __init__(self, *, network: bool = False) -> None:
        self.network = network
        remove_temp_dirs((_DIR_PREFIX,))
        self.dir = tempfile.mkdtemp(prefix=temp_prefix(_DIR_PREFIX))
        self._guard: AbstractGuard | None = None
        self._fb: int | None = None
        try:
            if network:
                self._guard = AbstractGuard()
                self.number = self._guard.number
                self.address = f":{self.number}"
            else:
                self.number = 0
                self.address = "127.0.0.1:0"
            self.cookie = secrets.token_bytes(16)
            fd = os.open(self.auth_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(xauthority_entry(self.number, self.cookie))
            os.mkdir(os.path.join(self.dir, "apps"), 0o700)
        except BaseException:
            self.close()
            raise

    @property
    def auth_path(self) -> str:
        return os.path.join(self.dir, AUTH_NAME)

    @property
    def fb_path(self) -> str:
        return os.path.join(self.dir, FB_NAME)

    @property
    def env(self) -> dict[str, str]:
        """What a program needs to reach the display: DISPLAY and XAUTHORITY."""
        return {"DISPLAY": self.address, "XAUTHORITY": self.auth_path}

    @property
    def writable_paths(self) -> tuple[str, ...]:
        """The host directories the sandbox must bind (read-write, same path)."""
        return (self.dir,)

    def sandbox_options(self, options: SandboxOptions) -> SandboxOptions:
        """`options` for a sandbox that holds this display: its variables in every
        command's environment, its directory bound read-write."""
        return dataclasses.replace(
            options,
            env={**options.env, **self.env},
            writable_paths=(*options.writable_paths, *self.writable_paths),
        )

    def xvfb_argv(self, xvfb: str, width: int, height: int) -> list[str]:
        """Xvfb's command line for this display (listening as the module docstring says)."""
        listen = (
            ["-nolisten", "tcp", "-nolisten", "local", "-listen", "unix"]
            if self.network
            else ["-listen", "tcp", "-nolisten", "unix", "-nolisten", "local"]
        )
        return [
            xvfb,
            f":{self.number}",
            "-auth",
            self.auth_path,
            *listen,
            "-fbdir",
            self.dir,
            "-screen",
            "0",
            f"{width}x{height}x24",
            "-noreset",  # else it resets (and recentres the pointer) when its last client leaves
        ]

    # -- the framebuffer ---------------------------------------------------------

    def open_framebuffer(self) -> None:
        """Take hold of the framebuffer file Xvfb has made (once it is up)."""
        fd = os.open(self.fb_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise DisplayError(f"{self.fb_path} is not a regular file")
        self._fb = fd

    def screenshot_png(self, width: int, height: int) -> bytes:
        """The screen as a PNG, from the framebuffer file (no X connection)."""
        if self._fb is None:
            raise DisplayError("the display's framebuffer is not open")
        head = os.pread(self._fb, _XWD_HEADER.size, 0)
        if len(head) < _XWD_HEADER.size:
            raise DisplayError("the framebuffer file is truncated")
        h = _XWD_HEADER.unpack(head)
        header_size, depth, w, rows = h[0], h[3], h[4], h[5]
        bits_per_pixel, bytes_per_line, ncolors = h[11], h[12], h[19]
        if (w, rows) != (width, height) or bits_per_pixel != 32 or depth != 24:
            raise DisplayError(
                f"the framebuffer is {w}x{rows} at {bits_per_pixel} bits per pixel, "
                f"not {width}x{height} at 32"
            )
        # Commands can write this file: the header is checked against what Xvfb writes
        # for this screen before it sizes a read (a forged 8 MiB line length would
        # have itemloop read gigabytes, outside the session's memory limit).
        if not width * 4 <= bytes_per_line <= width * 4 + _MAX_LINE_PAD:
            raise DisplayError(
                f"the framebuffer's line length {bytes_per_line} does not fit {width} pixels"
            )
        if header_size > _MAX_HEADER or ncolors > _MAX_COLORS:
            raise DisplayError("the framebuffer's header is not Xvfb's")
        offset = header_size + 12 * ncolors
        size = bytes_per_line * rows
        data = os.pread(self._fb, size, offset)
        if len(data) != size:
            raise DisplayError("the framebuffer file is truncated")
        try:
            return _png(data, width, height, bytes_per_line, little_endian=h[7] == 0)
        except (ValueError, OSError) as e:  # Pillow refusing what a command wrote there
            raise DisplayError(f"the framebuffer cannot be read as an image: {e}") from None

    def close(self) -> None:
        if self._fb is not None:
            os.close(self._fb)
            self._fb = None
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        remove_tree(self.dir)


_DIR_PREFIX = "itemloop-display-"


def _png(data: bytes, width: int, height: int, stride: int, *, little_endian: bool) -> bytes:
    from PIL import Image

    mode = "BGRX" if little_endian else "XRGB"
    image: Any = Image.frombuffer("RGB", (width, height), data, "raw", mode, stride, 1)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
