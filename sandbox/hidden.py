"""Host paths commands must not see: credential locations and the user's own list.

Two sources, one rule. `CREDENTIAL_PATHS` are well-known places, relative to
the invoking user's home, where tools keep secrets (SSH and GPG keys, cloud
and registry tokens, other agent CLIs' logins); `SandboxOptions.hidden_paths`
(`--hide PATH`) are whatever else the user names. Each that exists is hidden
from commands by a mount: an empty tmpfs over a directory, `/dev/null` over a
file; writes there never reach the host. They are hidden whether the network
is on or off: with the network on, a secret read is a secret sent.

Where it does not apply:

- A credential location that holds the workspace or a writable path is left
  alone (the user chose to work there). A path of the user's that holds one
  is hidden all the same, except for the workspace and writable paths in it
  (the backend mounts those over the mask).
- A mask that would cover a directory the sandbox itself needs (`/usr`,
  `/etc`, the runner's Python and the libraries it loads, ...: `needed`) is
  not made, and the backend says so (`covered_notice`): such a directory
  holds no credential of the user's, and a tmpfs over it would only make the
  sandbox fail to start, cryptically. A command that plants `.aws -> /usr`
  in a home it may write gets no more than that notice.
- A mask a command may have planted (reached through a link inside the
  workspace or a writable path, to a target outside them: `--hide WS/.env`
  absent at start, or a credential location of a home that is the
  workspace) is not made either when it lies INSIDE a needed path or a
  system directory (`planted_need`): `.env -> <the runner's stdlib>/encodings`
  or `.env -> /proc/self` covers nothing needed by name, yet a tmpfs there
  kills the runner at every later start. The same notice says so, and names
  the link to remove. Masks not reached through such a link are not held to
  this (root-only files such as /etc/shadow lie inside /etc on purpose), and
  `/` does not count as holding them (a stow-style link to a host directory
  stays hidden). Should a start fail all the same, its message names the
  masks reached through such links (`linked_notice`).
- The file tools (`apply_patch`, `WorkspaceFiles`) work on the host
  directory, not through the sandbox's mounts: a hidden path inside the
  workspace is out of commands' reach only.
- Paths are resolved (symlinks followed) when the sandbox starts.

Masks stay put for the whole session (a sandbox is restarted when its runner
or container is lost, or for the workspace's size):

- A hidden path inside the workspace or a writable path cannot be moved by a
  command: the backend mounts each directory between that root and the mask
  (`between`: ~/.config of ~/.config/gh) on itself, and a mount point cannot
  be renamed or removed (EBUSY). Without that, `mv .config .config2` would
  carry the mask along for this sandbox, and the next one would hide
  ~/.config/gh, where nothing is, and show ~/.config2/gh whole. The same
  holds for the mask itself (a mount point).
- The masks of each start are pinned (`pinned.Pins.masks`): every later
  start hides them again, with whatever new ones resolve then, never
  fewer. A mask reached through a symlink (stow-style `~/.ssh ->
  dotfiles/ssh`) is on the link's target; the link itself is no mount point,
  and a command may remove it, but the target stays hidden after a restart.
- Across sessions nothing is pinned: a later session resolves the paths
  again, and a link a command removed leads nowhere then. So where a mask is
  reached through a link inside the workspace or a writable path, the
  backend says so at start (`link_notice`), with the `--hide` that keeps the
  target hidden for good.
- Only the home directories the backend is given (`invoking_homes` by
  default) are searched for credentials: tokens that another program keeps
  elsewhere (its own `$XDG_CONFIG_HOME`, `$CODEX_HOME`, ...) need `--hide`.

What each backend can see decides which masks it needs: `local` shows the
host filesystem, so every mask outside its private `/tmp` and `/run` (or
inside the workspace) applies; `docker` shows only the workspace and the
writable paths, so only the masks inside those apply.
"""

from __future__ import annotations

import os
import pwd
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CREDENTIAL_PATHS = (
    # keys and generic login files
    ".ssh",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".password-store",
    ".local/share/keyrings",
    ".pgpass",
    ".my.cnf",
    ".vault-token",
    ".env",
    # cloud and cluster CLIs
    ".aws",
    ".azure",
    ".config/gcloud",
    ".oci",
    ".config/doctl",
    ".kube",
    ".docker",
    ".config/containers/auth.json",
    ".terraform.d/credentials.tfrc.json",
    ".s3cfg",
    ".config/rclone",
    ".config/op",
    # code hosts and package registries
    ".config/gh",
    ".config/hub",
    ".config/glab-cli",
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".m2/settings.xml",
    ".m2/settings-security.xml",
    ".gradle/gradle.properties",
    ".config/composer/auth.json",
    ".composer/auth.json",
    ".huggingface/token",
    ".cache/huggingface/token",
    # other agents' logins and API keys
    ".codex",  # OpenAI Codex CLI: auth.json
    ".claude",  # Claude Code: .credentials.json
    ".claude.json",  # Claude Code: account, API key state
    ".gemini",  # Gemini CLI: oauth_creds.json, .env
    ".config/github-copilot",  # Copilot: hosts.json, apps.json
    ".local/share/opencode/auth.json",  # opencode
    ".config/io.datasette.llm/keys.json",  # llm
    ".aider.conf.yml",  # aider: api-key entries
    ".continue",  # Continue: config with API keys
)
"""Relative to the invoking user's home: hidden from commands (see the module docstring)."""


SYSTEM_DIRS = (
    "/",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/proc",
    "/dev",
    "/sys",
)
"""Host directories every sandbox that shows the host filesystem needs: never masked."""


@dataclass(frozen=True, slots=True)
class Mask:
    """One host path to hide: an empty tmpfs over a directory, /dev/null over a file."""

    path: str
    """Resolved host path."""
    is_dir: bool
    holds_kept: bool = False
    """It holds the workspace or a writable path, which must stay visible inside it."""
    given: str = ""
    """The path it was found at (a credential location under a home, a `--hide` path)."""
    links: tuple[str, ...] = ()
    """The symlinks met on the way from `given` to `path` (each with its parent resolved)."""


def invoking_homes() -> list[str]:
    """The invoking user's home directories: $HOME and the password database's."""
    homes = [os.path.expanduser("~")]
    try:
        homes.append(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    return [h for h in dict.fromkeys(homes) if h and os.path.isabs(h)]


def inside(path: str, root: str) -> bool:
    """`path` is `root` or below it (both resolved)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def between(root: str, path: str) -> list[str]:
    """The directories strictly between `root` and `path` inside it (both resolved), from
    the top down: `between("/h", "/h/.config/gh")` is `["/h/.config"]`."""
    if not inside(path, root) or path == root:
        return []
    found: list[str] = []
    current = root.rstrip("/")
    for part in path[len(current) + 1 :].split("/")[:-1]:
        current = f"{current}/{part}"
        found.append(current)
    return found


def masks(homes: Sequence[str], hidden: Sequence[str], keep: Sequence[str]) -> list[Mask]:
    """Every existing path to hide, resolved, sorted (a parent before its children).

    `homes` are searched for `CREDENTIAL_PATHS`; `hidden` are the user's own
    paths (relative ones to the current directory); `keep` are the workspace
    and the writable paths. A credential location holding a kept path is left
    out; a path of the user's holding one comes with `holds_kept`.
    """
    keep_real = [os.path.realpath(k) for k in keep]
    found: dict[str, Mask] = {}

    def add(given: str, user_given: bool) -> None:
        path = os.path.realpath(given)
        if not os.path.lexists(path):
            return
        ways = symlinks_on_the_way(given)
        known = found.get(path)
        if known is not None and (ways or not known.links):
            return  # the first found stays, unless this one is reached without a link
        holds = any(inside(k, path) for k in keep_real)
        if holds and not user_given:
            return
        if os.path.isdir(path):
            found[path] = Mask(path, True, holds, given, ways)
        elif os.path.exists(path):  # a file, a device, a socket: /dev/null over it
            found[path] = Mask(path, False, False, given, ways)

    for p in hidden:
        add(os.path.abspath(os.path.expanduser(p)), True)
    for home in homes:
        for rel in CREDENTIAL_PATHS:
            add(os.path.join(home, rel), False)
    return normalized(found.values())


def normalized(found: Iterable[Mask]) -> list[Mask]:
    """`found` sorted (a parent before its children), one per path, without those inside
    another that hides everything already (nothing left to hide)."""
    ordered = sorted({m.path: m for m in found}.values(), key=lambda m: m.path)
    covers = [m.path for m in ordered if m.is_dir and not m.holds_kept]
    return [m for m in ordered if not any(c != m.path and inside(m.path, c) for c in covers)]


def symlinks_on_the_way(given: str) -> tuple[str, ...]:
    """The symlinks met resolving the absolute path `given`, each as a path whose parent
    is resolved: `("/h/.ssh",)` for `/h/.ssh/id_rsa` when `/h/.ssh -> dotfiles/ssh`."""
    links: list[str] = []
    current = "/"
    for part in given.strip("/").split("/"):
        if not part or part == ".":
            continue
        step = os.path.dirname(current) if part == ".." else os.path.join(current, part)
        if os.path.islink(step):
            links.append(step)
            step = os.path.realpath(step)
        current = step
    return tuple(links)


def needed(extra: Iterable[str] = ()) -> list[str]:
    """Host paths a sandbox showing the host filesystem cannot do without (resolved):
    `SYSTEM_DIRS`, the runner's Python (this interpreter, its prefixes and standard
    library trees, the files it has mapped: its shared libraries), and `extra`."""
    paths = [*SYSTEM_DIRS, sys.executable, sys.base_prefix, os.__file__, *extra]
    platstdlib = sysconfig.get_path("platstdlib")
    paths += [sysconfig.get_path("stdlib"), platstdlib, os.path.join(platstdlib, "lib-dynload")]
    venv = os.path.realpath(sys.prefix) if sys.prefix != sys.base_prefix else None
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    mapped = fields[5].rstrip("\n")
                    if venv is None or not inside(os.path.realpath(mapped), venv):
                        paths.append(mapped)  # a venv's own modules are not the runner's
    except OSError:
        pass
    return sorted({os.path.realpath(p) for p in paths if os.path.isabs(p)})


def covered_need(m: Mask, needs: Sequence[str], kept: Sequence[str]) -> str | None:
    """The needed path `m` would cover (`needs`: see `needed`), or None. One inside a kept
    path that the mask holds stays visible (the backend mounts the kept path over it)."""
    for need in needs:
        if not inside(need, m.path):
            continue
        if m.holds_kept and any(
            k != m.path and inside(k, m.path) and inside(need, k) for k in kept
        ):
            continue
        return need
    return None


def planted_need(m: Mask, needs: Sequence[str], writable: Sequence[str]) -> tuple[str, str] | None:
    """For a mask a command may have planted (reached through a link inside one of the
    `writable` roots, to a target outside them, all resolved): the needed path (`needs`,
    `/` aside) that holds it and that link, else None (see the module docstring)."""
    links = writable_links(m, writable)
    if not links or any(inside(m.path, w) for w in writable):
        return None
    for need in needs:
        if need != "/" and inside(m.path, need):
            return need, links[-1]
    return None


def covered_notice(m: Mask, need: str, link: str = "") -> str:
    """Why `m` is not hidden: it would cover `need`, which the sandbox needs, or, reached
    through `link` a command may have planted, lie inside it."""
    what = f"{m.given} is a link to {m.path}" if m.links else f"{m.path}"
    link = link or (m.links[-1] if m.links else "")
    fix = f"remove the link {link}" if link else "hide a path below it instead"
    where = "" if need == m.path else " inside it"
    if not inside(need, m.path):
        where = ", which holds it"
    return (
        f"hidden paths: {what}: NOT hidden, as the sandbox needs {need}{where} "
        f"(it holds no credential of yours); {fix}"
    )


def writable_links(m: Mask, writable: Sequence[str]) -> list[str]:
    """The symlinks on `m`'s way that lie inside one of the `writable` roots (resolved):
    links a command may remove."""
    return [link for link in m.links if any(inside(link, w) for w in writable)]


def link_notice(m: Mask, links: Sequence[str]) -> str:
    """What a person should know of `m`, reached through `links` a command may remove."""
    shown = ", ".join(_shown_link(link) for link in links if os.path.islink(link))
    return (
        f"hidden paths: {m.given} is reached through a link in the workspace or a writable "
        f"path ({shown or ', '.join(links)}), so {m.path} is hidden. It stays hidden for "
        f"this session, but a command can remove the link, after which a later session "
        f"would not hide {m.path}: --hide {m.path} keeps it hidden for good"
    )


def linked_notice(linked: Sequence[tuple[Mask, Sequence[str]]]) -> str:
    """For a failed start's message: the masks made through links a command may have
    planted (each with those links), which the user may need to remove; "" for none."""
    if not linked:
        return ""
    shown = "; ".join(
        f"{', '.join(_shown_link(link) for link in links)} (masked at {m.path})"
        for m, links in linked
    )
    return (
        f"hidden paths reached through links in the workspace or a writable path, which a "
        f"command may have planted: {shown}. If the start failed for one of these masks, "
        f"remove its link"
    )


def _shown_link(link: str) -> str:
    try:
        return f"{link} -> {os.readlink(link)}"
    except OSError:
        return link
