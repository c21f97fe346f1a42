"""Many tools, few sent: deferred functions found through client-executed tool search.

Forty Python functions are offered; thirty-nine are deferred (`defer=True`), so
the model first sees only `convert_units` and the `tool_search` tool. It
searches, itemloop answers the `tool_search_call` with the best matches, and
the model calls the one it found. Offline on a scripted model by default;
with OPENAI_API_KEY set, the same run goes to the real API.

    python examples/tool_search.py
"""

from __future__ import annotations

import anyio

from itemloop.runtime import Runtime, Toolset, choose_model
from itemloop.runtime.events import CallFinished, RunFinished
from itemloop.tools.function import FunctionTool, function_tool


def convert_units(value: float, unit: str) -> str:
    """Convert a length between miles and kilometres."""
    return f"{value * 1.609:.1f} km" if unit == "mi" else f"{value / 1.609:.1f} mi"


def tide_times(harbour: str) -> str:
    """High and low tide times for a harbour today."""
    return f"{harbour}: high 06:12 and 18:40, low 00:05 and 12:27"


def _filler(n: int) -> FunctionTool:
    topics = ["invoice", "shipment", "warehouse", "payroll", "ticket", "badge", "locker", "parcel"]
    verbs = ["archive", "audit", "count", "rename", "reserve"]
    topic, verb = topics[n % len(topics)], verbs[n // len(topics) % len(verbs)]

    def tool(item_id: str) -> str:
        return f"{verb} {topic} {item_id}: done"

    tool.__name__ = f"{verb}_{topic}"
    tool.__doc__ = f"{verb.capitalize()} a {topic} by its id."
    return function_tool(tool, defer=True)


SCRIPT = [
    [
        {
            "type": "tool_search_call",
            "call_id": "ts1",
            "execution": "client",
            "arguments": {"query": "tide times for a harbour"},
        }
    ],
    [
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "tide_times",
            "arguments": '{"harbour": "Bergen"}',
        }
    ],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "High tide in Bergen is at 06:12."}],
        }
    ],
]


async def main() -> None:
    functions = [convert_units, function_tool(tide_times, defer=True)]
    functions += [_filler(n) for n in range(38)]
    async with Runtime(choose_model(SCRIPT), Toolset(functions=functions)) as rt:
        print("sent up front:", ", ".join(d.get("name", d["type"]) for d in rt.tool_definitions))
        async for event in rt.run("When is high tide in Bergen?"):
            if isinstance(event, CallFinished):
                print(f"{event.name}: {event.summary}")
            elif isinstance(event, RunFinished):
                print(f"answer: {event.final_text}")


if __name__ == "__main__":
    anyio.run(main)
