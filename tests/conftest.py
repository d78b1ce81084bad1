"""Shared test fixtures: the async backend, where the peer fixtures live, and parsing text."""

from __future__ import annotations

from pathlib import Path

import pytest

from style.messages import Message
from style.parse import detect_dialect, parse_whatsapp

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PEERS = SHARED / "fixtures" / "whatsapp-peers"


def parse_text(text: str) -> list[Message]:
    """Parse a WhatsApp export given as one string, the way load_chat does for files."""
    return list(parse_whatsapp(text, detect_dialect(text)))


@pytest.fixture
def peers() -> Path:
    """The peer parsers' fixtures (whatstk, chat-miner), shipped beside the project."""
    if not PEERS.is_dir():
        pytest.fail(f"peer fixtures missing: expected {PEERS}")
    return PEERS


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio, as the bot does."""
    return "asyncio"
