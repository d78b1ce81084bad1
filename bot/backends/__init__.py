"""Persona backends: one module per way of writing the persona's reply."""

from bot.backends.base import Backend, ChatTurn, Prompt, Reply
from bot.backends.retrieval import RetrievalBackend

__all__ = ["Backend", "ChatTurn", "Prompt", "Reply", "RetrievalBackend"]
