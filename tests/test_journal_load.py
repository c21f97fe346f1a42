"""Loading a session journal: a file itemloop cannot read as one is never
modified, and a torn last line is cut off only after valid records, its bytes
kept beside the journal (issue 9, item 7)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from helpers import message, write_script
from test_cli import itemloop

from itemloop.runtime.loop import Runtime
from itemloop.runtime.scripted import ScriptedModel
from itemloop.runtime.session import SessionError, SessionStore

pytestmark = pytest.mark.anyio


def _record(item: dict[str, object]) -> bytes:
    return (json.dumps({"item": item}) + "\n").encode()


def _beside(path: Path) -> list[Path]:
    """The files next to `path`, other than it."""
    return sorted(p for p in path.parent.iterdir() if p != path)


NOT_A_SESSION = {
    "binary without a line end": bytes(range(256)).replace(b"\n", b"") * 5,
    "text without a line end": b"just some notes, no newline",
    "binary with line ends": b"\xff\xfe\x00garbage\n\x89PNG\r\n\x1a\n" + os.urandom(64),
    "a record after a line that is not one": b"hello\n" + _record(message("a")),
    "a deeply nested line": b"[" * 2000 + b"]" * 2000 + b"\n",
    "only blank lines before a torn line": b"\n\n" + b'{"item": {"ty',
}


@pytest.mark.parametrize("content", NOT_A_SESSION.values(), ids=NOT_A_SESSION.keys())
def test_a_file_that_is_not_a_journal_is_refused_and_left_as_it_is(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.bin"
    path.write_bytes(content)
    with pytest.raises(SessionError) as caught:
        SessionStore(path).load()
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.bin"]


def test_resume_on_a_file_that_is_not_a_session_leaves_it_untouched(tmp_path: Path) -> None:
    path = tmp_path / "precious.bin"
    content = bytes((i * 7 + 3) % 256 for i in range(1200)).replace(b"\n", b"\x00")
    path.write_bytes(content)
    script = write_script(tmp_path / "t.jsonl", [message("hi")])
    for prompt in (["go"], []):
        r = itemloop(
            "run", *prompt, "--script", str(script), "--tools", "", "--session", str(path),
            "--resume",
        )  # fmt: skip
        assert r.returncode != 0
        assert "not an itemloop session" in r.stderr and "Traceback" not in r.stderr
        assert path.read_bytes() == content


def test_a_torn_last_line_is_cut_and_kept_beside_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.jsonl"
    good = _record(message("a")) + _record(message("b"))
    torn = b'{"item": {"type": "mess\xc3'
    path.write_bytes(good + torn)
    with caplog.at_level(logging.WARNING):
        state = SessionStore(path).load()
    assert state.items == [message("a"), message("b")]
    assert path.read_bytes() == good
    (kept,) = _beside(path)
    assert kept.name.startswith("s.jsonl.torn-")
    assert kept.read_bytes() == torn
    assert str(kept) in caplog.text and "torn" in caplog.text
    # The journal goes on from the last whole record.
    store = SessionStore(path)
    store.load()
    store.append([message("c")])
    store.close()
    assert SessionStore(path).load().items == [message("a"), message("b"), message("c")]
    assert _beside(path) == [kept]  # nothing more was cut


def test_each_repair_keeps_its_own_bytes(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    for tail in (b'{"item": 1', b'{"item": 2'):
        path.write_bytes(_record(message("a")) + tail)
        SessionStore(path).load()
    kept = [p.read_bytes() for p in _beside(path)]
    assert kept == [b'{"item": 1', b'{"item": 2']


async def test_a_run_resumes_a_torn_journal_and_the_cut_bytes_survive(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}
    path.write_bytes(_record(user) + b'{"started": "c')
    async with Runtime(ScriptedModel([[message("done")]]), session=path) as rt:
        result = await rt.run_until_done(None)
    assert result.reason == "completed" and result.final_text == "done"
    assert SessionStore(path).load().items == [user, message("done")]
    (kept,) = _beside(path)
    assert kept.read_bytes() == b'{"started": "c'
