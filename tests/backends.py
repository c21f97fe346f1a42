"""Which sandbox backends can run here, and why not: shared by every test that needs one.

A backend's tests are skipped (with the reason) only when it truly cannot run
here; under CI (which installs every backend) they fail instead, so a broken
install never passes as a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess

BUSYBOX_IMAGE = os.environ.get("ITEMLOOP_TEST_IMAGE", "itemloop-test:busybox")
PYTHON_IMAGE = os.environ.get("ITEMLOOP_TEST_PYTHON_IMAGE", "itemloop-test:python")
NOSHELL_IMAGE = os.environ.get("ITEMLOOP_TEST_NOSHELL_IMAGE", "itemloop-test:noshell")
MUSL_IMAGE = os.environ.get("ITEMLOOP_TEST_MUSL_IMAGE", "itemloop-test:musl")
DOCKER_IMAGES = {
    "docker": BUSYBOX_IMAGE,
    "docker-exec": BUSYBOX_IMAGE,  # the same image, the fast path turned off
    "docker-python": PYTHON_IMAGE,
    "docker-noshell": NOSHELL_IMAGE,
    "docker-musl": MUSL_IMAGE,
}


def _bwrap_problem() -> str | None:
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    r = subprocess.run(
        ["bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {r.stderr.strip()}"
    return None


def _docker_problem(image: str) -> str | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:
        return f"no Docker engine reachable: {e}"
    try:
        client.images.get(image)
    except Exception:
        return f"test image {image} is missing (run .ci/setup-sandboxes.sh)"
    return None


_PROBLEMS: dict[str, str | None] = {}


def in_ci() -> bool:
    """CI=1/true/yes (as CI services set it); CI=0/false/no or unset is not CI."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def problem(kind: str) -> str | None:
    if kind not in _PROBLEMS:
        if kind == "local":
            _PROBLEMS[kind] = _bwrap_problem()
        elif kind in DOCKER_IMAGES:
            _PROBLEMS[kind] = _docker_problem(DOCKER_IMAGES[kind])
        else:
            _PROBLEMS[kind] = None
    return _PROBLEMS[kind]
