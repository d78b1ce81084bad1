"""Scrub messages: redact, pseudonymize or drop what `PiiDetector` finds, and count it."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from style.errors import StyleError
from style.messages import Message
from style.scrub.detect import Finding, PiiDetector, PiiKind
from style.scrub.names import clean_name, names_in_export
from style.scrub.phones import guess_region, phone_key
from style.scrub.pseudonyms import Pseudonyms

logger = logging.getLogger(__name__)


class ScrubError(StyleError):
    """A scrubber was configured with an unknown mode or region."""


class ScrubMode(StrEnum):
    """What happens to personal data: a `[TAG]`, a consistent stand-in, or no message."""

    REDACT = "redact"
    PSEUDONYMIZE = "pseudonymize"
    DROP = "drop"


@dataclass
class ScrubReport:
    """How many messages were seen, changed and dropped, and what was found: counts only."""

    mode: ScrubMode
    messages: int = 0
    changed: int = 0
    dropped: int = 0
    found: dict[PiiKind, int] = field(default_factory=lambda: dict.fromkeys(PiiKind, 0))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "mode": self.mode.value,
            "messages": self.messages,
            "changed": self.changed,
            "dropped": self.dropped,
            "found": {kind.value: count for kind, count in self.found.items()},
        }

    def to_json(self) -> str:
        """The report as one JSON object."""
        return json.dumps(self.to_dict())


class Scrubber:
    """Finds personal data in texts and messages and treats it the same way throughout.

    One Scrubber is one dataset: pseudonyms stay consistent across every message it sees,
    and `report` adds up what it found.

    Args:
        mode: "redact", "pseudonymize" or "drop".
        region: two-letter country whose national phone formats to expect (`guess_region`).
        known_names: people the export names (`names_in_export`); scrubbed in text.
        keep_names: names never scrubbed, e.g. the persona's own.
        blocklist: further words or phrases to scrub (case-insensitive, whole words).
        salt: picks the name stand-ins; the same salt gives the same ones every run.
        scrub_authors: also replace the `author` of messages whose author is not kept.
    """

    def __init__(
        self,
        mode: ScrubMode | str = ScrubMode.REDACT,
        *,
        region: str | None = None,
        known_names: Collection[str] = (),
        keep_names: Collection[str] = (),
        blocklist: Collection[str] = (),
        salt: str = "wa-persona",
        scrub_authors: bool = False,
    ) -> None:
        try:
            self.mode = ScrubMode(mode)
        except ValueError:
            raise ScrubError(
                f"unknown scrub mode {mode!r}; use redact, pseudonymize or drop"
            ) from None
        if region is not None and not (len(region) == 2 and region.isalpha()):
            raise ScrubError(f"region {region!r} is not a two-letter country code such as GB")
        self.region = region.upper() if region else None
        self.detector = PiiDetector(
            region=self.region, names=known_names, keep_names=keep_names, blocklist=blocklist
        )
        self.keep = frozenset(clean_name(name).casefold() for name in keep_names)
        self.scrub_authors = scrub_authors
        self.report = ScrubReport(self.mode)
        self._pseudonyms = Pseudonyms(salt, avoid=self.detector.names.words)

    @classmethod
    def for_messages(
        cls,
        messages: Sequence[Message],
        mode: ScrubMode | str = ScrubMode.REDACT,
        *,
        keep_names: Collection[str] = (),
        names: Collection[str] = (),
        blocklist: Collection[str] = (),
        region: str | None = None,
        salt: str = "wa-persona",
        scrub_authors: bool = False,
    ) -> Scrubber:
        """A Scrubber for one export: its names and (unless given) its region read from it.

        `names` adds people the export does not name itself (e.g. someone only mentioned).
        """
        return cls(
            mode,
            region=region or guess_region(messages),
            known_names=[*names_in_export(messages), *names],
            keep_names=keep_names,
            blocklist=blocklist,
            salt=salt,
            scrub_authors=scrub_authors,
        )

    def find(self, text: str) -> list[Finding]:
        """What this Scrubber would treat in `text`; the report is not touched."""
        return self.detector.find(text)

    def scrub_text(self, text: str) -> str | None:
        """`text` with its personal data treated; None in drop mode when any was found."""
        findings = self.detector.find(text)
        self._count(findings)
        if not findings:
            return text
        if self.mode is ScrubMode.DROP:
            return None
        return self._replace(text, findings)

    def scrub_message(self, message: Message) -> Message | None:
        """The message with text, notice, caption and media link scrubbed; None if dropped."""
        self.report.messages += 1
        changes: dict[str, Any] = {}
        for name in ("text", "notice"):
            value = getattr(message, name)
            if value:
                changes[name] = self.scrub_text(value)
        media = message.media
        if media is not None and (media.caption or media.url):
            caption = self.scrub_text(media.caption) if media.caption else media.caption
            url = self.scrub_text(media.url) if media.url else media.url
            if (media.caption and caption is None) or (media.url and url is None):
                changes["media"] = None  # drop mode found something
            else:
                changes["media"] = dataclasses.replace(media, caption=caption, url=url)
        if self.mode is ScrubMode.DROP and None in changes.values():
            self.report.dropped += 1
            return None
        author = message.author
        if self.scrub_authors and author and clean_name(author).casefold() not in self.keep:
            changes["author"] = self._author(author)
        changes = {k: v for k, v in changes.items() if v != getattr(message, k)}
        if not changes:
            return message
        self.report.changed += 1
        return dataclasses.replace(message, **changes)

    def scrub_messages(self, messages: Iterable[Message]) -> Iterator[Message]:
        """Scrub each message in turn, leaving out the dropped ones; logs counts at the end."""
        for message in messages:
            scrubbed = self.scrub_message(message)
            if scrubbed is not None:
                yield scrubbed
        logger.info("scrub report: %s", self.report.to_json())

    def _count(self, findings: list[Finding]) -> None:
        for finding in findings:
            self.report.found[finding.kind] += 1

    def _replace(self, text: str, findings: list[Finding]) -> str:
        parts = []
        last = 0
        for finding in findings:
            parts.append(text[last : finding.start])
            parts.append(self._stand_in(finding.kind, text[finding.start : finding.end]))
            last = finding.end
        parts.append(text[last:])
        return "".join(parts)

    def _stand_in(self, kind: PiiKind, value: str) -> str:
        if self.mode is ScrubMode.REDACT or kind is PiiKind.BLOCKED:
            return kind.tag
        pseudonyms = self._pseudonyms
        if kind is PiiKind.NAME:
            surnames = self.detector.names.surnames
            words = value.split()
            return " ".join(
                pseudonyms.name_word(w, surname=i > 0 or w.casefold() in surnames)
                for i, w in enumerate(words)
            )
        if kind is PiiKind.PHONE:
            return pseudonyms.phone(phone_key(value, self.region))
        if kind is PiiKind.EMAIL:
            return pseudonyms.email(value)
        if kind is PiiKind.URL:
            return pseudonyms.url(value)
        if kind is PiiKind.IBAN:
            return pseudonyms.iban("".join(c for c in value if c.isalnum()).upper())
        if kind is PiiKind.CARD:
            return pseudonyms.card("".join(c for c in value if c.isdigit()))
        address = ipaddress.ip_address(value)
        return pseudonyms.ip(address.compressed, v6=address.version == 6)

    def _author(self, author: str) -> str:
        findings = self.detector.find(author)
        if len(findings) == 1 and findings[0].kind is PiiKind.PHONE:
            kind = PiiKind.PHONE
        else:
            kind = PiiKind.NAME
        self.report.found[kind] += 1
        if self.mode is not ScrubMode.PSEUDONYMIZE:
            return kind.tag
        if kind is PiiKind.PHONE:
            return self._pseudonyms.phone(phone_key(author, self.region))
        words = clean_name(author).split() or ["someone"]
        return " ".join(self._pseudonyms.name_word(w, surname=i > 0) for i, w in enumerate(words))
