"""The WhatsApp Cloud API client: send texts and questions, mark read, download media.

Every call goes to `{base_url}/{api_version}/...` with the access token as a bearer token.
Graph errors (`{"error": {"message", "code", ...}}`) become `TransportError`s naming the
code; rate limits (HTTP 429 and the throttling codes below) are retried a bounded number of
times with exponential backoff, because a throttled request was not sent. Other failures
are not retried: a message that timed out may have gone out, and sending it twice is worse.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.channels import Choice
from bot.errors import DownloadError, TransportError
from bot.whatsapp.choices import NumberedChoices, numbered_text
from bot.whatsapp.messages import (
    buttons_message,
    choice_format,
    list_message,
    read_receipt,
    split_text,
    text_message,
)

__all__ = ["RATE_LIMIT_CODES", "GraphClient", "MediaInfo"]

logger = logging.getLogger(__name__)

RATE_LIMIT_CODES = frozenset({4, 80007, 130429, 131056})
"""Graph's "too many calls", WABA rate limit, Cloud API throughput, per-user pair rate."""
HINTS = {
    190: "the access token expired or was revoked; set a new WA_PERSONA_WHATSAPP_TOKEN",
    131047: "the user's last message is more than 24 hours old; WhatsApp only allows "
    "template messages until they write again",
    131026: "the message could not be delivered; is the number on WhatsApp?",
    131030: "the number is not on the test number's allowed list in the Meta app",
}
MAX_BACKOFF_S = 30.0
DOWNLOAD_CHUNK = 64 * 1024
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=60)
"""A large export may take minutes; only a stalled connection is given up on."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What `GET /{media_id}` says about a received file; `url` is valid for minutes."""

    media_id: str
    url: str
    mime_type: str | None
    file_size: int | None
    sha256: str | None


class GraphClient:
    """One phone number's Cloud API client (`async with`, or `close()` when done).

    Args:
        base_url: Graph's root (a proxy or business solution provider's in front of it).
        max_retries: how often a rate-limited request is retried before giving up.
        backoff_s: the first retry's wait; each further one waits twice as long.
        sleep: how backoff waits (tests pass a recorder).
    """

    def __init__(
        self,
        *,
        token: str,
        phone_number_id: str,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v23.0",
        max_retries: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 30.0,
        numbered: NumberedChoices | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.phone_number_id = phone_number_id
        self.api_root = f"{base_url.rstrip('/')}/{api_version.strip('/')}"
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.numbered = numbered or NumberedChoices()
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (a later call opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send_text(self, chat_id: str, text: str) -> list[str]:
        """Send `text`, as several messages when longer than WhatsApp allows; their ids."""
        ids = []
        for piece in split_text(text):
            ids.append(await self._send(text_message(chat_id, piece), "send a message"))
        return ids

    async def send_choices(self, chat_id: str, text: str, choices: Sequence[Choice]) -> str:
        """Ask a question: reply buttons, a list, or a numbered text list (remembered).

        Returns the id of the (last) message sent.
        """
        form = choice_format(text, choices)
        if form == "numbered":
            self.numbered.ask(chat_id, choices)
            try:
                ids = await self.send_text(chat_id, numbered_text(text, choices))
            except TransportError:
                self.numbered.forget(chat_id)
                raise
            return ids[-1]
        build = buttons_message if form == "buttons" else list_message
        message_id = await self._send(build(chat_id, text, choices), "send a question")
        self.numbered.forget(chat_id)
        return message_id

    async def mark_read(self, message_id: str, *, typing: bool = True) -> None:
        """Mark a received message (and the ones before it) read, showing "typing…"."""
        await self._request(
            "POST",
            self._messages_url(),
            "mark a message read",
            json=read_receipt(message_id, typing=typing),
        )

    async def media_info(self, media_id: str) -> MediaInfo:
        """Where a received file can be downloaded, and its declared size and hash."""
        try:
            body = await self._request(
                "GET",
                f"{self.api_root}/{media_id}",
                "look up a received file",
                params={"phone_number_id": self.phone_number_id},
            )
        except TransportError as exc:
            raise DownloadError(str(exc)) from exc
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise DownloadError("WhatsApp gave no download link for it")
        size = body.get("file_size")
        return MediaInfo(
            media_id=media_id,
            url=url,
            mime_type=body.get("mime_type"),
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
            sha256=body.get("sha256"),
        )

    async def download(self, media_id: str, dest: Path, *, max_bytes: int) -> Path:
        """Save a received file as `dest`; refuses files above `max_bytes` before fetching.

        The bytes arrive in a `.part` file beside `dest`, counted as they come (the declared
        size may lie) and checked against WhatsApp's SHA-256, then renamed; on any failure
        nothing is left behind.
        """
        info = await self.media_info(media_id)
        if info.file_size is not None and info.file_size > max_bytes:
            raise DownloadError(_too_big(info.file_size, max_bytes))
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        try:
            digest = await self._fetch(info.url, part, max_bytes)
            if info.sha256 and digest != info.sha256.lower():
                raise DownloadError("it arrived damaged (its SHA-256 does not match)")
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    async def _fetch(self, url: str, part: Path, max_bytes: int) -> str:
        """Stream `url` into `part` with a running size check; the SHA-256 hex digest."""
        digest = hashlib.sha256()
        received = 0
        try:
            get = self._http().get(url, headers=self._auth(), timeout=DOWNLOAD_TIMEOUT)
            async with get as response:
                if response.status != 200:
                    raise DownloadError(f"WhatsApp refused the download (HTTP {response.status})")
                declared = response.content_length
                if declared is not None and declared > max_bytes:
                    raise DownloadError(_too_big(declared, max_bytes))
                with part.open("wb") as file:
                    async for chunk in response.content.iter_chunked(DOWNLOAD_CHUNK):
                        received += len(chunk)
                        if received > max_bytes:
                            raise DownloadError(_too_big(received, max_bytes, at_least=True))
                        digest.update(chunk)
                        file.write(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DownloadError(f"the download broke off: {exc or type(exc).__name__}") from exc
        except OSError as exc:
            raise DownloadError(f"the bot could not store it: {exc.strerror or exc}") from exc
        return digest.hexdigest()

    async def _send(self, body: dict[str, Any], action: str) -> str:
        """POST one message; the new message's id."""
        answer = await self._request("POST", self._messages_url(), action, json=body)
        messages = answer.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[0], dict):
            return str(messages[0].get("id", ""))
        return ""

    async def _request(self, method: str, url: str, action: str, **kwargs: Any) -> dict[str, Any]:
        """One Graph call with bounded retries on rate limits; the JSON answer."""
        for attempt in range(self.max_retries + 1):
            try:
                async with self._http().request(
                    method, url, headers=self._auth(), timeout=self._timeout, **kwargs
                ) as response:
                    body = await _json_body(response)
                    if response.status < 400:
                        return body
                    error = _graph_error(body)
                    limited = response.status == 429 or error.get("code") in RATE_LIMIT_CODES
                    if not limited:
                        raise TransportError(_refusal(action, response.status, error))
                    if attempt == self.max_retries:
                        raise TransportError(
                            _refusal(action, response.status, error)
                            + f"; still rate-limited after {self.max_retries} retries, "
                            "try again in a minute"
                        )
                    wait = _retry_after(response) or self.backoff_s * 2**attempt
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransportError(
                    f"WhatsApp Cloud API unreachable ({action}): {exc or type(exc).__name__}; "
                    "check the network and WA_PERSONA_WHATSAPP_GRAPH_URL"
                ) from exc
            logger.info("WhatsApp rate limit (%s); retrying in %.1f s", action, wait)
            await self._sleep(min(wait, MAX_BACKOFF_S))
        raise AssertionError("unreachable: the loop returns or raises")

    def _messages_url(self) -> str:
        return f"{self.api_root}/{self.phone_number_id}/messages"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


async def _json_body(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """The response's JSON object, or `{}` when it is not one (an HTML error page)."""
    with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
        body = await response.json(content_type=None)
        if isinstance(body, dict):
            return body
    return {}


def _graph_error(body: dict[str, Any]) -> dict[str, Any]:
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def _refusal(action: str, status: int, error: dict[str, Any]) -> str:
    """The error line: what was refused, Graph's message and code, and what to do."""
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {status}")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    text = f"WhatsApp Cloud API refused to {action}: {message}"
    if details and details not in message:
        text += f" ({details})"
    text += f" (code {code}, HTTP {status})" if code is not None else f" (HTTP {status})"
    hint = HINTS.get(code) if isinstance(code, int) else None
    return f"{text}; {hint}" if hint else text


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _too_big(size: int, max_bytes: int, *, at_least: bool = False) -> str:
    """Said to the person who sent the file (the service quotes `DownloadError`s)."""
    mib = 1024 * 1024
    limit = f"{max_bytes / mib:.1f} MB"
    if at_least:
        return f"it is more than {limit}, the most this bot takes; export the chat without media"
    return (
        f"it is {size / mib:.1f} MB and this bot takes up to {limit}; export the chat without media"
    )
