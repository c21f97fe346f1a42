"""Function and custom tools: plain Python functions the model can call.

python examples/function_tools.py          # offline, scripted model
OPENAI_API_KEY=... python examples/function_tools.py   # the real API
"""

from __future__ import annotations

import json
from typing import Literal

import anyio

from itemloop.runtime import Runtime, Toolset, choose_model, custom_tool
from itemloop.runtime.events import CallFinished, RunFinished


def convert(amount: float, unit: Literal["km", "mi"]) -> str:
    """Convert a distance between kilometres and miles."""
    return f"{amount * 0.621371:.1f} mi" if unit == "km" else f"{amount / 0.621371:.1f} km"


async def lookup_population(city: str) -> int:
    """Population of a city (a tiny offline table)."""
    table = {"oslo": 717_710, "bergen": 291_940}
    if city.lower() not in table:
        raise KeyError(f"no data for {city}; known: {', '.join(sorted(table))}")
    return table[city.lower()]


def reverse(text: str) -> str:
    return text[::-1]


SCRIPT = [
    [
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "convert",
            "arguments": json.dumps({"amount": 42.195, "unit": "km"}),
        },
        {
            "type": "function_call",
            "call_id": "c2",
            "name": "lookup_population",
            "arguments": json.dumps({"city": "Trondheim"}),
        },
        {"type": "custom_tool_call", "call_id": "c3", "name": "reverse", "input": "itemloop"},
    ],
    [
        {
            "type": "function_call",
            "call_id": "c4",
            "name": "lookup_population",
            "arguments": json.dumps({"city": "Bergen"}),
        },
    ],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "A marathon is 26.2 mi; Bergen has 291,940 people."}
            ],
        }
    ],
]


async def main() -> None:
    model = choose_model(SCRIPT)
    tools = Toolset(
        functions=[convert, lookup_population],
        custom=[custom_tool(reverse, description="Reverse the raw input text.")],
    )
    async with Runtime(model, tools) as rt:
        async for event in rt.run(
            "How long is a marathon in miles, and how many people live in "
            "Trondheim or else Bergen? Also reverse 'itemloop'."
        ):
            if isinstance(event, CallFinished):
                print(f"{event.name}: {event.output.get('output')}")
            elif isinstance(event, RunFinished):
                print(f"answer: {event.final_text}")


if __name__ == "__main__":
    anyio.run(main)
