"""The bot's error tree: one base, small subclasses, messages that say what to do."""

from __future__ import annotations

__all__ = ["BackendError", "BackendUnavailable", "BotError", "DownloadError", "TransportError"]


class BotError(Exception):
    """Base of every error the running service raises on purpose."""


class BackendError(BotError):
    """A persona backend could not produce a reply."""


class BackendUnavailable(BackendError):
    """The backend is down, too slow or not configured; the fallback chain tries the next."""


class TransportError(BotError):
    """A messaging platform refused a request or could not be reached."""


class DownloadError(TransportError):
    """A sent file could not be fetched: too large, gone, or the platform refused."""
