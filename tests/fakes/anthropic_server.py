"""A local fake of Anthropic's Messages API (aiohttp), for the real `anthropic` client.

`FakeAnthropic` answers `POST /v1/messages` the way api.anthropic.com does: it checks the
`Authorization: Bearer <key>` header the 2.x client sends and the `anthropic-version`
header, validates the request body, records every request so tests can assert on what was
sent, and answers with a real `Message` JSON (usage included) or a scripted error. It
simulates prompt caching: the system prefix up to the last `cache_control` block is
"created" the first time it is seen and "read" afterwards, so usage accounting can be
tested. Like API version 2026-10-21 it rejects sampling parameters (`temperature`...).
It is stricter than the real API in one way: messages must alternate roles.

    async with FakeAnthropic() as server:
        client = AsyncAnthropic(api_key=server.api_key, base_url=server.base_url,
                                max_retries=0)
        server.reply_with("hey\\n\\nwhat's up")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

API_KEY = "sk-ant-test-key"
"""The key the fake accepts unless told otherwise."""
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
"""Rejected with 400 at any value since API version 2026-10-21, as the real API does."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it: the headers (lower-case names) and JSON body."""

    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system_blocks(self) -> list[dict[str, Any]]:
        """The system prompt as content blocks (a plain string becomes one text block)."""
        system = self.body.get("system", [])
        if isinstance(system, str):
            return [{"type": "text", "text": system}]
        return list(system)

    @property
    def system_text(self) -> str:
        """Every system block's text, joined."""
        return "\n".join(block["text"] for block in self.system_blocks)

    @property
    def sent_text(self) -> str:
        """Everything this request sent as text: system prompt and messages."""
        parts = [self.system_text]
        for message in self.body.get("messages", []):
            content = message["content"]
            if isinstance(content, str):
                parts.append(content)
            else:
                parts.extend(block.get("text", "") for block in content)
        return "\n".join(parts)


@dataclass(frozen=True)
class _Text:
    text: str
    stop_reason: str = "end_turn"


@dataclass(frozen=True)
class _Error:
    status: int
    error_type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hang:
    seconds: float
    text: str


_Scripted = _Text | _Error | _Hang


class FakeAnthropic(LocalServer):
    """The fake server; start it with `async with`, script answers, read `requests`."""

    def __init__(self, *, api_key: str = API_KEY, default_text: str = "ok") -> None:
        self.api_key = api_key
        self.default_text = default_text
        self.requests: list[RecordedRequest] = []
        self._script: deque[_Scripted] = deque()
        self._cached: set[str] = set()
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        super().__init__()

    @property
    def base_url(self) -> str:
        """What to pass as the client's `base_url`."""
        return self.origin

    def reply_with(self, text: str, *, stop_reason: str = "end_turn") -> None:
        """Answer the next request with a message whose only content is `text`."""
        self._script.append(_Text(text, stop_reason))

    def fail_with(
        self, status: int, error_type: str, *, message: str = "", retry_after: float | None = None
    ) -> None:
        """Answer the next request with an API error (`overloaded_error`, `api_error`...)."""
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        self._script.append(_Error(status, error_type, message or error_type, headers))

    def hang(self, seconds: float, *, text: str = "too late") -> None:
        """Answer the next request only after `seconds` (or when the server closes)."""
        self._script.append(_Hang(seconds, text))

    def routes(self) -> list[web.RouteDef]:
        """`POST /v1/messages`."""
        return [web.post("/v1/messages", self._messages)]

    def stopping(self) -> None:
        """End hanging answers at once."""
        self._closing.set()

    async def _messages(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version header is required")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "invalid_request_error", "request body is not valid JSON")
        self.requests.append(
            RecordedRequest({k.lower(): v for k, v in request.headers.items()}, body)
        )
        problem = _invalid(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        scripted = self._script.popleft() if self._script else _Text(self.default_text)
        if isinstance(scripted, _Error):
            return _error(scripted.status, scripted.error_type, scripted.message, scripted.headers)
        if isinstance(scripted, _Hang):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), scripted.seconds)
            scripted = _Text(scripted.text)
        return web.json_response(self._message(body, scripted))

    def _message(self, body: dict[str, Any], answer: _Text) -> dict[str, Any]:
        record = self.requests[-1]
        cached_chars, cache_key = _cache_prefix(body["model"], record.system_blocks)
        read = created = 0
        if cache_key is not None:
            if cache_key in self._cached:
                read = _tokens(cached_chars)
            else:
                created = _tokens(cached_chars)
                self._cached.add(cache_key)
        return {
            "id": f"msg_fake{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": answer.text}],
            "stop_reason": answer.stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(len(record.sent_text)) - read - created,
                "cache_creation_input_tokens": created,
                "cache_read_input_tokens": read,
                "output_tokens": _tokens(len(answer.text)),
            },
        }


def _invalid(body: dict[str, Any]) -> str | None:
    """What the real API would reject in this body (the checks our requests depend on)."""
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            return f"{key}: Field required"
    for key in SAMPLING_PARAMETERS:
        if key in body:  # API version 2026-10-21 took sampling parameters away
            return f"{key}: Extra inputs are not permitted"
    messages = body["messages"]
    if not messages:
        return "messages: at least one message is required"
    if messages[0]["role"] != "user":
        return "messages: first message must use the user role"
    for before, after in itertools.pairwise(messages):
        if before["role"] == after["role"]:
            return "messages: roles must alternate between user and assistant"
    if messages[-1]["role"] != "user":
        return "messages: the last message must be the user's (no prefill in these tests)"
    system = body.get("system", [])
    blocks = [system] if isinstance(system, str) else system
    for block in blocks:
        if isinstance(block, dict):
            control = block.get("cache_control")
            if control is not None and control.get("type") != "ephemeral":
                return "system.cache_control.type: must be 'ephemeral'"
    return None


def _cache_prefix(model: str, blocks: list[dict[str, Any]]) -> tuple[int, str | None]:
    """The characters and identity of the system prefix ending at the last cache mark."""
    marked = [i for i, block in enumerate(blocks) if block.get("cache_control")]
    if not marked:
        return 0, None
    prefix = blocks[: marked[-1] + 1]
    texts = [block["text"] for block in prefix]
    return sum(map(len, texts)), json.dumps([model, texts])


def _tokens(chars: int) -> int:
    return max(1, chars // 4)


def _error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return web.json_response(
        body, status=status, headers={"request-id": "req_fake", **(headers or {})}
    )
