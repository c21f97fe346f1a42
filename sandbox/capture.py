"""Bounded output capture, shared by every channel and the shell tools.

A command may print gigabytes; a channel keeps the first and the last bytes
of each stream (`HeadTailBuffer`, in bounded memory, cut at UTF-8 character
boundaries) and counts what it cut out of the middle, so memory stays bounded
whatever the command does; its text shows the cut as one `marker`. For the
model-facing character caps of the shell tools: `cap_text` does the same on
decoded text (one marker for an earlier cut and its own), `split_marked`
takes a capture's text apart at its marker again, and `split_budget` shares
one budget between stdout and stderr.
"""

from __future__ import annotations

from collections import deque

READ_CHUNK = 256 * 1024

# UTF-8 continuation bytes: every byte that is *not* one of these starts a character.
_CONTINUATION = bytes(range(0x80, 0xC0))


def count_chars(data: bytes | bytearray | memoryview) -> int:
    """The number of UTF-8 characters (sequence starts) in `data`, without decoding."""
    return len(bytes(data).translate(None, _CONTINUATION))


class HeadTailBuffer:
    """Keeps the first `limit // 2` and the last `limit - limit // 2` bytes fed to it."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._head_cap = self.limit // 2
        self._tail_cap = self.limit - self._head_cap
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.total = 0
        self.dropped = 0
        self.dropped_chars = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
            if not data:
                return
        if self._tail_cap == 0:
            self._drop(data)
            return
        if len(data) >= self._tail_cap:
            for chunk in self._tail:
                self._drop(chunk)
            self._tail.clear()
            self._drop(data[: len(data) - self._tail_cap])
            data = data[len(data) - self._tail_cap :]
            self._tail.append(data)
            self._tail_len = len(data)
            return
        self._tail.append(data)
        self._tail_len += len(data)
        while self._tail_len > self._tail_cap:
            first = self._tail[0]
            excess = self._tail_len - self._tail_cap
            if len(first) <= excess:
                self._tail.popleft()
                self._tail_len -= len(first)
                self._drop(first)
            else:
                self._tail[0] = first[excess:]
                self._tail_len -= excess
                self._drop(first[:excess])

    def _drop(self, data: bytes) -> None:
        self.dropped += len(data)
        self.dropped_chars += count_chars(data)

    def result(self) -> tuple[str, str, int, int]:
        """(head text, tail text, bytes dropped, characters dropped).

        Without a cut the whole text is the head. With one, the cut is moved to
        UTF-8 character boundaries, so no character is split into two
        replacement characters.
        """
        head = bytes(self._head)
        tail = b"".join(self._tail)
        if not self.dropped:
            return (head + tail).decode("utf-8", errors="replace"), "", 0, 0
        dropped, dropped_chars = self.dropped, self.dropped_chars
        head, cut = _trim_incomplete_end(head)
        dropped += len(cut)
        dropped_chars += count_chars(cut)
        lead = _leading_continuations(tail)
        dropped += lead
        tail = tail[lead:]
        return (
            head.decode("utf-8", errors="replace"),
            tail.decode("utf-8", errors="replace"),
            dropped,
            dropped_chars,
        )

    def text(self) -> tuple[str, int, int]:
        """The kept text, with a `marker` where bytes were cut; (text, bytes, chars) dropped."""
        head, tail, dropped, chars = self.result()
        if not dropped:
            return head, 0, 0
        return head + marker(chars) + tail, dropped, chars


def _trim_incomplete_end(data: bytes) -> tuple[bytes, bytes]:
    """Split off a UTF-8 sequence that `data` ends in the middle of."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b < 0x80:
            return data, b""
        if b >= 0xC0:  # a lead byte: how long should its sequence be?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if need > back:
                return data[:-back], data[-back:]
            return data, b""
    return data, b""


def _leading_continuations(data: bytes) -> int:
    n = 0
    while n < min(3, len(data)) and 0x80 <= data[n] < 0xC0:
        n += 1
    return n


def marker(chars_cut: int) -> str:
    return f"\n…[{chars_cut} characters cut]…\n"


def split_marked(text: str, chars_cut: int) -> tuple[str, str]:
    """Undo `HeadTailBuffer.text`: the head and tail around its marker."""
    if chars_cut:
        head, sep, tail = text.partition(marker(chars_cut))
        if sep:
            return head, tail
    return text, ""


def cap_text(head: str, limit: int, *, tail: str = "", already_cut: int = 0) -> str:
    """Cap `head + tail` at `limit` characters, keeping its start and end around a marker.

    `already_cut` counts characters cut before, between `head` and `tail`; the
    one marker then reports both cuts. The marker counts toward `limit` when
    `limit` leaves room for it.
    """
    total = len(head) + len(tail)
    if total <= limit and not already_cut:
        return head + tail
    if limit <= 0:
        return ""
    excess = max(0, total - limit)
    for _ in range(4):  # the marker's width depends on the count it shows
        keep = limit - len(marker(already_cut + excess))
        if keep <= 0:
            return (head + tail)[:limit]
        excess = max(0, total - keep)
    keep = total - excess
    mark = marker(already_cut + excess)
    if not excess:
        return head + mark + tail
    if not already_cut:
        text = head + tail
        h = (keep + 1) // 2
        t = keep - h
        return text[:h] + mark + text[total - t :]
    # Cut around the earlier cut, so one marker covers both.
    h = min((keep + 1) // 2, len(head))
    t = keep - h
    if t > len(tail):
        t = len(tail)
        h = keep - t
    return head[:h] + mark + tail[len(tail) - t :]


def split_budget(len_out: int, len_err: int, limit: int) -> tuple[int, int]:
    """Share a combined character budget between stdout and stderr.

    Each stream gets at least half of it when it needs that much; what one does
    not use goes to the other.
    """
    if len_out + len_err <= limit:
        return len_out, len_err
    err = min(len_err, max(limit // 2, limit - len_out))
    out = min(len_out, limit - err)
    return out, err
