"""The pure `apply_diff`: results, pass order, indentation, ambiguity, messages."""

from __future__ import annotations

import pytest

from itemloop.tools.patch import PatchError, apply_diff, parse_diff


def _fails(text: str, diff: str) -> str:
    with pytest.raises(PatchError) as info:
        apply_diff(text, diff)
    return str(info.value)


def test_result_counts_and_dialect() -> None:
    result = apply_diff("a\nb\nc\n", "@@\n a\n-b\n+B\n+B2\n c\n")
    assert (result.text, result.dialect, result.hunks, result.added, result.removed) == (
        "a\nB\nB2\nc\n",
        "v4a",
        1,
        2,
        1,
    )
    assert result.tolerant == ()
    assert apply_diff("a\n", "@@ -1 +1 @@\n-a\n+b\n").dialect == "unified"


def test_dialect_is_detected_from_the_hunk_headers() -> None:
    assert parse_diff("@@ def f():\n-a\n+b\n").dialect == "v4a"
    assert parse_diff("@@ -1,1 +1,1 @@\n-a\n+b\n").dialect == "unified"
    assert parse_diff("--- a/x\n+++ b/x\n@@\n-a\n+b\n").dialect == "v4a"


def test_exact_match_wins_over_a_tolerant_one() -> None:
    # "a " matches "a" only when trailing whitespace is ignored; the exact "a" is
    # the one meant, and it is unique among exact matches.
    assert apply_diff("a \nx\na\ny\n", "@@\n a\n-y\n+z\n").text == "a \nx\na\nz\n"


def test_tolerant_passes_run_in_order() -> None:
    result = apply_diff("  a\n  b\n", "@@\n a\n-b\n+c\n")
    assert result.tolerant == ("hunk 1 matched ignoring leading and trailing whitespace",)
    assert result.text == "  a\n  c\n"
    quotes = apply_diff("‘a’\nb\n", "@@\n 'a'\n-b\n+c\n")
    assert quotes.tolerant == ("hunk 1 matched ignoring whitespace and typographic punctuation",)
    assert quotes.text == "‘a’\nc\n"


def test_indentation_the_model_agrees_on_is_left_alone() -> None:
    # The match needed the punctuation pass, but the context lines' indentation
    # agrees with the file, so the model's own (odd) indentation stands.
    result = apply_diff("if x:\n    say(“a”)\n", '@@\n if x:\n     say("a")\n+   odd()\n')
    assert result.text == "if x:\n    say(“a”)\n   odd()\n"


def test_exact_match_never_reindents() -> None:
    text = "\tdef f():\n\t\tpass\n"
    assert apply_diff(text, "@@\n \tdef f():\n+        spaces()\n").text == (
        "\tdef f():\n        spaces()\n\t\tpass\n"
    )


def test_mixed_indentation_maps_each_depth() -> None:
    text = "a:\n\tb:\n\t\tc\n"
    diff = "@@\n a:\n     b:\n-        c\n+        d\n+            e\n+    f\n"
    assert apply_diff(text, diff).text == "a:\n\tb:\n\t\td\n\t\t\te\n\tf\n"


def test_deleting_one_of_identical_lines_is_not_ambiguous() -> None:
    # Either blank line gives the same text, so there is nothing to guess.
    assert apply_diff("a\n\n\nb\n", "@@\n a\n \n-\n b\n").text == "a\n\nb\n"
    assert apply_diff("a\n\n\nb", "@@\n-\n").text == "a\n\nb"


def test_ambiguity_includes_the_end_of_the_file() -> None:
    message = _fails("a\n\nb\n", "@@\n-\n")
    assert "2 places" in message
    assert "the end of the file" in message


def test_unified_line_numbers_pick_the_nearest() -> None:
    text = "x\ny\n" * 3
    assert apply_diff(text, "@@ -5,2 +5,2 @@\n x\n-y\n+z\n").text == "x\ny\nx\ny\nx\nz\n"
    assert apply_diff(text, "@@ -3,2 +3,2 @@\n x\n-y\n+z\n").text == "x\ny\nx\nz\nx\ny\n"
    # Wrong line numbers still pick the nearest copy.
    assert apply_diff(text, "@@ -6,2 +6,2 @@\n x\n-y\n+z\n").text == "x\ny\nx\ny\nx\nz\n"


def test_unified_tie_is_ambiguous() -> None:
    message = _fails("x\nq\nx\n", "@@ -2,1 +2,1 @@\n-x\n+z\n")
    assert "2 places" in message
    assert "line numbers in its @@ header" in message


def test_unified_insertion_only_hunk_uses_its_line_number() -> None:
    assert apply_diff("a\nb\nc\n", "@@ -2,0 +3,1 @@\n+new\n").text == "a\nb\nnew\nc\n"
    assert apply_diff("a\nb\n", "@@ -0,0 +1,1 @@\n+top\n").text == "top\na\nb\n"


def test_lines_are_split_on_newline_only() -> None:
    # str.splitlines would also split on \x0c, \x1c and \u2028; a file must not.
    text = "a\x0cb\nc\u2028d\ne\n"
    assert apply_diff(text, "@@\n c\u2028d\n-e\n+f\n").text == "a\x0cb\nc\u2028d\nf\n"


def test_lone_carriage_return_is_content() -> None:
    assert apply_diff("a\rb\nc\n", "@@\n a\rb\n-c\n+d\n").text == "a\rb\nd\n"


def test_anchor_prefers_the_match_after_it() -> None:
    text = "def a():\n    x = 1\ndef b():\n    x = 1\n"
    assert apply_diff(text, "@@ def b():\n-    x = 1\n+    x = 2\n").text == (
        "def a():\n    x = 1\ndef b():\n    x = 2\n"
    )


def test_missing_anchor_is_named_when_the_hunk_fails() -> None:
    message = _fails("a\nb\n", "@@ def nowhere():\n-zz\n+y\n")
    assert "Its @@ line 'def nowhere():' is not in the file." in message


def test_nothing_similar_says_so() -> None:
    message = _fails("alpha\nbeta\n", "@@\n-qqqqqqqqqq\n+x\n")
    assert "No lines of the file resemble them" in message


def test_fuzzy_nearest_lines() -> None:
    text = "def compute_total(items):\n    return sum(items)\n"
    message = _fails(text, "@@\n def compute_totals(items):\n-    return sum(item)\n+    pass\n")
    assert "most similar lines 1-2 of the file" in message
    assert "1| def compute_total(items):" in message


def test_end_of_file_marker_inserts_before_the_final_newline() -> None:
    assert apply_diff("a\nb\n", "@@\n+c\n*** End of File\n").text == "a\nb\nc\n"


def test_create_rejects_a_missing_plus() -> None:
    with pytest.raises(PatchError, match="none of ' ' \\(context\\), '-' \\(remove\\)"):
        apply_diff("", "hello\n", create=True)


def test_create_takes_blank_lines_between_additions() -> None:
    assert apply_diff("", "+a\n\n+b\n\n", create=True).text == "a\n\nb\n"


def test_second_file_in_a_v4a_diff_is_refused() -> None:
    diff = "*** Begin Patch\n*** Update File: a\n@@\n-a\n+b\n*** Update File: b\n@@\n-c\n+d\n"
    assert "one apply_patch operation edits one file" in _fails("a\n", diff)


def test_unified_text_after_a_hunk_is_reported() -> None:
    message = _fails("a\n", "@@ -1 +1 @@\n-a\n+b\nI changed a to b.\n")
    assert "diff line 4" in message
    assert "I changed a to b." in message
