"""Collect the tool-search corpus: the tools of published MCP servers, listed by the servers.

    python tests/data/tool_corpus/collect.py --prefix /tmp/mcp-corpus

Run once by hand (not by the tests: they read the committed JSON). Each server
is started as a stdio subprocess through itemloop's own MCP client
(`McpTools`), its `tools/list` answer is taken as the server sent it, and
written to `servers/<name>.json` with the package name and version that
answered. See README.md beside this file for how the packages are installed.

Servers that want an API key at start get a dummy one: listing tools needs no
account, and no call is ever made. A server that fails to start is reported
and left out; nothing else is fetched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from itemloop.tools.mcp import McpServer, McpTools

HERE = Path(__file__).parent
DUMMY = "dummy-not-a-real-key"


@dataclass(frozen=True)
class Source:
    name: str
    """The server's name in the corpus (its namespace)."""
    package: str
    registry: str  # "npm" or "pypi"
    command: str
    """The executable, relative to node_modules/.bin or pyvenv/bin under --prefix."""
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


SOURCES = (
    Source("filesystem", "@modelcontextprotocol/server-filesystem", "npm", "mcp-server-filesystem", ("{tmp}",)),
    Source("memory", "@modelcontextprotocol/server-memory", "npm", "mcp-server-memory", env={"MEMORY_FILE_PATH": "{tmp}/memory.json"}),
    Source("everything", "@modelcontextprotocol/server-everything", "npm", "mcp-server-everything", ("stdio",)),
    Source("sequential_thinking", "@modelcontextprotocol/server-sequential-thinking", "npm", "mcp-server-sequential-thinking"),
    Source("github", "@modelcontextprotocol/server-github", "npm", "mcp-server-github", env={"GITHUB_PERSONAL_ACCESS_TOKEN": DUMMY}),
    Source("gitlab", "@modelcontextprotocol/server-gitlab", "npm", "mcp-server-gitlab", env={"GITLAB_PERSONAL_ACCESS_TOKEN": DUMMY, "GITLAB_API_URL": "http://127.0.0.1:9/api/v4"}),
    Source("slack", "@modelcontextprotocol/server-slack", "npm", "mcp-server-slack", env={"SLACK_BOT_TOKEN": DUMMY, "SLACK_TEAM_ID": "T00000000"}),
    Source("google_maps", "@modelcontextprotocol/server-google-maps", "npm", "mcp-server-google-maps", env={"GOOGLE_MAPS_API_KEY": DUMMY}),
    Source("brave_search", "@modelcontextprotocol/server-brave-search", "npm", "mcp-server-brave-search", env={"BRAVE_API_KEY": DUMMY}),
    Source("postgres", "@modelcontextprotocol/server-postgres", "npm", "mcp-server-postgres", ("postgresql://127.0.0.1:9/none",)),
    Source("playwright", "@playwright/mcp", "npm", "playwright-mcp", ("--headless", "--browser", "chromium")),
    Source("notion", "@notionhq/notion-mcp-server", "npm", "notion-mcp-server", env={"NOTION_TOKEN": DUMMY}),
    Source("kubernetes", "mcp-server-kubernetes", "npm", "mcp-server-kubernetes"),
    Source("git", "mcp-server-git", "pypi", "mcp-server-git"),
    Source("time", "mcp-server-time", "pypi", "mcp-server-time", ("--local-timezone", "UTC")),
    Source("fetch", "mcp-server-fetch", "pypi", "mcp-server-fetch"),
)  # fmt: skip


def version_of(src: Source, prefix: Path) -> str:
    if src.registry == "npm":
        manifest = prefix / "node_modules" / src.package / "package.json"
        return str(json.loads(manifest.read_text())["version"])
    out = subprocess.run(
        [str(prefix / "pyvenv" / "bin" / "pip"), "show", src.package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return next(
        line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version:")
    )


async def collect(src: Source, prefix: Path, tmp: Path) -> dict[str, object]:
    bindir = prefix / ("node_modules/.bin" if src.registry == "npm" else "pyvenv/bin")
    server = McpServer(
        src.name,
        command=str(bindir / src.command),
        args=tuple(a.format(tmp=tmp) for a in src.args),
        env={k: v.format(tmp=tmp) for k, v in src.env.items()},
        cwd=str(tmp),
        connect_timeout_s=60.0,
    )
    async with McpTools([server]) as mcp:
        tools = mcp.connections[0].tools
        listed = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]
    return {
        "server": src.name,
        "package": src.package,
        "registry": src.registry,
        "version": version_of(src, prefix),
        "tools": listed,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, required=True, help="where the packages are")
    parser.add_argument("--only", nargs="*", help="collect only these servers")
    a = parser.parse_args()
    out_dir = HERE / "servers"
    out_dir.mkdir(exist_ok=True)
    failed = 0
    for src in SOURCES:
        if a.only and src.name not in a.only:
            continue
        tmp = Path(tempfile.mkdtemp(prefix="itemloop-corpus-"))
        try:
            data = await collect(src, a.prefix.resolve(), tmp)
        except Exception as e:
            print(f"{src.name}: FAILED: {e}", file=sys.stderr)
            failed += 1
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        path = out_dir / f"{src.name}.json"
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
        print(f"{src.name}: {len(data['tools'])} tools ({src.package} {data['version']})")  # type: ignore[arg-type]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
