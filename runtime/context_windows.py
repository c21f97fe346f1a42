"""Context windows of known models, and the default compaction threshold.

The threshold is a fraction of what a request may carry: the context window
less the room the model keeps for its output. Unknown models (other providers,
local servers) get a deliberately small window: compacting early costs a
summary, overflowing costs the run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ContextWindow:
    total: int
    """Input plus output tokens the model accepts."""
    max_output: int

    @property
    def max_input(self) -> int:
        return self.total - self.max_output


DEFAULT_FRACTION = 0.8
"""Of the input budget; the rest is headroom for the turn that crosses the line."""

UNKNOWN = ContextWindow(32_768, 8_192)

# Prefixes, matched longest first, so dated snapshots (`gpt-4o-2024-08-06`)
# find their family.
KNOWN: dict[str, ContextWindow] = {
    "gpt-5": ContextWindow(400_000, 128_000),
    "gpt-5-chat": ContextWindow(128_000, 16_384),
    "gpt-5.1": ContextWindow(400_000, 128_000),
    "gpt-5.1-chat": ContextWindow(128_000, 16_384),
    "gpt-5.2": ContextWindow(400_000, 128_000),
    "gpt-5.2-chat": ContextWindow(128_000, 16_384),
    "gpt-5-codex": ContextWindow(400_000, 128_000),
    "codex-mini": ContextWindow(200_000, 100_000),
    "gpt-4.1": ContextWindow(1_047_576, 32_768),
    "gpt-4.5": ContextWindow(128_000, 16_384),
    "gpt-4o": ContextWindow(128_000, 16_384),
    "chatgpt-4o": ContextWindow(128_000, 16_384),
    "gpt-4-turbo": ContextWindow(128_000, 4_096),
    "gpt-4-1106": ContextWindow(128_000, 4_096),
    "gpt-4-0125": ContextWindow(128_000, 4_096),
    "gpt-4-vision": ContextWindow(128_000, 4_096),
    "gpt-4-32k": ContextWindow(32_768, 4_096),
    "gpt-4": ContextWindow(8_192, 4_096),
    "gpt-3.5-turbo": ContextWindow(16_385, 4_096),
    "o1": ContextWindow(200_000, 100_000),
    "o1-mini": ContextWindow(128_000, 65_536),
    "o1-preview": ContextWindow(128_000, 32_768),
    "o3": ContextWindow(200_000, 100_000),
    "o3-mini": ContextWindow(200_000, 100_000),
    "o4-mini": ContextWindow(200_000, 100_000),
    "computer-use-preview": ContextWindow(8_192, 1_024),
    "gpt-oss": ContextWindow(131_072, 32_768),
}


def context_window(model_name: str) -> ContextWindow:
    """The window of `model_name` (a provider prefix such as `openai/` is ignored)."""
    name = model_name.rsplit("/", 1)[-1].strip().lower()
    best = ""
    for prefix in KNOWN:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return KNOWN[best] if best else UNKNOWN


def default_threshold(model_name: str, fraction: float = DEFAULT_FRACTION) -> int:
    return int(context_window(model_name).max_input * fraction)
