"""A local scripted server that speaks the Responses API over real HTTP.

Tests point the real `openai` client at it (`base_url=server.url`) and then
assert on the requests it received. It answers `POST /responses` with JSON or,
when the request asks for `stream: true`, with server-sent events, and
`POST /responses/compact`. Faults are queued per request, each used once:

- an HTTP status (429, 500, ...), answered instead of the next turn;
- `"drop"`: half the stream's events, then the connection is cut;
- `"cut-event"`: half the events and half of the next one, then the body ends
  cleanly (a proxy closing the stream in the middle of an event);
- `"stall"`: half the events, then silence until the client gives up;
- `"hang"`: the request is read and never answered;
- `"keepalive"`: stream headers, then only SSE comments, every
  `keepalive_interval_s`, until the client gives up.

A faulted stream gives its turn back, so the client's retry gets the same one.
Threads kept waiting by `"stall"` and `"hang"` are released when the server
stops.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Item = dict[str, Any]
Turn = list[Item] | dict[str, Any]
"""A list of output items, or `{"output": [...], "usage": {...}}`."""
TurnSource = Turn | Callable[[dict[str, Any]], Turn]


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ScriptedResponsesServer:
    turns: list[TurnSource] = field(default_factory=list)
    # What `/responses/compact` does: a function of the request body returning the
    # compacted output, or an HTTP status to answer with (e.g. 404).
    compact: Callable[[dict[str, Any]], list[Item]] | int = 404
    requests: list[Recorded] = field(default_factory=list)
    faults: list[int | str] = field(default_factory=list)
    keepalive_interval_s: float = 0.02

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._next_turn = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> ScriptedResponsesServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._stop.set()  # release handlers kept waiting by "hang" and "stall"
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- what tests read ----------------------------------------------------

    def response_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/responses")]

    def compact_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/responses/compact")]

    # -- internals -----------------------------------------------------------

    def _take_fault(self) -> int | str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _take_turn(self, body: dict[str, Any]) -> tuple[int, Turn]:
        with self._lock:
            n = self._next_turn
            if n >= len(self.turns):
                raise IndexError(f"script exhausted after {n} turns")
            self._next_turn += 1
            source = self.turns[n]
        return n, source(body) if callable(source) else source


def build_response(n: int, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
    if isinstance(turn, dict):
        output = list(turn["output"])
        usage = turn.get("usage")
    else:
        output, usage = list(turn), None
    if usage is None:
        in_tok = len(json.dumps(body.get("input", ""))) // 4
        out_tok = len(json.dumps(output)) // 4
        usage = {
            "input_tokens": in_tok,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_tok,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tok + out_tok,
        }
    return {
        "id": f"resp_{n:04d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": body.get("model", "scripted"),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools", []),
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
    }


def sse_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    skeleton = {**response, "status": "in_progress", "output": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": skeleton},
        {"type": "response.in_progress", "response": skeleton},
    ]
    for i, item in enumerate(response["output"]):
        events.append({"type": "response.output_item.added", "output_index": i, "item": item})
        if item.get("type") == "message":
            for part in item.get("content", []):
                text = part.get("text", "")
                for start in range(0, len(text), 16):
                    events.append(
                        {
                            "type": "response.output_text.delta",
                            "item_id": item.get("id", ""),
                            "output_index": i,
                            "content_index": 0,
                            "delta": text[start : start + 16],
                            "logprobs": [],
                        }
                    )
        events.append({"type": "response.output_item.done", "output_index": i, "item": item})
    events.append({"type": "response.completed", "response": response})
    for seq, ev in enumerate(events):
        ev["sequence_number"] = seq
    return events


def _make_handler(server: ScriptedResponsesServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            server.requests.append(Recorded(self.path, body, dict(self.headers.items())))
            if self.path.endswith("/responses/compact"):
                self._compact(body)
            elif self.path.endswith("/responses"):
                self._responses(body)
            else:
                self._json(
                    404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                )

        def _compact(self, body: dict[str, Any]) -> None:
            fault = server._take_fault()
            if fault == "hang":
                server._stop.wait()
                self.close_connection = True
                return
            if isinstance(fault, int):
                self._json(fault, {"error": {"message": "injected", "type": "server_error"}})
                return
            if isinstance(server.compact, int):
                self._json(
                    server.compact,
                    {
                        "error": {
                            "message": "compaction is not supported",
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            output = server.compact(body)
            self._json(
                200,
                {
                    "id": "cmp_0001",
                    "object": "response.compaction",
                    "created_at": int(time.time()),
                    "output": output,
                    "usage": {
                        "input_tokens": len(json.dumps(body.get("input", ""))) // 4,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": len(json.dumps(output)) // 4,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 0,
                    },
                },
            )

        def _responses(self, body: dict[str, Any]) -> None:
            fault = server._take_fault()
            if isinstance(fault, int):
                headers = {"retry-after-ms": "10"} if fault == 429 else {}
                self._json(
                    fault,
                    {"error": {"message": f"injected {fault}", "type": "server_error"}},
                    headers,
                )
                return
            if fault == "hang":
                server._stop.wait()
                self.close_connection = True
                return
            try:
                n, turn = server._take_turn(body)
            except IndexError as e:
                self._json(500, {"error": {"message": str(e), "type": "server_error"}})
                return
            response = build_response(n, body, turn)
            if not body.get("stream"):
                self._json(200, response)
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunks = [
                f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
                for ev in sse_events(response)
            ]
            if fault is None:
                for chunk in chunks:
                    self._chunk(chunk)
                self.wfile.write(b"0\r\n\r\n")
                return
            # A faulted stream: give the turn back so the client's retry gets it.
            with server._lock:
                server._next_turn -= 1
            self.close_connection = True
            if fault == "keepalive":
                while not server._stop.wait(server.keepalive_interval_s):
                    try:
                        self._chunk(b": keep-alive\n\n")
                    except OSError:
                        return  # the client gave up
                return
            half = max(1, len(chunks) // 2)
            for chunk in chunks[:half]:
                self._chunk(chunk)
            if fault == "cut-event":
                cut = chunks[half]
                self._chunk(cut[: len(cut) // 2])
                self.wfile.write(b"0\r\n\r\n")  # the body ends cleanly, mid-event
            elif fault == "stall":
                self.wfile.flush()
                server._stop.wait()
            elif fault != "drop":
                raise ValueError(f"unknown fault {fault!r}")
            self.wfile.flush()

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler
