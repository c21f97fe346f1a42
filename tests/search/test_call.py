"""The tool_search tool: its definition, its arguments, its one tool_search_output per call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.responses import ResponseToolSearchOutputItemParam, ToolSearchTool
from test_index import GITHUB, SQL, TIME, WEATHER

from itemloop.tools.search.call import (
    DESCRIPTION,
    MAX_ARGUMENTS_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_QUERY_CHARS,
    SearchArgs,
    answer_call,
    check_output,
    keys_of,
    message_item,
    parse_arguments,
    tool_search_tool,
)
from itemloop.tools.search.index import ToolIndex

Item = dict[str, Any]


def index() -> ToolIndex:
    return ToolIndex([GITHUB, TIME, WEATHER, SQL])


def call(arguments: Any, call_id: str = "call_ts_1") -> Item:
    return {
        "type": "tool_search_call",
        "id": "ts_1",
        "call_id": call_id,
        "execution": "client",
        "status": "completed",
        "arguments": arguments,
    }


# -- the tool ------------------------------------------------------------------------


def test_the_tool_is_a_client_executed_tool_search_the_api_accepts() -> None:
    tool = tool_search_tool()
    ToolSearchTool.model_validate(tool)
    assert tool["type"] == "tool_search"
    assert tool["execution"] == "client"
    assert tool["description"] == DESCRIPTION
    params = tool["parameters"]
    assert params["required"] == ["query"]
    assert set(params["properties"]) == {"query", "limit"}
    assert params["additionalProperties"] is False


def test_the_tool_says_what_can_be_found_within_its_bound() -> None:
    text = tool_search_tool(index())["description"]
    assert text.startswith(DESCRIPTION)
    assert "namespace github (4 tools): GitHub repositories, issues and pull requests." in text
    assert "namespace time (2 tools)" in text
    assert "tools: get_weather, sql_query" in text
    many = ToolIndex(
        [
            {"type": "namespace", "name": f"server_{i}", "description": "d " * 200, "tools": []}
            for i in range(200)
        ]
    )
    assert len(tool_search_tool(many)["description"]) <= MAX_DESCRIPTION_CHARS


def test_the_limit_maximum_follows_max_limit() -> None:
    tool = tool_search_tool(max_limit=7)
    assert tool["parameters"]["properties"]["limit"]["maximum"] == 7
    assert parse_arguments({"query": "x", "limit": 8}, max_limit=7) == (
        "error: 'limit' must be from 1 to 7; it was 8"
    )


# -- arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"query": "create an issue", "limit": 3},
        '{"query": "create an issue", "limit": 3}',
        '  {"query": "  create an issue  ", "limit": 3.0}',
    ],
)
def test_arguments_come_as_an_object_or_json_text(arguments: Any) -> None:
    assert parse_arguments(arguments) == SearchArgs("create an issue", 3)


def test_limit_defaults() -> None:
    assert parse_arguments({"query": "q"}) == SearchArgs("q", 5)
    assert parse_arguments({"query": "q", "limit": None}) == SearchArgs("q", 5)
    assert parse_arguments({"query": "q"}, default_limit=2) == SearchArgs("q", 2)


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ('{"query": "x", ', "not valid JSON"),
        ("[" * (MAX_ARGUMENTS_CHARS + 1), "at most"),
        ("[" * 5_000, "not valid JSON (nesting too deep)"),
        ('["create an issue"]', "must be a JSON object, not an array"),
        ("42", "must be a JSON object, not the number 42"),
        (None, "must be a JSON object, not null"),
        ("", "needs a 'query'"),
        ({}, "needs a 'query'"),
        ({"limit": 3}, "needs a 'query'"),
        ({"query": ""}, "'query' is empty"),
        ({"query": "   "}, "'query' is empty"),
        ({"query": 7}, "'query' must be a string, not the number 7"),
        ({"query": ["a", "b"]}, "'query' must be a string, not an array"),
        ({"query": "q" * (MAX_QUERY_CHARS + 1)}, "at most 1,000"),
        ({"query": "q", "limit": 0}, "'limit' must be from 1 to 20; it was 0"),
        ({"query": "q", "limit": 21}, "'limit' must be from 1 to 20; it was 21"),
        ({"query": "q", "limit": -3}, "it was -3"),
        ({"query": "q", "limit": "5"}, "'limit' must be an integer from 1 to 20, not a string"),
        ({"query": "q", "limit": True}, "not a boolean"),
        ({"query": "q", "limit": 2.5}, "not the number 2.5"),
        ({"query": "q", "paths": ["github"]}, "only 'query' and 'limit'; unknown: 'paths'"),
    ],
)
def test_malformed_arguments_get_an_error_the_model_can_act_on(arguments: Any, says: str) -> None:
    message = parse_arguments(arguments)
    assert isinstance(message, str)
    assert message.startswith("error: ")
    assert says in message


def test_every_error_shows_how_to_call_the_tool_when_the_shape_is_wrong() -> None:
    for arguments in ('{"query": ', "[]", {}, {"query": 1}, {"q": "x"}):
        message = parse_arguments(arguments)
        assert isinstance(message, str)
        assert '{"query": "create a github issue", "limit": 5}' in message


def test_oversize_arguments_are_refused_before_parsing() -> None:
    huge = json.dumps({"query": "x" * MAX_ARGUMENTS_CHARS})
    message = parse_arguments(huge)
    assert isinstance(message, str) and "at most 10,000 are accepted" in message


# -- the answer ----------------------------------------------------------------------


def test_a_search_is_answered_with_one_valid_tool_search_output() -> None:
    answer = answer_call(index(), call({"query": "create an issue", "limit": 2}))
    out = answer.output
    ResponseToolSearchOutputItemParam.model_validate(out)
    assert out["type"] == "tool_search_output"
    assert out["call_id"] == "call_ts_1"
    assert out["execution"] == "client"
    assert out["status"] == "completed"
    assert out["tools"][0]["name"] == "github"
    assert out["tools"][0]["tools"][0]["name"] == "create_issue"
    assert answer.ok and answer.message is None
    assert answer.loaded[0] == ("github", "create_issue")
    assert len(answer.loaded) == 2
    assert answer.summary == '"create an issue" → 2 tools'


def test_the_tools_loaded_can_be_read_back_from_the_output() -> None:
    answer = answer_call(index(), call({"query": "time issue weather sql", "limit": 10}))
    assert len(answer.loaded) >= 4
    assert keys_of(answer.output["tools"]) == answer.loaded
    # As the journal holds it: JSON round trip.
    assert keys_of(json.loads(json.dumps(answer.output))["tools"]) == answer.loaded


def test_json_text_arguments_are_answered_the_same() -> None:
    as_text = answer_call(index(), call('{"query": "weather in Paris"}'))
    assert as_text.output["tools"] == [WEATHER]
    assert as_text.summary == '"weather in Paris" → 1 tool'


def test_malformed_arguments_get_an_empty_incomplete_output_and_a_message() -> None:
    answer = answer_call(index(), call('{"query": '))
    ResponseToolSearchOutputItemParam.model_validate(answer.output)
    assert answer.output["call_id"] == "call_ts_1"
    assert answer.output["status"] == "incomplete"
    assert answer.output["tools"] == []
    assert not answer.ok and answer.loaded == []
    assert answer.message is not None and "not valid JSON" in answer.message
    assert answer.summary == answer.message


def test_no_match_is_a_completed_empty_answer_with_a_hint() -> None:
    answer = answer_call(index(), call({"query": "zebra quantum"}))
    assert answer.ok
    assert answer.output["status"] == "completed" and answer.output["tools"] == []
    assert answer.summary == '"zebra quantum" → 0 tools'
    assert answer.message is not None and "Try other words" in answer.message


def test_the_summary_says_when_the_size_bound_left_tools_out() -> None:
    answer = answer_call(index(), call({"query": "repository issue pull request"}), max_chars=600)
    assert len(json.dumps(answer.output["tools"])) <= 600
    assert "left out: over 600 characters" in answer.summary


def test_a_call_without_call_id_still_gets_its_output() -> None:
    c = call({"query": "sql"})
    del c["call_id"]
    assert answer_call(index(), c).output["call_id"] == ""


def test_an_invalid_output_is_refused() -> None:
    with pytest.raises(ValueError, match="not a valid tool_search_output"):
        check_output({"type": "tool_search_output", "tools": [{"type": "namespace", "name": "x"}]})


def test_the_message_item_names_the_call() -> None:
    item = message_item(call({}), "error: something")
    assert item["role"] == "developer"
    assert item["content"][0]["text"] == "[tool_search call_ts_1] error: something"
