from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai.types.responses import ResponseInputItemParam

sys.path.insert(0, str(Path(__file__).parent))

from responses_server import ScriptedResponsesServer  # noqa: E402

INPUT_ITEM = pydantic.TypeAdapter(ResponseInputItemParam)


def assert_valid_input_item(item: dict[str, Any]) -> None:
    """Every item the runtime builds must be one the API accepts as input."""
    INPUT_ITEM.validate_python(item)


@pytest.fixture
def server() -> Iterator[ScriptedResponsesServer]:
    with ScriptedResponsesServer() as s:
        yield s


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
