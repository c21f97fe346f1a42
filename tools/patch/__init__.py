"""Pure diff handling for apply_patch: parse V4A or unified diffs, match, apply. No I/O."""

from .apply import PatchResult, apply_diff
from .model import Hunk, ParsedDiff, PatchError
from .parse import parse_diff
from .text import decode

__all__ = ["Hunk", "ParsedDiff", "PatchError", "PatchResult", "apply_diff", "decode", "parse_diff"]
