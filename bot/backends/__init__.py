"""Persona backends: one module per way of writing the persona's reply."""

from bot.backends.base import Backend, ChatTurn, Prompt, Reply

__all__ = ["Backend", "ChatTurn", "Prompt", "Reply"]
