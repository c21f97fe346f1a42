"""Files between the contained browser and the workspace: downloads in, chosen files out.

Downloads land in `DOWNLOADS_DIR` (`downloads/`) of the workspace, where
shell commands and apply_patch see them. `save_download` copies a finished
download from the browser's staging directory: the name is the page's
suggested name sanitised (its last path component, control characters and
separators replaced, no leading dot, at most `MAX_NAME_BYTES`), created with
O_EXCL (an existing file is never overwritten: `name (1).ext`, ...), and
every path component is opened with O_NOFOLLOW beneath the workspace
directory, so a symlink a command planted (`downloads` -> /etc, or the file
name itself) is refused rather than followed out of the workspace. The
staged file itself is opened with O_NOFOLLOW and must be a plain file with
one link: the staging directory belongs to the browser's uid.
A download over the limit it is given (`MAX_DOWNLOAD_BYTES` by default, less
when the session's `MAX_SESSION_DOWNLOAD_BYTES` is nearly used) is refused,
also when it grows past it during the copy (the partial copy is removed).

`read_workspace_file` reads a file the model picked for a file chooser, by a
workspace-relative path, the same way (no `..`, no symlinks), opened with
O_NONBLOCK so a FIFO a command planted cannot block the open, and checked on
its fd: a regular file of at most `MAX_UPLOAD_BYTES` (for all the files of one
choice together), else refused, nothing read. A path the user hid from commands
(`SandboxOptions.hidden_paths`, resolved, given as `hidden`), or one beneath
it, is refused too.

Not covered: a download's bytes are whatever the server sent (nothing is
scanned); the workspace size limit of the sandbox is checked by the sandbox
when the next command runs, not here; the limits on downloads bound what is
saved, not the disk the staging directory uses meanwhile (that is watched by
`BrowserComputer`, with a poll's delay). A hidden file is refused by its path: a hard
link to it elsewhere in the workspace (which a command cannot make, the file
being hidden from it, but one made before the session can exist) is given.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from collections.abc import Sequence
from contextlib import suppress
from pathlib import PurePosixPath
from typing import BinaryIO

DOWNLOADS_DIR = "downloads"
MAX_NAME_BYTES = 200
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_DOWNLOAD_BYTES = 1 << 30
"""The most one download may be; a bigger one is cancelled while it runs."""
MAX_SESSION_DOWNLOADS = 100
MAX_SESSION_DOWNLOAD_BYTES = 2 << 30
"""The most downloads one browser session saves, and their bytes together."""
_CHUNK = 1 << 20


class WorkspaceFileError(Exception):
    """A path the browser may not use; the message is meant for the model."""


def sanitise_name(suggested: str) -> str:
    name = suggested.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        "_" if unicodedata.category(c).startswith("C") or c in '/:*?"<>|' else c for c in name
    ).strip()
    if name.startswith("."):
        name = "_" + name[1:]
    while len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        name = (stem[:-1] + dot + ext) if stem and len(ext) < 20 else name[:-1]
    return name or "download"


def _parts(relative: str) -> list[str]:
    path = PurePosixPath(relative)
    parts = [p for p in path.parts if p not in ("", ".", "/")]
    if path.is_absolute() or not parts or ".." in parts:
        raise WorkspaceFileError(
            f"{relative!r}: give a path relative to the workspace, without '..'"
        )
    return parts


def _open_dir(root_fd: int, parts: list[str], *, create: bool) -> int:
    """An O_PATH fd of the directory `parts` beneath root_fd, never following a symlink."""
    fd = os.dup(root_fd)
    try:
        for p in parts:
            if create:
                with suppress(FileExistsError):
                    os.mkdir(p, 0o755, dir_fd=fd)
            nxt = os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _workspace_fd(workspace: str) -> int:
    return os.open(workspace, os.O_PATH | os.O_DIRECTORY)


def _open_source(source: str) -> int:
    """The staged download, opened without following a symlink: the staging directory
    belongs to the browser's uid, so a compromised browser could plant one there pointing
    at a file only itemloop's user may read (or a FIFO, to hang the copy)."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise WorkspaceFileError(f"the browser's download is unreadable: {_why(e)}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise WorkspaceFileError("the browser's download is not a plain file; not copied")
    return fd


def save_download(
    workspace: str, source: str, suggested: str, limit: int = MAX_DOWNLOAD_BYTES
) -> tuple[str, int]:
    """Copy the finished download at `source`, of at most `limit` bytes, into the workspace;
    (its workspace-relative path, its size)."""
    src_fd = _open_source(source)
    with open(src_fd, "rb") as src:
        if os.fstat(src_fd).st_size > limit:
            raise WorkspaceFileError(f"it is over {max(limit, 0)} bytes, the most it may be")
        return _save(workspace, src, suggested, limit)


def _save(workspace: str, src: BinaryIO, suggested: str, limit: int) -> tuple[str, int]:
    root = _workspace_fd(workspace)
    try:
        try:
            dir_fd = _open_dir(root, [DOWNLOADS_DIR], create=True)
        except OSError as e:
            raise WorkspaceFileError(
                f"{DOWNLOADS_DIR}/ in the workspace is not a directory (a symlink?): {e.strerror}"
            ) from None
        try:
            stem, dot, ext = sanitise_name(suggested).rpartition(".")
            if not stem:
                stem, dot, ext = ext, "", ""
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            for n in range(1000):
                name = f"{stem}{f' ({n})' if n else ''}{dot}{ext}"
                try:
                    out = os.open(name, flags, 0o644, dir_fd=dir_fd)
                    break
                except FileExistsError:
                    continue
            else:
                raise WorkspaceFileError("too many downloads of that name already")
            size = 0
            with open(out, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:  # it grew after fstat
                        os.unlink(name, dir_fd=dir_fd)
                        raise WorkspaceFileError(f"it is over {limit} bytes, the most it may be")
                    dst.write(chunk)
            return f"{DOWNLOADS_DIR}/{name}", size
        finally:
            os.close(dir_fd)
    finally:
        os.close(root)


def read_workspace_file(
    workspace: str, relative: str, limit: int = MAX_UPLOAD_BYTES, hidden: Sequence[str] = ()
) -> tuple[str, bytes]:
    """(file name, bytes) of a workspace file the model named for a file chooser, of at
    most `limit` bytes. Opened with O_NONBLOCK: a FIFO (or a device) a command planted
    there must not block the open; it is refused on its fd, before anything is read."""
    parts = _parts(relative.strip())
    if _is_hidden(os.path.join(os.path.realpath(workspace), *parts), hidden):
        raise WorkspaceFileError(f"{relative!r} is hidden by the user (--hide); not given")
    root = _workspace_fd(workspace)
    try:
        try:
            dir_fd = _open_dir(root, parts[:-1], create=False)
        except OSError as e:
            raise WorkspaceFileError(f"{relative!r}: {_why(e)}") from None
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            try:
                fd = os.open(parts[-1], flags, dir_fd=dir_fd)
            except OSError as e:
                raise WorkspaceFileError(f"{relative!r}: {_why(e)}") from None
            with open(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise WorkspaceFileError(f"{relative!r} is not a regular file")
                too_big = WorkspaceFileError(
                    f"{relative!r} is over {limit} bytes, the most a page can be given"
                )
                if st.st_size > limit:
                    raise too_big
                data = f.read(limit + 1)  # the file may grow after fstat
                if len(data) > limit:
                    raise too_big
                return parts[-1], data
        finally:
            os.close(dir_fd)
    finally:
        os.close(root)


def _is_hidden(path: str, hidden: Sequence[str]) -> bool:
    """Whether `path` (no symlink in it is followed when it is opened) is, or is in, one of
    the resolved `hidden` paths."""
    return any(path == h or path.startswith(h.rstrip("/") + "/") for h in hidden)


def _why(e: OSError) -> str:
    if e.errno == errno.ELOOP or e.errno == errno.ENOTDIR:
        return "a symlink or not a directory on the way (symlinks are not followed)"
    if e.errno == errno.ENOENT:
        return "no such file in the workspace"
    return e.strerror or str(e)


__all__ = [
    "DOWNLOADS_DIR",
    "MAX_UPLOAD_BYTES",
    "WorkspaceFileError",
    "read_workspace_file",
    "sanitise_name",
    "save_download",
]
