"""Fixtures for the apply_patch tests: a workspace, its sandbox, the executor."""

from __future__ import annotations

from pathlib import Path

import pytest
from patch_sandbox import FileSandbox

from itemloop.tools.apply_patch import ApplyPatchExecutor


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def sandbox(workspace: Path) -> FileSandbox:
    return FileSandbox(workspace)


@pytest.fixture
def executor(sandbox: FileSandbox) -> ApplyPatchExecutor:
    return ApplyPatchExecutor(sandbox)
