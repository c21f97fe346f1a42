"""History structure: what compaction may cut, and what it must never leave behind."""

from __future__ import annotations

import itertools

from corpus import (
    compaction_item,
    fcall,
    fout,
    local_shell_pair,
    long_history,
    mcp_pair,
    reasoning,
    shell_pair,
    user,
)

from itemloop.runtime.compaction import orphans, units
from itemloop.tools.items import KINDS


def _spans_as_types(items: list[dict[str, object]]) -> list[list[object]]:
    return [[items[i]["type"] for i in range(s, e)] for s, e in units(items)]


def test_parallel_calls_and_their_outputs_form_one_unit_with_the_reasoning_before() -> None:
    items = [user("go"), reasoning(1), fcall("a"), fcall("b"), fout("a"), fout("b"), user("next")]
    assert units(items) == [(0, 1), (1, 6), (6, 7)]


def test_every_answered_call_type_pairs_with_its_output() -> None:
    items = [*shell_pair("s", "out"), *local_shell_pair("l"), *mcp_pair(1), fcall("f"), fout("f")]
    assert units(items) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    answered = {items[s]["type"] for s, _ in units(items)}
    assert answered <= set(KINDS)


def test_units_cover_the_history_exactly_and_never_split_a_pair() -> None:
    items = long_history(2_000)
    spans = units(items)
    assert spans[0][0] == 0 and spans[-1][1] == len(items)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    for s, e in spans:
        assert orphans(items[s:e]) == []


def test_orphans_finds_outputs_without_calls_and_calls_without_outputs() -> None:
    lsh_call, lsh_out = local_shell_pair("l")
    mcp_req, mcp_resp = mcp_pair(1)
    items = [fout("gone"), lsh_out, mcp_resp, fcall("open"), lsh_call, mcp_req, compaction_item()]
    assert orphans(items) == [0, 1, 2, 3, 4, 5]
    assert orphans([fcall("a"), fout("a"), *shell_pair("s", "x")]) == []


def test_a_hosted_call_needs_no_output() -> None:
    hosted = {"type": "web_search_call", "id": "ws_1", "status": "completed"}
    assert orphans([hosted]) == []
    assert units([hosted, user("x")]) == [(0, 1), (1, 2)]
