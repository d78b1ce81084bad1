"""The scrubbers the settings ask for: for training data, for an export, for live chats.

One place reads the scrub settings (mode, region, names, blocklist, salt, authors), so
`wa-persona dataset`, `wa-persona scrub`, persona building and the remote backends treat
text alike. `style.scrub` is imported only when a scrubber is made, so importing this costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings import Settings
    from style.messages import Message
    from style.scrub import Scrubber, ScrubMode

__all__ = ["export_scrubber", "live_scrubber", "training_scrubber_factory"]


def export_scrubber(
    settings: Settings,
    messages: Sequence[Message],
    *,
    keep_names: Sequence[str] = (),
    mode: ScrubMode | None = None,
) -> Scrubber:
    """A scrubber that also knows the export's own names (all but `keep_names`).

    `mode` overrides the settings' scrub mode.
    """
    return _for_messages(settings, messages, keep_names, mode, settings.pseudonym_salt())


def training_scrubber_factory(
    settings: Settings, persona: str
) -> Callable[[Sequence[Message]], Scrubber] | None:
    """Makes the training data's scrubber from an export's messages (keeping the persona's
    name), or None when `scrub_training` is off."""
    if not settings.scrub_training:
        return None
    salt = settings.pseudonym_salt()
    return lambda messages: _for_messages(settings, messages, [persona], None, salt)


def live_scrubber(settings: Settings) -> Scrubber:
    """A scrubber for live chats: phones, e-mails, links, IBANs, cards, IPs and the configured
    names and blocklist, but not an export's own names, which only `export_scrubber` knows."""
    from style.scrub import Scrubber

    return Scrubber(
        settings.scrub_mode,
        region=settings.scrub_region,
        known_names=settings.scrub_names,
        blocklist=settings.scrub_blocklist,
        salt=settings.pseudonym_salt(),
    )


def _for_messages(
    settings: Settings,
    messages: Sequence[Message],
    keep_names: Sequence[str],
    mode: ScrubMode | None,
    salt: str,
) -> Scrubber:
    from style.scrub import Scrubber

    return Scrubber.for_messages(
        messages,
        mode or settings.scrub_mode,
        keep_names=keep_names,
        names=settings.scrub_names,
        blocklist=settings.scrub_blocklist,
        region=settings.scrub_region,
        salt=salt,
        scrub_authors=settings.scrub_authors,
    )
