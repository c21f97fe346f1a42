"""PNG screenshots as the API carries them, and error banners drawn on them.

`computer_call_output` has no text field, only a screenshot: an error reaches
the model as a red banner across the top of one. Drawing needs Pillow (the
`computer` extra); without it an error is a blank 1x1 PNG, and `has_pillow()`
says which. A Pillow that is installed but broken raises, never degrades to a
blank image silently.
"""

from __future__ import annotations

import base64
import io
from functools import cache
from importlib.util import find_spec
from typing import Any

BLANK_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
"""A 1x1 transparent PNG, for when Pillow is not installed."""

ERROR_IMAGE_SIZE = (1024, 160)
"""Width and height of the banner image of an error with no screen behind it."""


@cache
def has_pillow() -> bool:
    return find_spec("PIL") is not None


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def error_image(message: str) -> str:
    """A data URL of `message` drawn on a blank screen (a blank PNG without Pillow)."""
    if not has_pillow():
        return BLANK_PNG
    return data_url(annotate(None, message, *ERROR_IMAGE_SIZE))


def annotate(png: bytes | None, message: str, width: int, height: int) -> bytes:
    """`png` (or a blank screen of width x height) with `message` in a red banner across the top."""
    from PIL import Image, ImageDraw, ImageFont

    if png is not None:
        image = Image.open(io.BytesIO(png)).convert("RGB")
    else:
        image = Image.new("RGB", (max(1, width), max(1, height)), (40, 40, 40))
    if message:
        font = ImageFont.load_default(size=14)
        draw = ImageDraw.Draw(image)
        lines = _wrap(f"itemloop: {message}", draw, font, image.width - 16)
        line_h = 18
        draw.rectangle((0, 0, image.width, 8 + line_h * len(lines)), fill=(170, 0, 0))
        for i, line in enumerate(lines):
            draw.text((8, 4 + i * line_h), line, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _wrap(text: str, draw: Any, font: Any, width: int) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines[:8]
