"""The persona card (every sample's system prompt), written from the style profile."""

from __future__ import annotations

from datetime import datetime

import pytest

from style.parse import load_chats
from style.profile import Profile, build_profile
from style.sample import sample_paths
from training.dataset.persona_card import PARTS, card_fields, persona_card, time_of_day
from training.errors import DatasetError


@pytest.fixture(scope="module")
def maya() -> Profile:
    chats = [c for path in sample_paths() for c in load_chats(path)]
    return build_profile(chats, "Maya")


@pytest.fixture(scope="module")
def sam() -> Profile:
    chats = [c for path in sample_paths() for c in load_chats(path)]
    return build_profile(chats, "Sam")


def test_card_names_the_persona(maya):
    assert persona_card(maya).startswith("You are Maya, texting friends on WhatsApp.")


def test_card_describes_how_maya_writes(maya):
    card = persona_card(maya)
    assert "You write in lowercase." in card
    assert "rarely end a message with a full stop" in card
    assert "typically 4 words (18 characters)" in card
    assert "several messages in a row (usually 2, up to 3)" in card
    assert "separate them with a blank line" in card
    assert "favourites: 😂 🥹 ✨ 💀 🙈" in card
    assert "u, im, ok, sooo, omg" in card
    assert '"hahah", "hahaha", "lmaooo" and "😂"' in card
    assert card.endswith("You write in English.")


def test_card_describes_a_tidy_writer_differently(sam):
    card = persona_card(sam)
    assert "You start messages with a capital letter." in card
    assert "You end most messages with a full stop." in card


def test_card_leaves_out_names_of_people(sam):
    assert "maya" in card_fields(sam)["words"]
    assert "maya" not in card_fields(sam, avoid=["Maya Okafor"])["words"]


def test_card_stays_short(maya):
    assert len(persona_card(maya)) < 700


def test_template_places_the_parts(maya):
    card = persona_card(maya, template="Name: {name}. {emoji}")
    assert card.startswith("Name: Maya. You put emoji in many messages")


def test_template_fields_are_documented(maya):
    assert set(card_fields(maya)) == {"name", "description", *PARTS}


def test_extra_text_is_appended(maya):
    assert persona_card(maya, extra="You live in Leeds.").endswith("English. You live in Leeds.")


def test_unknown_template_field_is_a_dataset_error(maya):
    with pytest.raises(DatasetError, match="unknown field 'mood'"):
        persona_card(maya, template="{mood}")


@pytest.mark.parametrize(
    ("ts", "line"),
    [
        (datetime(2024, 3, 5, 19, 30), "It is Tuesday evening."),
        (datetime(2024, 3, 9, 8, 0), "It is Saturday morning."),
        (datetime(2024, 3, 10, 12, 0), "It is Sunday afternoon."),
        (datetime(2024, 3, 11, 2, 15), "It is Monday night."),
    ],
)
def test_time_of_day(ts, line):
    assert time_of_day(ts) == line
