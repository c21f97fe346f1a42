"""Defaults of `itemloop batch`, each defined once.

Kept apart from the batch modules (pydantic, anyio) so the command line can
show them in `--help` without importing those: `itemloop --help` stays fast.
"""

from __future__ import annotations

import os
from typing import Final

DEFAULT_STEP_TIMEOUT_S: Final = 600.0
"""Per `setup` or `check` command of a task, in seconds."""
STEP_OUTPUT_LIMIT: Final = 64 * 1024
"""Bytes of a `setup` or `check` command's output kept (head and tail)."""
TAIL_CHARS: Final = 2000
"""Characters of a command's output kept in a result: its last ones."""
FINAL_MESSAGE_CHARS: Final = 20_000
"""Characters of the agent's final message kept in a result (the session has it all)."""
DEFAULT_RAY_MAX_RETRIES: Final = 3
"""How often Ray runs a task again whose worker died (it resumes from its session)."""

SESSION_MEMORY_BYTES: Final = 256 * 1024**2
"""What one session is assumed to need at most, sandbox included, for the default concurrency."""
SESSIONS_PER_CORE: Final = 4
"""Sessions mostly wait on the model: several share a core."""


def default_concurrency() -> int:
    """Sessions at once by default: `SESSIONS_PER_CORE` a core, as many as the
    available memory holds at `SESSION_MEMORY_BYTES` each, at least one."""
    by_cores = (os.cpu_count() or 1) * SESSIONS_PER_CORE
    available = _available_memory()
    by_memory = available // SESSION_MEMORY_BYTES if available else by_cores
    return max(1, min(by_cores, by_memory))


def _available_memory() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 when unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
