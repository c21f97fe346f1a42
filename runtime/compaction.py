"""Automatic compaction: keep each request under a token threshold.

Before each model request the loop asks `ThresholdCompactor.maybe_compact`
whether the request about to be sent reaches the threshold (counted by
`tokens.TokenLedger`, one new item at a time). If it does, the history is
replaced by a shorter one that says the same:

- `remote`: `POST /responses/compact`; its output (the user messages, then one
  opaque `compaction` item) becomes the history as the server sent it.
- `local`: for servers without that endpoint. The model writes a handoff
  summary of the older part of the history; the new history is the first and
  the most recent user messages (within a budget), the summary, and the most
  recent turns that fit.
- `server`: the server compacts by itself (`context_management` on every
  request); the runtime only drops what came before the newest `compaction`
  item, as the API's guide allows in stateless mode.

`auto` tries `remote` and switches to `local`, once and for the rest of the
session, when the server says it has no such endpoint.

Whatever the strategy, the history is cut only between atomic units (a call
and its output, with the reasoning before them, stay together or go together),
and if compaction still leaves the history at or above the threshold, the
oldest whole units are dropped, with a warning, rather than failing the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from itemloop.tools.items import Item, is_call, pair_key, user_message

from .compactor import CompactionResult, Compactor
from .context_windows import context_window, default_threshold
from .events import Compacted, Notice
from .model import CompactionUnsupported, Model, ModelError, ModelRequest, ModelResponse
from .tokens import Tokenizer, TokenLedger, count_item, default_tokenizer, item_text

STRATEGIES: Final = ("auto", "remote", "local", "server")

SUMMARY_PROMPT: Final = """\
You are writing a handoff note. Another instance of you will continue this \
conversation from your note alone: the older part of the conversation, given \
to you as a transcript, is about to be removed from its context. It will still \
see the user's most recent messages and the latest turns.

Write the note in plain prose and short lists, in this order:
1. The user's goal, and every requirement, constraint and preference they stated.
2. What has been done: files created or changed, commands run and what they \
showed, decisions taken and why.
3. The current state: what works, what fails (with the exact error text), what \
is in progress.
4. What remains to do, and the next step.

Keep exact identifiers: file paths, function and variable names, command \
lines, URLs, ids, numbers. Leave out pleasantries and anything already \
superseded. Do not call tools; answer with the note only. Stay under about \
1,500 words."""

SUMMARY_PREFIX: Final = (
    "[itemloop] Handoff summary of the earlier part of this conversation, which was "
    "compacted to fit the context window. Continue from here."
)
DROPPED_PREFIX: Final = "[itemloop] Earlier turns of this conversation were dropped"


@dataclass(frozen=True, slots=True)
class Budgets:
    """Shares of the threshold; they decide how small a compacted history is."""

    user_messages: float = 0.1
    """User messages kept verbatim from the compacted part (the first, then the latest)."""
    recent: float = 0.3
    """The most recent turns kept verbatim (at least the last one, whatever its size)."""
    target: float = 0.5
    """What dropping whole turns aims for when compaction alone is not enough."""
    transcript_item_chars: int = 6_000
    """Longest text of one item in the transcript the summary is written from."""


# -- the structure of a history --------------------------------------------------


def units(items: Sequence[Item]) -> list[tuple[int, int]]:
    """Split `items` into `[start, end)` spans that must be kept or dropped whole.

    A span closes only once every call in it has its output in it; reasoning
    binds to the item after it, so it stays with the call it led to.
    """
    answered_at: dict[str, int] = {}
    for i, item in enumerate(items):
        pair = pair_key(item)
        if pair is not None and pair[0] == "output":
            answered_at.setdefault(pair[1], i)
    spans: list[tuple[int, int]] = []
    n = len(items)
    start = 0
    while start < n:
        end = start  # inclusive
        j = start
        while j <= end:
            item = items[j]
            pair = pair_key(item)
            if pair is not None and pair[0] == "call":
                end = max(end, answered_at.get(pair[1], j))
            if item.get("type") == "reasoning" and j == end and j + 1 < n:
                end = j + 1
            j += 1
        spans.append((start, end + 1))
        start = end + 1
    return spans


def orphans(items: Sequence[Item]) -> list[int]:
    """Indexes of outputs without an earlier call, and of calls without a later output
    (only call types the runtime answers: a hosted one needs no output from us)."""
    found: list[int] = []
    calls: dict[str, int] = {}
    answered: set[str] = set()
    for i, item in enumerate(items):
        pair = pair_key(item)
        if pair is None:
            continue
        role, key = pair
        if role == "output":
            if key in calls:
                answered.add(key)
            else:
                found.append(i)
        else:
            calls[key] = i
    for key, i in calls.items():
        if key not in answered and is_call(items[i]):
            found.append(i)
    return sorted(found)


def _message_text(item: Item) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def _isuser_message(item: Item) -> bool:
    """A message itemloop wrote itself (a summary or a drop notice)."""
    text = _message_text(item)
    return text.startswith(SUMMARY_PREFIX) or text.startswith(DROPPED_PREFIX)


def _is_user_message(item: Item) -> bool:
    return (
        item.get("type", "message") == "message"
        and item.get("role") in ("user", "developer", "system")
        and not _isuser_message(item)
    )


def render_transcript(items: Sequence[Item], *, max_item_chars: int, max_chars: int) -> str:
    """The older history as text for the summary request.

    A transcript rather than the items themselves: any Responses server takes
    one user message, while hosted and newer item types, or encrypted reasoning
    from another session, would be refused by some of them.
    """
    entries: list[str] = []
    for item in items:
        t = str(item.get("type", "message"))
        if t == "compaction":
            entries.append("[compacted earlier context: opaque, not shown]")
            continue
        text, _ = item_text(item)
        if t == "message":
            label = str(item.get("role", "user")).upper()
            text = _message_text(item) or text
        elif t == "reasoning":
            if not text:
                continue
            label = "REASONING"
        else:
            label = t.upper()
        if len(text) > max_item_chars:
            head, tail = max_item_chars * 2 // 3, max_item_chars // 3
            text = (
                f"{text[:head]}\n[… {len(text) - head - tail:,} characters cut …]\n{text[-tail:]}"
            )
        entries.append(f"{label}: {text}")
    total = sum(len(e) + 2 for e in entries)
    if total > max_chars:
        # Keep the start (the task as first stated, an earlier summary) and as much
        # of the end as fits; the middle is what a summary can best do without.
        head_budget, kept_head = max_chars // 4, 0
        first: list[str] = []
        for e in entries:
            if kept_head + len(e) > head_budget:
                break
            first.append(e)
            kept_head += len(e) + 2
        last: list[str] = []
        kept_tail = 0
        for e in reversed(entries[len(first) :]):
            if kept_head + kept_tail + len(e) > max_chars:
                break
            last.append(e)
            kept_tail += len(e) + 2
        omitted = len(entries) - len(first) - len(last)
        entries = [*first, f"[… {omitted} items omitted …]", *reversed(last)]
    return "\n\n".join(entries)


def _assistant_text(items: Sequence[Item]) -> str:
    return "\n".join(
        _message_text(i)
        for i in items
        if i.get("type") == "message" and i.get("role") == "assistant"
    ).strip()


# -- the compactor ---------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    items: list[Item]
    strategy: str


class ThresholdCompactor:
    """Compacts when the next request would reach `threshold` tokens."""

    def __init__(
        self,
        model: Model,
        *,
        threshold: int,
        strategy: str = "auto",
        tokenizer: Tokenizer | None = None,
        budgets: Budgets | None = None,
        max_input_tokens: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"compaction strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}"
            )
        if threshold <= 0:
            raise ValueError(
                f"the compaction threshold must be a positive number of tokens, not {threshold}"
            )
        self.model = model
        self.threshold = threshold
        self.strategy = strategy
        self.budgets = budgets or Budgets()
        self.max_input_tokens = max_input_tokens
        """What one request may carry, if known: bounds the summary request."""
        self.tokenizer = tokenizer or default_tokenizer(model.name)
        self.ledger = TokenLedger(self.tokenizer)
        self.remote_supported: bool | None = None
        """Learnt once per session: False after the server said it has no endpoint."""
        self._server_compacted = False
        self._server_ignored: str | None = None
        self._stuck: tuple[int, Item] | None = None

    # -- the seam -------------------------------------------------------------------

    def request_extra(self) -> dict[str, Any]:
        if self.strategy != "server":
            return {}
        return {"context_management": [{"type": "compaction", "compact_threshold": self.threshold}]}

    def observe(self, history: Sequence[Item], response: ModelResponse) -> None:
        self.ledger.observe(history, response.usage)
        if self.strategy != "server":
            return
        if any(i.get("type") == "compaction" for i in response.output):
            self._server_compacted = True
            return
        seen = (response.usage or {}).get("input_tokens")
        if isinstance(seen, int) and seen >= self.threshold and self._server_ignored is None:
            self._server_ignored = (
                f"the server took a {seen:,}-token request without compacting although asked to at "
                f"{self.threshold:,} (context_management); compacting on the client from now on"
            )

    def tokens(self, history: Sequence[Item], request: ModelRequest) -> int:
        """The size of `request`, carrying `history`, as the compactor counts it."""
        return self.ledger.total(history, instructions=request.instructions, tools=request.tools)

    async def maybe_compact(
        self, history: Sequence[Item], request: ModelRequest
    ) -> CompactionResult | None:
        started = time.monotonic()
        tokens = self.tokens(history, request)
        if self.strategy == "server" and self._server_ignored is None:
            return self._keep_server_compaction(history, request, tokens, started)
        if tokens < self.threshold:
            return None
        if self._stuck is not None and self._stuck == (
            len(history),
            history[-1] if history else {},
        ):
            # The last compaction could not get under the threshold and said so;
            # nothing was added since, so doing it again would change nothing.
            return None
        return await self._compact(history, request, tokens, started)

    # -- strategies ----------------------------------------------------------------

    async def _compact(
        self, history: Sequence[Item], request: ModelRequest, tokens: int, started: float
    ) -> CompactionResult:
        warnings: list[str] = []
        if self._server_ignored:
            warnings.append(self._server_ignored)
            self._server_ignored = ""  # said once; still not None, so the client keeps compacting
        outcome: _Outcome | None = None
        if self.strategy != "local" and self.remote_supported is not False:
            try:
                outcome = _Outcome(await self._remote(history, request), "remote")
                self.remote_supported = True
            except CompactionUnsupported as e:
                self.remote_supported = False
                warnings.append(
                    f"the server does not offer /responses/compact ({e}); "
                    "compacting with a local summary from now on"
                )
            except ModelError as e:
                warnings.append(
                    f"remote compaction failed ({e}); compacting with a local summary this time"
                )
        if outcome is None:
            try:
                outcome = _Outcome(await self._local(history, request), "local")
            except ModelError as e:
                warnings.append(
                    f"the summary request failed ({e}); dropping the oldest turns instead"
                )
                outcome = _Outcome(self._select(history, self._recent_cut(history), None), "drop")
        return self._finish(history, outcome, tokens, request, warnings, started)

    async def _remote(self, history: Sequence[Item], request: ModelRequest) -> list[Item]:
        stateful = request.previous_response_id is not None
        output = await self.model.compact(
            ModelRequest(
                # With previous_response_id the server already holds the rest.
                input=list(request.input) if stateful else list(history),
                instructions=request.instructions,
                previous_response_id=request.previous_response_id,
            )
        )
        if not output:
            raise ModelError("/responses/compact answered with no items")
        return list(output)

    async def _local(self, history: Sequence[Item], request: ModelRequest) -> list[Item]:
        cut = self._recent_cut(history)
        older = [i for i in history[:cut] if i.get("type") != "compaction"]
        if not any(not _is_user_message(i) for i in older):
            return list(history)  # nothing but user messages to summarise: keep as is
        # The summary request must itself fit in the window (or, not knowing it, in
        # the threshold); about 3 characters a token is pessimistic.
        max_chars = 3 * max(self.threshold, int(0.75 * (self.max_input_tokens or 0)))
        transcript = render_transcript(
            history[:cut],
            max_item_chars=min(self.budgets.transcript_item_chars, max_chars // 4),
            max_chars=max_chars,
        )
        response = await self.model.respond(
            ModelRequest(
                input=[
                    user_message(
                        "Here is the older part of the conversation, as a transcript:\n\n"
                        f"<transcript>\n{transcript}\n</transcript>\n\nWrite the handoff note now."
                    )
                ],
                instructions=SUMMARY_PROMPT,
                purpose="summary",
            )
        )
        summary = _assistant_text(response.output)
        if not summary:
            raise ModelError("the model answered the summary request without text")
        return self._select(history, cut, f"{SUMMARY_PREFIX}\n\n{summary}")

    def _recent_cut(self, history: Sequence[Item]) -> int:
        """Where the verbatim tail starts: the last unit, and earlier ones that fit."""
        spans = units(history)
        if not spans:
            return 0
        budget = self.budgets.recent * self.threshold
        k = len(spans) - 1
        used = self._span_tokens(history, spans[k])
        while k > 0:
            cost = self._span_tokens(history, spans[k - 1])
            if used + cost > budget:
                break
            used += cost
            k -= 1
        return spans[k][0]

    def _span_tokens(self, history: Sequence[Item], span: tuple[int, int]) -> int:
        return sum(count_item(self.tokenizer, history[i]) for i in range(*span))

    def _select(self, history: Sequence[Item], cut: int, summary: str | None) -> list[Item]:
        """The compacted history: kept user messages, the newest compaction item, the
        summary (or a notice that turns were dropped), then the recent turns."""
        older = history[:cut]
        candidates = [i for i, item in enumerate(older) if _is_user_message(item)]
        budget = self.budgets.user_messages * self.threshold
        kept: set[int] = set()
        used = 0
        # The first message states the task; the latest ones say where it stands.
        for rank, i in enumerate([*candidates[:1], *reversed(candidates[1:])]):
            cost = count_item(self.tokenizer, older[i])
            if used + cost > budget:
                if rank == 0:
                    continue
                break
            kept.add(i)
            used += cost
        compactions = [i for i, item in enumerate(older) if item.get("type") == "compaction"]
        if compactions:
            kept.add(compactions[-1])  # carried forward as the server sent it
        head = [older[i] for i in sorted(kept)]
        if summary is not None:
            head.append(user_message(summary))
        elif len(kept) < len(older):
            head.append(
                user_message(
                    f"{DROPPED_PREFIX} ({len(older) - len(kept)} items) to fit the context window."
                )
            )
        return [*head, *history[cut:]]

    def _keep_server_compaction(
        self, history: Sequence[Item], request: ModelRequest, tokens: int, started: float
    ) -> CompactionResult | None:
        """Server mode: drop what came before the newest compaction item.

        Only in stateless mode: with previous_response_id the server keeps the
        history, and the guide says not to prune it by hand.
        """
        if not self._server_compacted or request.previous_response_id is not None:
            return None
        self._server_compacted = False
        newest = next(
            (i for i in range(len(history) - 1, -1, -1) if history[i].get("type") == "compaction"),
            None,
        )
        if newest is None:
            return None
        start = next(s for s, e in units(history) if s <= newest < e)
        if start == 0:
            return None
        return self._finish(
            history, _Outcome(list(history[start:]), "server"), tokens, request, [], started
        )

    # -- the result ---------------------------------------------------------------

    def _finish(
        self,
        history: Sequence[Item],
        outcome: _Outcome,
        tokens: int,
        request: ModelRequest,
        warnings: list[str],
        started: float,
    ) -> CompactionResult:
        items = outcome.items
        bad = orphans(items)
        if bad:
            # Never send what the API refuses; say what was dropped.
            dropped = set(bad)
            items = [item for i, item in enumerate(items) if i not in dropped]
            warnings.append(f"dropped {len(bad)} call or output item(s) left without their pair")
        fixed = self.ledger.request_fixed(request.instructions, request.tools)
        after = fixed + sum(count_item(self.tokenizer, i) for i in items)
        warning: str | None = None
        if after >= self.threshold and outcome.strategy != "server":
            items, dropped_n = self._drop_oldest(
                items, int(self.budgets.target * self.threshold) - fixed
            )
            before_drop = after
            after = fixed + sum(count_item(self.tokenizer, i) for i in items)
            warning = (
                f"compaction ({outcome.strategy}) left {before_drop:,} tokens, not under the "
                f"threshold of {self.threshold:,}"
            )
            if dropped_n:
                warning += f"; dropped the {dropped_n} oldest items (whole turns) to fit"
            if after >= self.threshold:
                warning += f"; still {after:,}: the most recent turn alone is that large"
                self._stuck = (len(items), items[-1] if items else {})
            else:
                self._stuck = None
        else:
            self._stuck = None
        self.ledger.reset(items, after - fixed)
        event = Compacted(
            strategy=outcome.strategy,
            tokens_before=tokens,
            tokens_after=after,
            items_before=len(history),
            items_after=len(items),
            duration_s=time.monotonic() - started,
            warning=warning,
        )
        return CompactionResult(
            items=items, event=event, notices=tuple(Notice(w) for w in warnings)
        )

    def _drop_oldest(self, items: list[Item], budget: int) -> tuple[list[Item], int]:
        """Drop whole units from the front, never the last one, until under `budget`."""
        spans = units(items)
        costs = [self._span_tokens(items, s) for s in spans]
        total = sum(costs)
        first = 0
        while first < len(spans) - 1 and total > budget:
            total -= costs[first]
            first += 1
        if first == 0:
            return items, 0
        start = spans[first][0]
        notice = user_message(f"{DROPPED_PREFIX} ({start} items) to fit the context window.")
        return [notice, *items[start:]], start


def make_compactor(
    model: Model,
    *,
    threshold: int | None,
    strategy: str = "auto",
    model_name: str | None = None,
) -> Compactor:
    """The compactor behind `--compact-threshold` and `--compact-strategy`.

    `threshold=None` means a fraction of the model's known input window
    (`context_windows.default_threshold`); the model name defaults to
    `model.name`. Raises `ValueError` for an unknown strategy or a threshold
    that is not positive.
    """
    name = model_name or model.name
    return ThresholdCompactor(
        model,
        threshold=default_threshold(name) if threshold is None else threshold,
        strategy=strategy,
        tokenizer=default_tokenizer(name),
        max_input_tokens=context_window(name).max_input,
    )
