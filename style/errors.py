"""Errors raised by the style package; one base class so callers can catch them all."""

from __future__ import annotations


class StyleError(Exception):
    """Base class for every error raised by `style`."""


class ExportError(StyleError):
    """A file cannot be read as a chat export (missing, too large, binary, unsafe archive...)."""

    def __init__(self, source: str, reason: str, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class NotAChatError(ExportError):
    """The file decodes as text but contains no recognisable chat messages."""


class UnsafeArchiveError(ExportError):
    """A zip export tries to escape its folder or expands to more than the limits allow."""
