"""A local fake of the Telegram Bot API (aiohttp), for the real python-telegram-bot.

`FakeTelegram` answers `POST /bot<token>/<method>` the way api.telegram.org does: it reads
the form-encoded or multipart parameters PTB sends (JSON-valued ones such as `reply_markup`
decoded), records every call, and answers `{"ok": true, "result": ...}` or a Bot API error.
`getUpdates` serves pushed updates once each: it honours `offset` (confirmed updates are
forgotten) and long-polls up to `timeout` seconds, answering as soon as an update is pushed.
Files registered with `add_file` are served by `getFile` and `GET /file/bot<token>/<path>`.
`fail_next(method, retry_after=1)` answers that method's next call with a 429 flood error.

    async with FakeTelegram() as server:
        app = build_application(handle, token=server.token, base_url=server.base_url,
                                base_file_url=server.base_file_url)
        server.push_update(text_message(chat_id=7, user_id=7, text="hey"))
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer

TOKEN = "123456:TEST-token_for-the-fake"
"""The bot token the fake accepts."""
BOT_USER = {
    "id": 123456,
    "is_bot": True,
    "first_name": "Maya",
    "username": "maya_persona_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
JSON_PARAMETERS = frozenset(
    {"reply_markup", "allowed_updates", "entities", "link_preview_options", "reply_parameters"}
)
"""Parameters PTB sends as JSON text inside the form."""


@dataclass(frozen=True)
class RecordedCall:
    """One Bot API call as the fake received it (`method` "file" for a file download)."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class _File:
    content: bytes | None
    file_size: int | None
    file_path: str


def _user(user_id: int, first_name: str, last_name: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name is not None:
        user["last_name"] = last_name
    return user


def message(
    *,
    chat_id: int,
    user_id: int,
    message_id: int = 1,
    date: int = 1_710_277_200,
    first_name: str = "Alex",
    last_name: str | None = None,
    chat_type: str = "private",
    **content: Any,
) -> dict[str, Any]:
    """A Bot API `Message` object from a person; `content` adds `text`, `document`..."""
    return {
        "message_id": message_id,
        "date": date,
        "chat": {"id": chat_id, "type": chat_type, "first_name": first_name},
        "from": _user(user_id, first_name, last_name),
        **content,
    }


def text_message(*, text: str, **fields: Any) -> dict[str, Any]:
    """A text `Message`; a leading "/word" is marked as a bot command, as Telegram does."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        length = len(text.split()[0])
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return message(**fields, **content)


def document_message(
    *,
    file_id: str,
    file_name: str,
    file_size: int,
    mime_type: str = "application/zip",
    caption: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A `Message` carrying a document (a chat export, usually)."""
    document = {
        "file_id": file_id,
        "file_unique_id": f"unique-{file_id}",
        "file_name": file_name,
        "mime_type": mime_type,
        "file_size": file_size,
    }
    extra = {} if caption is None else {"caption": caption}
    return message(document=document, **fields, **extra)


def callback_query(
    *,
    data: str,
    chat_id: int,
    user_id: int,
    message_id: int = 99,
    query_id: str = "cbq-1",
    first_name: str = "Alex",
) -> dict[str, Any]:
    """A `CallbackQuery`: the person pressed the inline button carrying `data`."""
    bot_message = {
        "message_id": message_id,
        "date": 1_710_277_200,
        "chat": {"id": chat_id, "type": "private", "first_name": first_name},
        "from": BOT_USER,
        "text": "pick one",
    }
    return {
        "id": query_id,
        "from": _user(user_id, first_name, None),
        "chat_instance": f"instance-{chat_id}",
        "message": bot_message,
        "data": data,
    }


class FakeTelegram(LocalServer):
    """The fake Bot API; start it with `async with`, push updates, read `calls`."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[RecordedCall] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._new_update = asyncio.Event()
        self._files: dict[str, _File] = {}
        self._failures: dict[str, list[_Failure]] = {}
        super().__init__()

    def routes(self) -> list[web.RouteDef]:
        """Bot API methods (POST or GET) and file downloads."""
        return [
            web.post("/bot{token}/{method}", self._api),
            web.get("/bot{token}/{method}", self._api),
            web.get("/file/bot{token}/{path:.+}", self._download),
        ]

    def stopping(self) -> None:
        """End a hanging long poll at once."""
        self._new_update.set()

    @property
    def base_url(self) -> str:
        """What `ApplicationBuilder.base_url` takes (the token is appended by PTB)."""
        return f"{self.origin}/bot"

    @property
    def base_file_url(self) -> str:
        """What `ApplicationBuilder.base_file_url` takes."""
        return f"{self.origin}/file/bot"

    # --- scripting -----------------------------------------------------------------------

    def push_update(self, **update: Any) -> int:
        """Queue an update for `getUpdates` (e.g. `message=...`); returns its update id."""
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **update})
        self._new_update.set()
        return update_id

    def add_file(
        self,
        file_id: str,
        content: bytes | None = None,
        *,
        file_size: int | None = None,
        local_path: Path | None = None,
    ) -> None:
        """Make `getFile` know `file_id`: served over HTTP, or (local mode) as a local path.

        `file_size` is what `getFile` reports; it defaults to the content's length.
        """
        size = file_size if file_size is not None else len(content or b"")
        path = str(local_path) if local_path is not None else f"documents/{file_id}.zip"
        self._files[file_id] = _File(content, size, path)

    def fail_next(self, method: str, *, retry_after: int = 1) -> None:
        """Answer the next call of `method` with 429 Too Many Requests (flood control)."""
        failure = _Failure(
            429,
            f"Too Many Requests: retry after {retry_after}",
            {"retry_after": retry_after},
        )
        self._failures.setdefault(method, []).append(failure)

    def refuse_next(self, method: str, status: int, description: str) -> None:
        """Answer the next call of `method` with an error (403 "Forbidden: bot was blocked")."""
        self._failures.setdefault(method, []).append(_Failure(status, description))

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every recorded call of `method`, in order."""
        return [call.params for call in self.calls if call.method == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `method` was called at least `count` times."""
        async with asyncio.timeout(timeout):
            while len(self.calls_to(method)) < count:
                await asyncio.sleep(0.01)

    # --- the server ----------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await _parameters(request)
        except ConnectionResetError:  # the client gave up mid-request (PTB stopping a poll)
            return web.Response(status=400)
        self.calls.append(RecordedCall(method, params))
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        if self._failures.get(method):
            failure = self._failures[method].pop(0)
            extra = {} if failure.parameters is None else {"parameters": failure.parameters}
            return _error(failure.status, failure.description, **extra)
        answer = getattr(self, f"_{method}", None)
        if answer is None:
            return _error(404, "Not Found: method not found")
        try:
            result = await answer(params)
        except _BadRequest as exc:
            return _error(400, f"Bad Request: {exc}")
        return web.json_response({"ok": True, "result": result})

    async def _download(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.calls.append(RecordedCall("file", {"path": path}))
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        for stored in self._files.values():
            if stored.file_path == path and stored.content is not None:
                return web.Response(body=stored.content)
        return _error(404, "Not Found")

    async def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    async def _deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    async def _setWebhook(self, params: dict[str, Any]) -> bool:
        if not params.get("url"):
            raise _BadRequest("bad webhook: an HTTPS URL must be provided for webhook")
        return True

    async def _getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        self._updates = [update for update in self._updates if update["update_id"] >= offset]
        if not self._updates:
            self._new_update.clear()
            timeout = float(params.get("timeout") or 0)
            try:
                async with asyncio.timeout(timeout):
                    await self._new_update.wait()
            except TimeoutError:
                return []
        limit = min(max(int(params.get("limit") or 100), 1), 100)  # the Bot API's 1-100
        return self._updates[:limit]

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text", "")
        if not text:
            raise _BadRequest("message text is empty")
        if len(text) > 4096:
            raise _BadRequest("message is too long")
        for row in params.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if not 1 <= len(button.get("callback_data", "").encode()) <= 64:
                    raise _BadRequest("BUTTON_DATA_INVALID")
        sent = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "from": BOT_USER,
            "text": text,
        }
        if "reply_markup" in params:
            sent["reply_markup"] = params["reply_markup"]
        return sent

    async def _sendChatAction(self, params: dict[str, Any]) -> bool:
        return True

    async def _answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    async def _getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(params.get("file_id", ""))
        if stored is None:
            raise _BadRequest("invalid file_id")
        return {
            "file_id": params["file_id"],
            "file_unique_id": f"unique-{params['file_id']}",
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }


class _BadRequest(Exception):
    """The call's parameters are wrong (answered as 400)."""


async def _parameters(request: web.Request) -> dict[str, Any]:
    """The call's parameters: query string, then form or multipart fields (JSON decoded)."""
    params: dict[str, Any] = dict(request.query)
    if request.method == "POST":
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            form = await request.post()
            params.update({key: value for key, value in form.items()})
    for key in JSON_PARAMETERS & params.keys():
        if isinstance(params[key], str):
            params[key] = json.loads(params[key])
    return params


def _error(status: int, description: str, **extra: Any) -> web.Response:
    body = {"ok": False, "error_code": status, "description": description, **extra}
    return web.json_response(body, status=status)
