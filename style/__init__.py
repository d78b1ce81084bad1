"""Chat exports -> typed messages, privacy scrubbing, and the measured style of one person.

Light dependencies only: everything here runs without the ML stack.
"""

from style.errors import ExportError, NotAChatError, StyleError, UnsafeArchiveError
from style.messages import Chat, Media, MediaType, Message, MessageKind

__all__ = [
    "Chat",
    "ExportError",
    "Media",
    "MediaType",
    "Message",
    "MessageKind",
    "NotAChatError",
    "StyleError",
    "UnsafeArchiveError",
]
