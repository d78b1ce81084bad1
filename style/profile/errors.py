"""What can go wrong building or reading a profile."""

from __future__ import annotations

from style.errors import StyleError


class UnknownPersonaError(StyleError):
    """The persona wrote nothing in the given chats; the message lists who did."""

    def __init__(self, persona: str, participants: dict[str, int]) -> None:
        self.persona = persona
        self.participants = participants
        listed = ", ".join(f"{name!r} ({count:,} messages)" for name, count in participants.items())
        hint = ""
        lowered = {name.casefold(): name for name in participants}
        if persona.casefold() in lowered:
            hint = f" Did you mean {lowered[persona.casefold()]!r}?"
        super().__init__(
            f"persona {persona!r} wrote no messages in these chats; "
            f"participants: {listed or 'none'}.{hint} Pass one of them as the persona."
        )


class ProfileFormatError(StyleError):
    """A profile JSON file is malformed or was written by another profile version."""


class ProfileWarning(UserWarning):
    """The profile was built but a measure is unreliable (too few messages, coarse clock...)."""
