""".env.example lists every setting once, with its description, its real default, no secrets."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
ASSIGNMENT = re.compile(r"^# (WA_PERSONA_[A-Z0-9_]+)=(.*)$")
FIELDS = Settings.model_fields


def variable(field: str) -> str:
    return f"WA_PERSONA_{field.upper()}"


def entries() -> dict[str, tuple[str, str]]:
    """Each variable: (the value shown, the comment lines right above it joined)."""
    found: dict[str, tuple[str, str]] = {}
    comment: list[str] = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            assert match.group(1) not in found, f"{match.group(1)} is listed twice"
            found[match.group(1)] = (match.group(2), " ".join(comment))
            comment = []
        elif line.startswith("# ") and not line.startswith("# ==="):
            comment.append(line[2:].strip())
        else:
            comment = []
    return found


def test_every_setting_is_listed_and_nothing_else() -> None:
    listed = set(entries())
    expected = {variable(name) for name in FIELDS}
    assert expected - listed == set(), "add these to .env.example (with their descriptions)"
    assert listed - expected == set(), "these are no settings (any more)"


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_each_setting_carries_its_description(field: str) -> None:
    described = " ".join((FIELDS[field].description or "").split())
    assert described, f"bot/settings.py: give {field} a description"
    assert described in entries()[variable(field)][1]


def test_secrets_are_left_empty() -> None:
    secret = [name for name, field in FIELDS.items() if "SecretStr" in str(field.annotation)]
    assert "telegram_token" in secret and "whatsapp_app_secret" in secret
    assert {name: entries()[variable(name)][0] for name in secret} == dict.fromkeys(secret, "")
    assert all(
        not isinstance(getattr(Settings(_env_file=None), name), SecretStr)  # type: ignore[call-arg]
        for name in secret
    )  # unset by default, so an empty line above is never a real default


def test_the_values_shown_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WA_PERSONA_"):
            monkeypatch.delenv(name)
    shown = {name: value for name, (value, _) in entries().items() if value}
    env = tmp_path / ".env"
    env.write_text("".join(f"{name}={value}\n" for name, value in shown.items()), "utf-8")

    loaded = Settings(_env_file=env)  # type: ignore[call-arg]
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert len(shown) > 30
    for field in FIELDS:
        if variable(field) in shown:
            assert getattr(loaded, field) == getattr(default, field), field
