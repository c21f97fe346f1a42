"""`itemloop exec --tools computer`: a computer_call through the command line,
on a real headless Chromium, answered with a real screenshot; the browser's download
limits set by flags (`--browser-max-download`, ...), through `itemloop run` on a real
Responses server, and as configuration."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
from computer_probe import CHROMIUM, require
from helpers import message
from responses_server import ScriptedResponsesServer
from web_probe import download_site

from itemloop.runtime.cli import build_parser
from itemloop.runtime.commands import CliError, toolset_config
from itemloop.sandbox.browser_files import (
    MAX_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOAD_BYTES,
    MAX_SESSION_DOWNLOADS,
)
from itemloop.tools.config import ComputerConfig


def test_exec_clicks_in_the_browser_and_returns_the_screenshot(site: str) -> None:
    require(binaries=(CHROMIUM,), modules=("playwright", "PIL"))
    from PIL import Image

    call = {
        "type": "computer_call",
        "id": "cu_1",
        "call_id": "c1",
        "status": "completed",
        "pending_safety_checks": [],
        "action": {"type": "click", "button": "left", "x": 120, "y": 65},
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "itemloop.runtime.cli",
            "exec",
            "--tools",
            "computer",
            "--start-url",
            site,
            "--browser-network",
            "all",  # the site is on 127.0.0.1
            "--display-size",
            "800x600",
        ],
        input=json.dumps(call) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["type"] == "computer_call_output" and out["call_id"] == "c1"
    url = out["output"]["image_url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    assert image.size == (800, 600)
    # The click hit the button: the page turned green (#88ff88) behind it.
    assert image.getpixel((600, 500)) == (0x88, 0xFF, 0x88)


# -- the browser's download limits, set on the command line ----------------------------

DOWNLOAD_PAGE = (
    "<a href='/file' style='position:absolute;left:0;top:0;width:300px;height:200px'>get</a>"
)


def _computer_call(cid: str, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "computer_call",
        "id": f"cu_{cid}",
        "call_id": cid,
        "status": "completed",
        "pending_safety_checks": [],
        "action": action,
    }


def _download_said(body: dict[str, Any]) -> bool:
    return "download named" in json.dumps(body.get("input", []))


def run_clicking_a_download(site: str, workspace: Path, *flags: str) -> str:
    """`itemloop run` on a model (a real Responses server) that clicks the page's download
    link, then waits a second at a time until a note about the download reaches it; what
    the model was told, as one JSON string."""

    def poll(body: dict[str, Any]) -> list[dict[str, Any]]:
        if _download_said(body):
            return [message("done", id=f"msg_{len(body['input'])}")]
        return [_computer_call(f"w{len(body['input'])}", {"type": "wait"})]

    click = _computer_call("c1", {"type": "click", "button": "left", "x": 100, "y": 100})
    turns: list[Any] = [[click], *[poll] * 40]
    with ScriptedResponsesServer(turns=turns) as server:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "itemloop.runtime.cli",
                "run",
                "get the file",
                "--base-url",
                server.url,
                "--model",
                "gpt-x",
                "--tools",
                "computer",
                "--start-url",
                site,
                "--browser-network",
                "all",  # the site is on 127.0.0.1
                "--display-size",
                "400x300",
                "--workspace",
                str(workspace),
                "--max-turns",
                "45",
                *flags,
            ],
            capture_output=True,
            text=True,
            timeout=150,
            env={**os.environ, "OPENAI_API_KEY": "sk-test"},
        )
        requests = server.response_requests()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "done", r.stdout
    said = json.dumps(requests[-1]["input"])
    assert "download named" in said
    return said


def test_a_download_over_the_byte_limit_set_on_the_command_line_is_cancelled(
    tmp_path: Path,
) -> None:
    require(binaries=(CHROMIUM,), modules=("playwright", "PIL"))
    with download_site(DOWNLOAD_PAGE, "data.bin", None) as site:
        said = run_clicking_a_download(site, tmp_path, "--browser-max-download", "1000")
    assert '\\"data.bin\\"' in said
    assert "was cancelled: it passed 1000 bytes, the most one download may be" in said
    downloads = tmp_path / "downloads"
    left = sorted(downloads.iterdir()) if downloads.is_dir() else []
    assert [(p.name, p.stat().st_size) for p in left if p.stat().st_size > 1000] == []


def test_no_download_is_saved_with_browser_max_downloads_0(tmp_path: Path) -> None:
    require(binaries=(CHROMIUM,), modules=("playwright", "PIL"))
    with download_site(DOWNLOAD_PAGE, "data.bin", 100) as site:
        said = run_clicking_a_download(site, tmp_path, "--browser-max-downloads", "0")
    assert "downloads are turned off" in said and "was cancelled" in said
    downloads = tmp_path / "downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []


# -- the flags as configuration ---------------------------------------------------------


def _config_of(*flags: str) -> ComputerConfig:
    args = build_parser().parse_args(["tools", "--tools", "computer", *flags])
    return toolset_config(args).computer


def test_the_download_flags_land_in_the_computer_config() -> None:
    default = _config_of()
    assert default.max_download_bytes == MAX_DOWNLOAD_BYTES
    assert default.max_downloads == MAX_SESSION_DOWNLOADS
    assert default.max_session_download_bytes == MAX_SESSION_DOWNLOAD_BYTES
    set_ = _config_of(
        "--browser-max-download",
        "3221225472",
        "--browser-max-downloads",
        "0",
        "--browser-max-download-total",
        "4000",
    )
    assert set_.max_download_bytes == 3 << 30
    assert set_.max_downloads == 0
    assert set_.max_session_download_bytes == 4000


def test_a_negative_download_limit_is_a_clear_cli_error() -> None:
    for flag in (
        "--browser-max-download",
        "--browser-max-downloads",
        "--browser-max-download-total",
    ):
        with pytest.raises(CliError, match=f"{flag} -1: .*0 or more") as e:
            _config_of(flag, "-1")
        assert e.value.status == 2
    for field in ("max_download_bytes", "max_downloads", "max_session_download_bytes"):
        with pytest.raises(pydantic.ValidationError, match=field):
            ComputerConfig.model_validate({field: -1})


def test_a_download_limit_that_is_no_number_is_refused_by_name() -> None:
    for flag in (
        "--browser-max-download",
        "--browser-max-downloads",
        "--browser-max-download-total",
    ):
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "itemloop.runtime.cli",
                "tools",
                "--tools",
                "computer",
                flag,
                "lots",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2
        assert f"argument {flag}: invalid int value: 'lots'" in r.stderr, r.stderr
