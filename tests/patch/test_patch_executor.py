"""ApplyPatchExecutor: the call/output contract, path safety, ordering, file writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import pytest
from patch_sandbox import INPUT_ITEM, FileSandbox, call, execute

from itemloop.tools.apply_patch import ApplyPatchExecutor
from itemloop.tools.base import Executor


def test_it_is_an_executor_for_apply_patch_calls(executor: ApplyPatchExecutor) -> None:
    assert isinstance(executor, Executor)
    assert executor.item_types == ("apply_patch_call",)
    assert executor.sequential is True
    assert executor.definitions() == [{"type": "apply_patch"}]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"type": "apply_patch_call", "call_id": "c"}, "has no operation"),
        ({"type": "apply_patch_call", "call_id": "c", "operation": "x"}, "has no operation"),
        (
            {"type": "apply_patch_call", "call_id": "c", "operation": {"type": "rename_file"}},
            "unknown apply_patch operation type 'rename_file'",
        ),
        (
            {"type": "apply_patch_call", "call_id": "c", "operation": {"path": "a.txt"}},
            "unknown apply_patch operation type None",
        ),
        (
            {"type": "apply_patch_call", "call_id": "c", "operation": {"type": "update_file"}},
            "update_file: the operation has no path",
        ),
        (
            {
                "type": "apply_patch_call",
                "call_id": "c",
                "operation": {"type": "update_file", "path": "a.txt"},
            },
            "update_file a.txt: the operation has no diff",
        ),
        (
            {
                "type": "apply_patch_call",
                "call_id": "c",
                "operation": {"type": "create_file", "path": "b.txt", "diff": None},
            },
            "create_file b.txt: the operation has no diff",
        ),
        (
            {
                "type": "apply_patch_call",
                "call_id": "c",
                "operation": {"type": "update_file", "path": "a.txt", "diff": ""},
            },
            "the diff has no hunks",
        ),
    ],
)
def test_malformed_calls_fail_with_specific_text(
    item: dict[str, Any], fragment: str, workspace: Path, executor: ApplyPatchExecutor
) -> None:
    (workspace / "a.txt").write_text("a\n")
    result = execute(executor, item)
    assert not result.ok
    assert fragment in result.output["output"]
    assert (workspace / "a.txt").read_text() == "a\n"
    assert not (workspace / "b.txt").exists()


def test_a_call_without_call_id_still_gets_a_valid_output(executor: ApplyPatchExecutor) -> None:
    result = anyio.run(executor.execute, {"type": "apply_patch_call"})
    INPUT_ITEM.validate_python(result.output)
    assert result.output["status"] == "failed"


def test_completed_output_item_validates(workspace: Path, executor: ApplyPatchExecutor) -> None:
    (workspace / "a.txt").write_text("a\n")
    result = execute(executor, call("update_file", "a.txt", "@@\n-a\n+b\n", call_id="call_9"))
    assert result.output == {
        "type": "apply_patch_call_output",
        "call_id": "call_9",
        "status": "completed",
        "output": "M a.txt: 1 hunk, +1 -1",
    }


def test_tolerant_match_is_reported(workspace: Path, executor: ApplyPatchExecutor) -> None:
    (workspace / "a.txt").write_text("a \nb\n")
    result = execute(executor, call("update_file", "a.txt", "@@\n a\n-b\n+c\n"))
    assert result.output["output"] == (
        "M a.txt: 1 hunk, +1 -1 (hunk 1 matched ignoring trailing whitespace)"
    )
    assert result.summary == "M a.txt: 1 hunk, +1 -1"


def test_symlink_to_a_file_outside_is_refused(tmp_path: Path, workspace: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("a\n")
    (workspace / "link.txt").symlink_to(outside)
    executor = ApplyPatchExecutor(FileSandbox(workspace))
    for item in (
        call("update_file", "link.txt", "@@\n-a\n+b\n"),
        call("delete_file", "link.txt"),
        call("create_file", "link.txt", "+b\n"),
    ):
        result = execute(executor, item)
        assert not result.ok
        assert "leaves the workspace through a symlink" in result.output["output"]
    assert outside.read_text() == "a\n"


def test_symlinked_directory_outside_is_refused(tmp_path: Path, workspace: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (workspace / "dir").symlink_to(outside, target_is_directory=True)
    executor = ApplyPatchExecutor(FileSandbox(workspace))
    result = execute(executor, call("create_file", "dir/new.txt", "+x\n"))
    assert not result.ok
    assert "create_file dir/new.txt" in result.output["output"]
    assert "symlink" in result.output["output"]
    assert list(outside.iterdir()) == []


def test_symlink_inside_the_workspace_edits_its_target(
    workspace: Path, executor: ApplyPatchExecutor
) -> None:
    (workspace / "real.txt").write_text("a\n")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    assert execute(executor, call("update_file", "alias.txt", "@@\n-a\n+b\n")).ok
    assert (workspace / "real.txt").read_text() == "b\n"


def test_file_mode_is_kept(workspace: Path, executor: ApplyPatchExecutor) -> None:
    script = workspace / "run.sh"
    script.write_text("#!/bin/sh\necho a\n")
    script.chmod(0o750)
    assert execute(executor, call("update_file", "run.sh", "@@\n-echo a\n+echo b\n")).ok
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    assert script.read_text() == "#!/bin/sh\necho b\n"


def test_writes_are_atomic_renames_in_the_same_directory(
    workspace: Path, executor: ApplyPatchExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "d").mkdir()
    (workspace / "d" / "f.txt").write_text("a\n")
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def where(name: Any, dir_fd: int | None) -> Path:
        # The rename is relative to directory descriptors (no path is trusted twice).
        base = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) if dir_fd is not None else Path()
        return (base / str(name)).absolute()

    def recording_replace(src: Any, dst: Any, **kw: Any) -> None:
        renames.append(
            (str(where(src, kw.get("src_dir_fd"))), str(where(dst, kw.get("dst_dir_fd"))))
        )
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", recording_replace)
    assert execute(executor, call("update_file", "d/f.txt", "@@\n-a\n+b\n")).ok
    assert len(renames) == 1
    src, dst = renames[0]
    assert Path(src).parent == Path(dst).parent == (workspace / "d").resolve()
    assert Path(dst).name == "f.txt"
    assert sorted(p.name for p in (workspace / "d").iterdir()) == ["f.txt"]


def test_a_failed_call_writes_nothing(workspace: Path, sandbox: FileSandbox) -> None:
    (workspace / "a.txt").write_text("a\nb\nc\n")
    executor = ApplyPatchExecutor(sandbox)
    diff = "@@\n a\n-b\n+B\n@@\n-zzz\n+c\n"  # the first hunk matches, the second does not
    assert not execute(executor, call("update_file", "a.txt", diff)).ok
    assert sandbox.writes == []
    assert (workspace / "a.txt").read_text() == "a\nb\nc\n"


def test_a_patch_that_changes_nothing_does_not_rewrite_the_file(
    workspace: Path, sandbox: FileSandbox
) -> None:
    (workspace / "a.txt").write_text("a\nb\n")
    executor = ApplyPatchExecutor(sandbox)
    assert execute(executor, call("update_file", "a.txt", "@@\n-b\n+b\n")).ok
    assert sandbox.writes == []


def test_calls_of_one_turn_apply_in_order(workspace: Path, executor: ApplyPatchExecutor) -> None:
    calls = [
        call("create_file", "n.txt", "+one\n", call_id="c1"),
        call("update_file", "n.txt", "@@\n one\n+two\n", call_id="c2"),
        call("update_file", "n.txt", "@@\n two\n+three\n", call_id="c3"),
        call("delete_file", "gone.txt", call_id="c4"),
    ]
    (workspace / "gone.txt").write_text("x\n")
    results: dict[str, bool] = {}

    async def main() -> None:
        async def one(item: dict[str, Any]) -> None:
            results[item["call_id"]] = (await executor.execute(item)).ok

        # Started together, as a careless caller might: still applied in call order.
        async with anyio.create_task_group() as tg:
            for item in calls:
                tg.start_soon(one, item)

    anyio.run(main)
    assert results == {"c1": True, "c2": True, "c3": True, "c4": True}
    assert (workspace / "n.txt").read_text() == "one\ntwo\nthree\n"
    assert not (workspace / "gone.txt").exists()


def test_large_files_are_patched(workspace: Path, executor: ApplyPatchExecutor) -> None:
    lines = [f"line {i} " + "x" * 60 for i in range(20_000)]
    (workspace / "big.txt").write_text("\n".join(lines) + "\n")
    diff = f"@@\n {lines[9_998]}\n-{lines[9_999]}\n+changed\n {lines[10_000]}\n"
    result = execute(executor, call("update_file", "big.txt", diff))
    assert result.ok, result.output["output"]
    lines[9_999] = "changed"
    assert (workspace / "big.txt").read_text() == "\n".join(lines) + "\n"
