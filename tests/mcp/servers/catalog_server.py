"""An MCP server with many tools, for the tool-search tests: `python catalog_server.py THEME N`.

THEME picks a vocabulary (`tickets`, `files`, `mail`); the server offers N
tools named `<verb>_<object>` over it, each with its own description and a
parameter, plus one tool the tests look for by meaning. Every tool answers
with `THEME:<tool>:<its argument>`, so a test sees which server and which
tool a call reached.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable

from mcp.server.mcpserver import MCPServer

VOCABULARY = {
    "tickets": (
        ["open", "close", "assign", "label", "comment", "triage", "reopen", "link"],
        [
            "bug",
            "ticket",
            "milestone",
            "sprint",
            "epic",
            "backlog",
            "release",
            "board",
            "roadmap",
            "changelog",
        ],
        ("file_bug_report", "File a new bug report in the issue tracker, with a title"),
    ),
    "files": (
        ["read", "write", "copy", "move", "delete", "stat", "hash", "compress"],
        [
            "file",
            "folder",
            "archive",
            "symlink",
            "blob",
            "snapshot",
            "mount",
            "volume",
            "partition",
            "quota",
        ],
        ("search_text_in_files", "Search for a text pattern inside the files of a folder"),
    ),
    "mail": (
        ["send", "draft", "forward", "archive", "flag", "sort", "scan", "export"],
        [
            "email",
            "inbox",
            "contact",
            "calendar",
            "invite",
            "newsletter",
            "thread",
            "alias",
            "signature",
            "mailbox",
        ],
        ("schedule_meeting", "Schedule a calendar meeting and invite people to it"),
    ),
}


def make_tool(theme: str, name: str) -> Callable[[str], str]:
    def tool(value: str) -> str:
        return f"{theme}:{name}:{value}"

    return tool


def main() -> None:
    theme, count = sys.argv[1], int(sys.argv[2])
    verbs, objects, (special, special_description) = VOCABULARY[theme]
    server = MCPServer(f"catalog-{theme}", log_level="WARNING")
    server.add_tool(make_tool(theme, special), name=special, description=special_description)
    for verb, obj in itertools.islice(itertools.product(verbs, objects), count - 1):
        name = f"{verb}_{obj}"
        description = f"{verb.capitalize()} a {obj} in the {theme} service."
        server.add_tool(make_tool(theme, name), name=name, description=description)
    server.run("stdio")


if __name__ == "__main__":
    main()
