from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

from backends import in_ci, problem
from responses_server import ScriptedResponsesServer

# CI draws the same property-test examples on every run, so a red run is a change's doing,
# never the luck of the draw; runs at a desk draw new ones and keep exploring.
settings.register_profile("ci", derandomize=True, print_blob=True)
if in_ci():
    settings.load_profile("ci")

_MARKED_BACKENDS = {"bwrap": "local", "docker": "docker"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.bwrap` / `docker`: skip with the reason when the backend cannot run
    here, fail under CI (which installs every backend)."""
    for marker, kind in _MARKED_BACKENDS.items():
        if item.get_closest_marker(marker) is None:
            continue
        reason = problem(kind)
        if reason is not None:
            if in_ci():
                pytest.fail(f"{kind} sandbox unavailable in CI: {reason}")
            pytest.skip(reason)


@pytest.fixture
def server() -> Iterator[ScriptedResponsesServer]:
    with ScriptedResponsesServer() as s:
        yield s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
