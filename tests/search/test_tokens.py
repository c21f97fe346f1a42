"""How tool names and queries become words and index terms."""

from __future__ import annotations

import pytest

from itemloop.tools.search.tokens import terms, words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("read_text_file", ["read", "text", "file"]),
        ("get-resource-links", ["get", "resource", "links"]),
        ("getFileInfo", ["get", "file", "info", "getfileinfo"]),
        ("refundPayment", ["refund", "payment", "refundpayment"]),
        ("HTTPServerError", ["http", "server", "error", "httpservererror"]),
        ("github__create_issue", ["github", "create", "issue"]),
        ("API-post-page", ["api", "post", "page"]),
        ("maxLength2", ["max", "length", "2", "maxlength2"]),
        ("base64 v2Items", ["base", "64", "base64", "v", "2", "items", "v2items"]),
        ("Find files (glob: *.py)", ["find", "files", "glob", "py"]),
        ("Größe der Datei", ["größe", "der", "datei"]),
        ("", []),
        ("___ --- !!!", []),
    ],
)
def test_words_split_identifiers_and_prose(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_a_name_written_in_camel_case_also_counts_whole() -> None:
    # "GitHub" in a description must meet the query word "github", not only "git" and "hub".
    assert words("GitHub") == ["git", "hub", "github"]
    assert set(terms("github")) <= set(terms("Create a GitHub issue"))
    assert set(terms("postgresql")) <= set(terms("PostgreSQL database"))


def test_terms_drop_stop_words_and_stem() -> None:
    assert terms("Creating the github issues") == ["creat", "github", "issu"]
    # A query and a tool name meet on their stems.
    assert terms("staged changes") == terms("stage change")
    assert terms("list_directories") == terms("listing directory")


def test_terms_of_only_stop_words_are_empty() -> None:
    assert terms("is it the") == []
