"""`OpenAIModel`: any Responses-compatible server through the `openai` client.

The `openai` client sends the request and retries 429/5xx answers and failed
connections itself. The body is read raw (JSON, or server-sent events parsed
here) so that output items reach the history exactly as the server sent them,
whatever their type. A stream cut before `response.completed` (between events or
in the middle of one) or gone silent is retried from scratch: no tool has run for
that response yet, so a retry never re-runs one.

Time limits: `timeout_s` bounds connecting and any silence (not one byte) while a
response streams; SSE keep-alives count as bytes, so a server that sends only
those is caught by `max_time_s`, the limit on one request in total, retries and
their pauses included. Without streaming a healthy server says nothing until the
whole response is ready, so there only `max_time_s` bounds the wait once
connected. Both are named in the error when hit.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai

from itemloop.tools.items import Item

from .defaults import DEFAULT_MODEL_MAX_TIME_S, DEFAULT_MODEL_TIMEOUT_S
from .model import CompactionUnsupported, ModelError, ModelRequest, ModelResponse, OnText

_UNSUPPORTED_STATUS = {404, 405, 501}


class OpenAIModel:
    """The Responses API. Stateless by default: `store: false`, full history each time."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        stream: bool = True,
        store: bool = False,
        max_retries: int = 4,
        timeout_s: float = DEFAULT_MODEL_TIMEOUT_S,
        max_time_s: float = DEFAULT_MODEL_MAX_TIME_S,
        params: dict[str, Any] | None = None,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        if not timeout_s > 0 or not max_time_s > 0:
            raise ValueError(
                f"the model time limits must be positive (timeout_s={timeout_s}, "
                f"max_time_s={max_time_s})"
            )
        self.name = model
        self.stream = stream
        self.store = store
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.max_time_s = max_time_s
        self.params = dict(params or {})
        self._client = client or openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=max_retries,
            timeout=self._http_timeout(streaming=stream),
        )

    async def aclose(self) -> None:
        await self._client.close()

    @property
    def url(self) -> str:
        """The server's base URL, for messages."""
        return str(self._client.base_url).rstrip("/")

    def _http_timeout(self, *, streaming: bool) -> openai.Timeout:
        # Silence is the norm while a JSON response is prepared: no read limit there.
        read = self.timeout_s if streaming else None
        return openai.Timeout(
            read, connect=self.timeout_s, write=self.timeout_s, pool=self.timeout_s
        )

    def _silence(self, where: str = "") -> str:
        return (
            f"the model server at {self.url} sent nothing for {self.timeout_s:g} s{where} "
            "(the limit on connecting and on silence: timeout_s, --model-timeout)"
        )

    def _too_long(self) -> str:
        return (
            f"the model server at {self.url} did not finish within {self.max_time_s:g} s "
            "(the limit on one request, retries included: max_time_s, --model-max-time)"
        )

    def _body(self, request: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "input": list(request.input), **self.params}
        if request.tools:
            body["tools"] = list(request.tools)
        if request.instructions:
            body["instructions"] = request.instructions
        store = self.store if request.store is None else request.store
        if request.previous_response_id:
            if request.store is False:
                raise ModelError(
                    "a request that continues previous_response_id must be stored: "
                    "it cannot say store=False"
                )
            # The next request chains onto this response: the server must keep it.
            store = True
            body["previous_response_id"] = request.previous_response_id
        body["store"] = store
        if not store:
            # Stateless: encrypted reasoning must travel with the history.
            body["include"] = ["reasoning.encrypted_content"]
        body.update(request.extra)
        return body

    async def respond(
        self, request: ModelRequest, *, on_text: OnText | None = None
    ) -> ModelResponse:
        body = self._body(request)
        with anyio.move_on_after(self.max_time_s):
            return await self._respond(body, on_text)
        raise ModelError(self._too_long())

    async def _respond(self, body: dict[str, Any], on_text: OnText | None) -> ModelResponse:
        attempt = 0
        while True:
            try:
                if self.stream:
                    raw = await self._stream(body, on_text)
                else:
                    raw = await self._json(body)
            except _Retryable as e:
                attempt += 1
                if attempt > self.max_retries:
                    raise ModelError(f"{e}; {_gave_up(attempt)}") from None
                await anyio.sleep(min(8.0, 0.25 * 2**attempt) * (0.5 + random.random() / 2))
                continue
            except openai.APIStatusError as e:
                raise ModelError(_describe_status(e)) from None
            except openai.APITimeoutError:
                # The client retried it already.
                raise ModelError(f"{self._silence()}; {_gave_up(self.max_retries + 1)}") from None
            except openai.APIConnectionError as e:
                raise ModelError(f"cannot reach the model server at {self.url}: {e}") from None
            return _to_response(raw)

    async def _json(self, body: dict[str, Any]) -> dict[str, Any]:
        # Connection failures and 429/5xx were already retried by the openai client.
        raw = await self._client.responses.with_raw_response.create(
            **body, timeout=self._http_timeout(streaming=False)
        )
        try:
            data: dict[str, Any] = json.loads(raw.http_response.content)
        except json.JSONDecodeError as e:
            raise ModelError(f"the model server answered with invalid JSON: {e}") from None
        return data

    async def _stream(self, body: dict[str, Any], on_text: OnText | None) -> dict[str, Any]:
        done: dict[int, Item] = {}
        try:
            async with self._client.responses.with_streaming_response.create(
                **body, stream=True, timeout=self._http_timeout(streaming=True)
            ) as resp:
                async for event in _sse(resp.iter_lines()):
                    etype = event.get("type")
                    if etype == "response.output_text.delta" and on_text is not None:
                        await on_text(str(event.get("delta", "")))
                    elif etype == "response.output_item.done" and isinstance(
                        event.get("item"), dict
                    ):
                        done[int(event.get("output_index", len(done)))] = event["item"]
                    elif etype in ("response.completed", "response.incomplete"):
                        response: dict[str, Any] = event.get("response") or {}
                        if not response.get("output") and done:
                            response["output"] = [done[i] for i in sorted(done)]
                        return response
                    elif etype == "response.failed":
                        err = (event.get("response") or {}).get("error") or {}
                        raise ModelError(f"the model failed: {err.get('message', err)}")
                    elif etype == "error":
                        raise ModelError(
                            f"the model server sent an error: {event.get('message', event)}"
                        )
        except (openai.APIConnectionError, openai.APIStatusError, ModelError, _Retryable):
            raise  # the client already retried these; respond() reports them
        except Exception as e:  # the transport library's read errors mid-stream
            if type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2"):
                if any(c.__name__ == "TimeoutException" for c in type(e).__mro__):
                    raise _Retryable(self._silence(" in the middle of its response")) from None
                raise _Retryable(f"the response stream was cut: {type(e).__name__}: {e}") from None
            raise
        raise _Retryable("the response stream ended before response.completed")

    async def compact(self, request: ModelRequest) -> list[Item]:
        body: dict[str, Any] = {"model": self.name, "input": list(request.input)}
        if request.instructions:
            body["instructions"] = request.instructions
        if request.previous_response_id:
            body["previous_response_id"] = request.previous_response_id
        with anyio.move_on_after(self.max_time_s):
            return await self._compact(body)
        raise ModelError(self._too_long())

    async def _compact(self, body: dict[str, Any]) -> list[Item]:
        try:
            raw = await self._client.responses.with_raw_response.compact(
                **body, timeout=self._http_timeout(streaming=False)
            )
        except openai.APIStatusError as e:
            text = str(e).lower()
            if (
                e.status_code in _UNSUPPORTED_STATUS
                or "not supported" in text
                or "unsupported" in text
            ):
                raise CompactionUnsupported(_describe_status(e)) from None
            raise ModelError(_describe_status(e)) from None
        except openai.APITimeoutError:
            raise ModelError(self._silence()) from None
        except openai.APIConnectionError as e:
            raise ModelError(f"cannot reach the model server at {self.url}: {e}") from None
        try:
            data = json.loads(raw.http_response.content)
        except json.JSONDecodeError as e:
            raise ModelError(f"/responses/compact answered with invalid JSON: {e}") from None
        output = data.get("output") if isinstance(data, dict) else None
        if not isinstance(output, list) or not all(isinstance(i, dict) for i in output):
            raise ModelError(f"/responses/compact answered without a list of items: {data!r:.200}")
        return output


class _Retryable(Exception):
    pass


async def _sse(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    data: list[str] = []
    async for line in lines:
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif not line and data:
            payload = "\n".join(data)
            data = []
            if payload != "[DONE]":
                yield _event(payload)
    if data and data != ["[DONE]"]:
        # The body ended without the blank line that closes an event: a last event
        # that parses is taken as sent; one cut part-way is a cut stream.
        payload = "\n".join(data)
        try:
            json.loads(payload)
        except ValueError:
            raise _Retryable("the response stream was cut in the middle of an event") from None
        yield _event(payload)


def _event(payload: str) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except json.JSONDecodeError as e:
        raise ModelError(
            f"the model server sent a malformed event ({e.msg}): {payload[:200]!r}"
        ) from None
    if not isinstance(event, dict):
        raise ModelError(f"the model server sent a malformed event: {payload[:200]!r}")
    return event


def _gave_up(attempts: int) -> str:
    return f"gave up after {attempts} attempt{'' if attempts == 1 else 's'}"


def _to_response(raw: dict[str, Any]) -> ModelResponse:
    output = raw.get("output") or []
    if not isinstance(output, list) or not all(isinstance(i, dict) for i in output):
        raise ModelError(
            f"the model server's response has no list of output items: {output!r:.200}"
        )
    usage = raw.get("usage")
    return ModelResponse(
        output=output,
        id=raw.get("id"),
        usage=usage if isinstance(usage, dict) else None,
        raw=raw,
    )


def _describe_status(e: openai.APIStatusError) -> str:
    message = e.message
    if isinstance(e.body, dict):
        err = e.body.get("error", e.body)
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
    hint = ""
    if e.status_code == 401:
        hint = " — check OPENAI_API_KEY"
    elif e.status_code == 404:
        hint = " — check --model and --base-url"
    elif e.status_code == 429:
        hint = " — rate limited even after retries; try again later"
    return f"model server answered {e.status_code}: {message}{hint}"
