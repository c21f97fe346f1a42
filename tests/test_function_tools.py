from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest
from helpers import fcall

from itemloop.tools.function import FunctionExecutor, function_tool, load_functions_file

pytestmark = pytest.mark.anyio


class Point(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    x: int
    y: int


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points."""
    return float(((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5)


def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


def test_schema_from_type_hints_is_strict_when_possible() -> None:
    d = function_tool(distance).definition()
    assert d["name"] == "distance"
    assert d["description"] == "Euclidean distance between two points."
    assert d["strict"] is True
    params = d["parameters"]
    assert params["required"] == ["a", "b"]
    assert params["additionalProperties"] is False
    point = params["$defs"]["Point"]
    assert point["additionalProperties"] is False and set(point["required"]) == {"x", "y"}


def test_optional_parameter_makes_schema_non_strict() -> None:
    d = function_tool(greet).definition()
    assert d["strict"] is False
    assert d["parameters"]["required"] == ["name"]


async def test_nested_model_arguments_are_validated_and_converted() -> None:
    ex = FunctionExecutor([distance, greet])
    r = await ex.execute(fcall("c1", "distance", {"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}}))
    assert r.ok and r.output["output"] == "5.0"
    r = await ex.execute(fcall("c2", "greet", {"name": "Ada"}))
    assert r.output["output"] == "hello Ada!"


async def test_content_list_output_passes_through() -> None:
    def picture() -> list[dict[str, str]]:
        return [
            {"type": "input_text", "text": "a red dot"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        ]

    r = await FunctionExecutor([picture]).execute(fcall("c1", "picture", {}))
    assert isinstance(r.output["output"], list)
    assert r.output["output"][1]["type"] == "input_image"


def test_functions_file_offers_public_functions_defined_there(tmp_path: Path) -> None:
    f = tmp_path / "mytools.py"
    f.write_text(
        textwrap.dedent(
            '''
            from os.path import join  # imported: not offered

            def public(x: int) -> int:
                """Doubles x."""
                return 2 * x

            def _private() -> None:
                pass
            '''
        )
    )
    tools = load_functions_file(f)
    assert [t.name for t in tools] == ["public"]
    assert tools[0].description == "Doubles x."


def test_functions_file_all_selects(tmp_path: Path) -> None:
    f = tmp_path / "sel.py"
    f.write_text("__all__ = ['b']\ndef a() -> None: ...\ndef b() -> None: ...\n")
    assert [t.name for t in load_functions_file(f)] == ["b"]
