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
- The file tools (`apply_patch`, `WorkspaceFiles`) work on the host
  directory, not through the sandbox's mounts: a hidden path inside the
  workspace is out of commands' reach only.
- Paths are resolved (symlinks followed) when the sandbox starts; one created
  afterwards, or a symlink retargeted afterwards, is not hidden.
- A hidden path inside the workspace or a writable path cannot be moved by a
  command: the backend mounts each directory between that root and the mask
  (`between`: ~/.config of ~/.config/gh) on itself, and a mount point cannot
  be renamed or removed (EBUSY). Without that, `mv .config .config2` would
  carry the mask along for this sandbox, and the next one (a restart, the
  next session) would hide ~/.config/gh, where nothing is, and show
  ~/.config2/gh whole. The same holds for the mask itself (a mount point). A
  restarted sandbox resolves the masks again, and hides what is there then.
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
from collections.abc import Sequence
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


@dataclass(frozen=True, slots=True)
class Mask:
    """One host path to hide: an empty tmpfs over a directory, /dev/null over a file."""

    path: str
    """Resolved host path."""
    is_dir: bool
    holds_kept: bool = False
    """It holds the workspace or a writable path, which must stay visible inside it."""


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

    def add(path: str, user_given: bool) -> None:
        if path in found or not os.path.lexists(path):
            return
        holds = any(inside(k, path) for k in keep_real)
        if holds and not user_given:
            return
        if os.path.isdir(path):
            found[path] = Mask(path, True, holds)
        elif os.path.exists(path):  # a file, a device, a socket: /dev/null over it
            found[path] = Mask(path, False)

    for p in hidden:
        add(os.path.realpath(os.path.expanduser(p)), True)
    for home in homes:
        for rel in CREDENTIAL_PATHS:
            add(os.path.realpath(os.path.join(home, rel)), False)
    ordered = sorted(found.values(), key=lambda m: m.path)
    # A mask inside another that hides everything already has nothing to hide.
    covers = [m.path for m in ordered if m.is_dir and not m.holds_kept]
    return [m for m in ordered if not any(c != m.path and inside(m.path, c) for c in covers)]
