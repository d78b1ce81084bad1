"""A local fake of the WhatsApp Cloud API (Graph) on 127.0.0.1, for `bot.whatsapp.GraphClient`.

`FakeGraph` answers the three calls the transport makes, the way graph.facebook.com does:

- `POST /{version}/{phone_number_id}/messages` — texts, interactive buttons and lists, and
  read receipts (with `typing_indicator`); bodies are checked against the Cloud API's rules
  (`messaging_product`, a recipient, WhatsApp's length and count limits) and refused with
  Graph's error body (HTTP 400, code 100) when they break one; sends answer with
  `{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}`, receipts with
  `{"success": true}`. `fail_next(status, code)` scripts errors (429/130429 rate limits...).
- `GET /{version}/{media_id}` — media metadata (`url`, `mime_type`, `sha256`, `file_size` as
  a string, as Graph sends it) for files added with `add_media`.
- `GET /whatsapp_business/attachments/?mid=...` — the download URL handed out above, which,
  like Meta's, needs the bearer token; `declared_size` lets a file lie about its size.

Every request needs `Authorization: Bearer <token>` (else 401, code 190) and is recorded.

    async with FakeGraph() as graph:
        client = GraphClient(token=TOKEN, phone_number_id=PHONE_NUMBER_ID,
                             base_url=graph.base_url)
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

__all__ = ["PHONE_NUMBER_ID", "TOKEN", "FakeGraph", "RecordedRequest"]

TOKEN = "EAAG-fake-graph-token"
PHONE_NUMBER_ID = "106540352242922"
VERSION = r"{version:v\d+\.\d+}"
DOWNLOAD_PATH = "/whatsapp_business/attachments/"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: method, path, query, headers (as sent) and JSON body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None


@dataclass(frozen=True)
class _Media:
    data: bytes
    mime_type: str
    declared_size: int


@dataclass(frozen=True)
class _Failure:
    status: int
    code: int
    message: str
    error_type: str
    headers: dict[str, str] = field(default_factory=dict)


class FakeGraph(LocalServer):
    """The fake server; start it with `async with`, add media, script errors, read requests."""

    def __init__(self, *, token: str = TOKEN, phone_number_id: str = PHONE_NUMBER_ID) -> None:
        self.token = token
        self.phone_number_id = phone_number_id
        self.requests: list[RecordedRequest] = []
        self._accepted: list[dict[str, Any]] = []
        self._media: dict[str, _Media] = {}
        self._failures: deque[_Failure] = deque()
        self._ids = itertools.count(1)
        super().__init__()

    @property
    def base_url(self) -> str:
        """What to pass as `GraphClient(base_url=...)`."""
        return self.origin

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Bodies of every accepted `POST .../messages` (sends and read receipts), in order."""
        return list(self._accepted)

    @property
    def downloads(self) -> list[RecordedRequest]:
        """Every request to a media download URL."""
        return [r for r in self.requests if r.path == DOWNLOAD_PATH]

    def add_media(
        self,
        media_id: str,
        data: bytes,
        *,
        mime_type: str = "application/zip",
        declared_size: int | None = None,
    ) -> None:
        """Serve `data` as media `media_id`; `declared_size` overrides the size metadata says."""
        size = len(data) if declared_size is None else declared_size
        self._media[media_id] = _Media(data, mime_type, size)

    def fail_next(
        self,
        status: int,
        code: int,
        message: str = "",
        *,
        times: int = 1,
        error_type: str = "OAuthException",
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `times` message requests with a Graph error."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        failure = _Failure(
            status, code, message or f"(#{code}) scripted error", error_type, headers
        )
        self._failures.extend([failure] * times)

    def routes(self) -> list[web.RouteDef]:
        """Sends and receipts, media metadata and media downloads."""
        return [
            web.post(f"/{VERSION}/{{phone_number_id}}/messages", self._messages),
            web.get(DOWNLOAD_PATH, self._download),
            web.get(f"/{VERSION}/{{media_id}}", self._media_info),
        ]

    async def _record(self, request: web.Request) -> RecordedRequest:
        body: Any = None
        if request.can_read_body:
            raw = await request.text()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        recorded = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        self.requests.append(recorded)
        return recorded

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _messages(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        if not self._authorized(request):
            return _unauthorized()
        if request.match_info["phone_number_id"] != self.phone_number_id:
            return _error(400, 100, "Unsupported post request. Object does not exist")
        if self._failures:
            failure = self._failures.popleft()
            return _error(
                failure.status, failure.code, failure.message, failure.error_type, failure.headers
            )
        body = recorded.body
        problem = _message_problem(body) if isinstance(body, dict) else "body must be JSON"
        if problem:
            return _error(400, 100, f"(#100) Invalid parameter: {problem}")
        self._accepted.append(body)
        if "status" in body:
            return web.json_response({"success": True})
        to = body.get("to") or body.get("recipient")
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.fake{next(self._ids)}"}],
            }
        )

    async def _media_info(self, request: web.Request) -> web.Response:
        await self._record(request)
        if not self._authorized(request):
            return _unauthorized()
        media_id = request.match_info["media_id"]
        media = self._media.get(media_id)
        if media is None:
            return _error(
                400,
                100,
                f"Unsupported get request. Object with ID '{media_id}' does not exist",
                "GraphMethodException",
            )
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.base_url}{DOWNLOAD_PATH}?mid={media_id}&ext=1700000000&hash=x",
                "mime_type": media.mime_type,
                "sha256": hashlib.sha256(media.data).hexdigest(),
                "file_size": str(media.declared_size),
                "id": media_id,
            }
        )

    async def _download(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        if not self._authorized(request):
            return web.Response(status=401, text="unauthorized")
        media = self._media.get(request.query.get("mid", ""))
        if media is None:
            return web.Response(status=404, text="not found")
        response = web.StreamResponse(headers={"Content-Type": media.mime_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(media.data), 16 * 1024):
            await response.write(media.data[start : start + 16 * 1024])
        await response.write_eof()
        return response


def _message_problem(body: dict[str, Any]) -> str | None:
    """What the Cloud API would refuse in a messages request, or None."""
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be 'whatsapp'"
    if "status" in body:
        if body["status"] != "read" or not isinstance(body.get("message_id"), str):
            return "a status update needs status 'read' and a message_id"
        indicator = body.get("typing_indicator")
        if indicator is not None and indicator != {"type": "text"}:
            return "typing_indicator.type must be 'text'"
        return None
    if not (body.get("to") or body.get("recipient")):
        return "to or recipient is required"
    if body.get("type") == "text":
        text = body.get("text") or {}
        if not text.get("body"):
            return "text['body'] is required"
        if len(text["body"]) > 4096:
            return "text['body'] must be at most 4096 characters long"
        return None
    if body.get("type") == "interactive":
        return _interactive_problem(body.get("interactive") or {})
    return f"message type {body.get('type')!r} is not supported by this fake"


def _interactive_problem(interactive: dict[str, Any]) -> str | None:
    text = (interactive.get("body") or {}).get("text") or ""
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        buttons = action.get("buttons") or []
        replies = [button.get("reply") or {} for button in buttons]
        if not text or len(text) > 1024:
            return "body text is required and at most 1024 characters"
        if not 1 <= len(buttons) <= 3:
            return "between 1 and 3 buttons are allowed"
        if any(not 1 <= len(reply.get("title", "")) <= 20 for reply in replies):
            return "button titles must be 1 to 20 characters"
        if any(not 1 <= len(reply.get("id", "")) <= 256 for reply in replies):
            return "button ids must be 1 to 256 characters"
        if len({reply["id"] for reply in replies}) != len(replies):
            return "button ids must be unique"
        return None
    if interactive.get("type") == "list":
        rows = [row for section in action.get("sections") or [] for row in section["rows"]]
        if not text or len(text) > 4096:
            return "body text is required and at most 4096 characters"
        if not 1 <= len(action.get("button", "")) <= 20:
            return "the list button label must be 1 to 20 characters"
        if not 1 <= len(rows) <= 10:
            return "between 1 and 10 rows are allowed"
        if any(not 1 <= len(row.get("title", "")) <= 24 for row in rows):
            return "row titles must be 1 to 24 characters"
        if any(not 1 <= len(row.get("id", "")) <= 200 for row in rows):
            return "row ids must be 1 to 200 characters"
        return None
    return f"interactive type {interactive.get('type')!r} is not supported by this fake"


def _error(
    status: int,
    code: int,
    message: str,
    error_type: str = "OAuthException",
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "code": code, "fbtrace_id": "Afake"}}
    return web.json_response(body, status=status, headers=headers)


def _unauthorized() -> web.Response:
    return _error(401, 190, "Invalid OAuth access token - Cannot parse access token")
