"""Defaults of a run, each defined once.

Kept apart from `config.py` (pydantic) so the command line can show them in
`--help` without importing pydantic: `itemloop --help` stays fast.
"""

from __future__ import annotations

import os
from typing import Final

DEFAULT_MODEL: Final = "gpt-5.5"
DEFAULT_MAX_TURNS: Final = 50
DEFAULT_MODEL_TIMEOUT_S: Final = 120.0
"""Limit on connecting to the model server and on its silence (no byte at all), in seconds."""
DEFAULT_MODEL_MAX_TIME_S: Final = 1800.0
"""Limit on one model request in total, in seconds: reasoning can take many minutes."""


def default_model() -> str:
    """`$ITEMLOOP_MODEL`, or `DEFAULT_MODEL`."""
    return os.environ.get("ITEMLOOP_MODEL") or DEFAULT_MODEL
