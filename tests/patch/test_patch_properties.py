"""Property tests: a diff from a to b, in either dialect, applied to a gives b."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from patchgen import create_diff, unified_diff, v4a_diff

from itemloop.tools.patch import apply_diff

# Few distinct lines, so contexts repeat and hunks have to be placed with care.
LINE = st.one_of(
    st.sampled_from(["", "a", "b", "    a", "\tb", "x = 1", "}", "  # c", "“q”"]),
    st.text(alphabet="ab{}() \t#-'\"", max_size=8),
)


@st.composite
def texts(draw: st.DrawFn, line: st.SearchStrategy[str] = LINE) -> str:
    lines = draw(st.lists(line, max_size=20))
    text = "\n".join(lines)
    if lines and draw(st.booleans()):
        text += "\n"
    return text


@st.composite
def text_pairs(draw: st.DrawFn, line: st.SearchStrategy[str] = LINE) -> tuple[str, str]:
    a = draw(texts(line))
    if draw(st.booleans()):
        return a, draw(texts(line))
    # b as a few edits of a: the common case of a small change in a bigger file.
    lines = a.split("\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        if kind == "insert":
            lines[i:i] = draw(st.lists(line, min_size=1, max_size=3))
        elif i < len(lines):
            lines[i : i + 1] = [] if kind == "delete" else [draw(line)]
    return a, "\n".join(lines)


@settings(max_examples=400, deadline=None)
@given(text_pairs(), st.integers(0, 3))
def test_v4a_diff_from_a_to_b_turns_a_into_b(pair: tuple[str, str], context: int) -> None:
    a, b = pair
    assume(a != b)
    assert apply_diff(a, v4a_diff(a, b, context)).text == b


@settings(max_examples=400, deadline=None)
@given(text_pairs(), st.integers(0, 3), st.booleans())
def test_unified_diff_from_a_to_b_turns_a_into_b(
    pair: tuple[str, str], context: int, headers: bool
) -> None:
    a, b = pair
    assume(a != b)
    assert apply_diff(a, unified_diff(a, b, context, headers=headers)).text == b


@settings(max_examples=200, deadline=None)
@given(text_pairs(), st.integers(0, 3))
def test_crlf_files_stay_crlf(pair: tuple[str, str], context: int) -> None:
    a, b = pair
    assume(a != b and "\n" in a)  # a file without any line break has no style to keep
    a_crlf, b_crlf = a.replace("\n", "\r\n"), b.replace("\n", "\r\n")
    # The diff itself uses LF: line breaks follow the file, not the diff.
    assert apply_diff(a_crlf, v4a_diff(a, b, context)).text == b_crlf
    assert apply_diff(a_crlf, unified_diff(a, b, context)).text == b_crlf


@settings(max_examples=200, deadline=None)
@given(texts())
def test_create_gives_the_text(b: str) -> None:
    assert apply_diff("", create_diff(b), create=True).text == b
