"""The function and custom tools `itemloop demo` offers its scripted model."""

from __future__ import annotations

from typing import Literal


def word_count(text: str) -> dict[str, int]:
    """Count the words and characters of a text."""
    return {"words": len(text.split()), "characters": len(text)}


def weather(city: str, unit: Literal["celsius", "fahrenheit"]) -> str:
    """Report the (made-up, offline) weather for a city."""
    degrees = 11 if unit == "celsius" else 52
    return f"{city}: {degrees}° {unit}, light rain (demo data)"


def shout(text: str) -> str:
    return text.upper()
