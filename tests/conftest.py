from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from responses_server import ScriptedResponsesServer


@pytest.fixture
def server() -> Iterator[ScriptedResponsesServer]:
    with ScriptedResponsesServer() as s:
        yield s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
