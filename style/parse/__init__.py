"""Chat exports in, typed messages out: WhatsApp .txt/.zip in every dialect, Telegram JSON."""

from style.parse.export import (
    ChatStream,
    ExportLimits,
    iter_chats,
    iter_messages,
    load_chat,
    load_chats,
    participants,
)
from style.parse.telegram_json import parse_telegram_export
from style.parse.whatsapp import Dialect, ParseStats, choose_order, detect_dialect, parse_whatsapp

__all__ = [
    "ChatStream",
    "Dialect",
    "ExportLimits",
    "ParseStats",
    "choose_order",
    "detect_dialect",
    "iter_chats",
    "iter_messages",
    "load_chat",
    "load_chats",
    "parse_telegram_export",
    "parse_whatsapp",
    "participants",
]
