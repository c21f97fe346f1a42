"""Automatic compaction: a long run whose history outgrows a (deliberately
small) token threshold is compacted before the request that would cross it.

Offline, a scripted model keeps reading pages of a log and, when asked for a
handoff summary, writes one; the server it pretends to be has no
`/responses/compact`, so itemloop falls back to its local summary strategy.

    python examples/compaction.py
    OPENAI_API_KEY=... python examples/compaction.py     # the real API, remote compaction
"""

from __future__ import annotations

import json
import os

import anyio

from itemloop.runtime import Runtime, Toolset
from itemloop.runtime.compaction import SUMMARY_PROMPT, make_compactor
from itemloop.runtime.events import Compacted, Notice, RunFinished
from itemloop.runtime.model import CompactionUnsupported, Model, ModelRequest, ModelResponse
from itemloop.tools.items import Item

PAGES = 20


def read_log(page: int) -> str:
    """Read one page of the (synthetic) service log."""
    return "\n".join(f"page {page} line {i}: request ok in {i * 7 % 50} ms" for i in range(25))


class LogReadingModel:
    """Reads every page, then answers; writes a summary when asked for one."""

    name = "scripted-log-reader"

    def __init__(self) -> None:
        self.page = 0

    async def respond(self, request: ModelRequest, *, on_text: object = None) -> ModelResponse:
        if request.instructions == SUMMARY_PROMPT:
            text = (
                f"Goal: read all {PAGES} log pages. Pages 0-{self.page - 1} read; all requests ok."
            )
            return ModelResponse(output=[_message(text)])
        if self.page < PAGES:
            self.page += 1
            args = json.dumps({"page": self.page - 1})
            return ModelResponse(
                output=[
                    {
                        "type": "function_call",
                        "call_id": f"c{self.page}",
                        "name": "read_log",
                        "arguments": args,
                    }
                ]
            )
        return ModelResponse(output=[_message(f"Read {PAGES} pages: every request was ok.")])

    async def compact(self, request: ModelRequest) -> list[Item]:
        raise CompactionUnsupported("this scripted server has no /responses/compact")

    async def aclose(self) -> None:
        pass


def _message(text: str) -> Item:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


async def main() -> None:
    model: Model
    if os.environ.get("OPENAI_API_KEY"):
        from itemloop.runtime import OpenAIModel

        model = OpenAIModel(os.environ.get("ITEMLOOP_MODEL", "gpt-5.5"))
    else:
        model = LogReadingModel()
    compactor = make_compactor(model, threshold=3_000, strategy="auto", model_name=model.name)
    async with Runtime(
        model, Toolset(functions=[read_log]), compactor=compactor, max_turns=40
    ) as rt:
        async for event in rt.run(
            f"Read log pages 0 to {PAGES - 1} with read_log, then summarise."
        ):
            if isinstance(event, Compacted):
                print(
                    f"compacted ({event.strategy}): {event.tokens_before} -> "
                    f"{event.tokens_after} tokens, {event.items_before} -> {event.items_after} items"
                )
            elif isinstance(event, Notice):
                print(f"warning: {event.message}")
            elif isinstance(event, RunFinished):
                print(f"answer: {event.final_text}")
        print(f"history at the end: {len(rt.history)} items")


if __name__ == "__main__":
    anyio.run(main)
