"""`ToolSearchExecutor`: answers the model's client-executed `tool_search_call`s.

The toolset builds it when some tools are deferred (`defer_loading`): it
offers the `tool_search` tool (`execution: "client"`) and answers each call
with one `tool_search_output` listing the best matches (`call.answer_call`).
What a search loads is reported to `on_loaded`, so the toolset can keep those
tools callable — and send their definitions again once compaction has removed
the output that brought them. A malformed call gets an empty, incomplete
output and, since that item has no text field, a developer message saying
what was wrong (`ExecResult.notes`).

The first search builds the BM25 model (a few tens of ms for 1,000 tools), in
a worker thread so the event loop goes on.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio.to_thread

from ..base import ExecResult
from ..items import Item
from .call import answer_call, message_item, tool_search_tool
from .index import ToolIndex, ToolKey


class ToolSearchExecutor:
    item_types = ("tool_search_call",)
    sequential = False

    def __init__(self, index: ToolIndex, on_loaded: Callable[[list[ToolKey]], None]) -> None:
        self.index = index
        self.on_loaded = on_loaded
        self._tool = tool_search_tool(index)

    def definitions(self) -> list[Item]:
        return [self._tool]

    async def execute(self, call: Item) -> ExecResult:
        answer = await anyio.to_thread.run_sync(answer_call, self.index, call)
        if answer.loaded:
            self.on_loaded(answer.loaded)
        notes = (message_item(call, answer.message),) if answer.message else ()
        return ExecResult(answer.output, answer.ok, answer.summary, notes=notes)
