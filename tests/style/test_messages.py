"""The message records every later stage and `wa-persona parse` rely on."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from style.messages import Media, MediaType, Message, MessageKind

MESSAGES = [
    Message(datetime(2024, 3, 12, 21, 4, 5), "Maya", 'hi "you"\n\\ 😂\u200e', line=3),
    Message(datetime(2024, 3, 12, 21, 4), None, "", MessageKind.SYSTEM, notice="X added Y"),
    Message(datetime(2024, 3, 12), "Sam", "", MessageKind.MEDIA, media=Media(MediaType.IMAGE)),
    Message(datetime(2024, 3, 12), "Sam\u0001", "ok", edited=True),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_to_json_is_to_dict_as_json(message: Message) -> None:
    assert json.loads(message.to_json()) == message.to_dict()
