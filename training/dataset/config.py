"""The dataset build settings: one typed dataclass with help text, loadable from YAML/JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from training.errors import DatasetError

MediaHandling = Literal["placeholder", "drop"]
SpeakerNames = Literal["group", "always", "never"]
Dedupe = Literal["near", "exact", "off"]
Windows = Literal["chunk", "sliding"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "media": ("placeholder", "drop"),
    "deleted": ("placeholder", "drop"),
    "speaker_names": ("group", "always", "never"),
    "dedupe": ("near", "exact", "off"),
    "windows": ("chunk", "sliding"),
    "scrub_mode": ("redact", "pseudonymize", "drop"),
}


@dataclass(slots=True)
class DatasetConfig:
    """How chats become training samples (`build_dataset`); see docs/dataset.md."""

    # --- conversations and turns ---------------------------------------------------------
    gap_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Silence (minutes) that starts a new conversation; default: the gap the "
            "persona's profile chose from the data."
        },
    )
    media: MediaHandling = field(
        default="placeholder",
        metadata={
            "help": "Media messages: 'placeholder' writes '[photo]', '[voice message]'... "
            "(plus the caption), 'drop' leaves them out."
        },
    )
    deleted: MediaHandling = field(
        default="drop",
        metadata={
            "help": "Deleted messages: 'placeholder' writes '[deleted]', 'drop' leaves them out."
        },
    )
    speaker_names: SpeakerNames = field(
        default="group",
        metadata={
            "help": "Prefix other people's bubbles with their name ('Sam: ...'): in 'group' "
            "chats only, 'always' or 'never'."
        },
    )
    # --- samples -------------------------------------------------------------------------
    max_tokens: int = field(
        default=1024,
        metadata={
            "help": "Token budget of one sample (system prompt and turns); older turns are "
            "left out to fit."
        },
    )
    windows: Windows = field(
        default="chunk",
        metadata={
            "help": "'chunk': a sample is a stretch of a conversation that fits the budget, "
            "every kept persona turn in it trained (each persona turn is trained once); "
            "'sliding': one sample per persona turn, with as much context as fits."
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "Model id or folder whose tokenizer counts tokens (local files only); "
            "default: an estimate from UTF-8 bytes."
        },
    )
    # --- system prompt -------------------------------------------------------------------
    card_template: str | None = field(
        default=None,
        metadata={
            "help": "Persona card template with {name}, {description}, {case}, "
            "{punctuation}, {length}, {bursts}, {emoji}, {words}, {laughter}, {languages}; "
            "default: training.dataset.persona_card.DEFAULT_TEMPLATE."
        },
    )
    card_extra: str | None = field(
        default=None, metadata={"help": "Text appended to the persona card."}
    )
    time_of_day: bool = field(
        default=False,
        metadata={
            "help": "End the system prompt with the weekday and part of day of the reply "
            "('It is Tuesday evening.'); the bot must then say the same at reply time."
        },
    )
    # --- split ---------------------------------------------------------------------------
    eval_share: float = field(
        default=0.1,
        metadata={
            "help": "Share of conversations held out for evaluation: the latest ones by start "
            "time (at least one when there are two or more); 0 holds out nothing."
        },
    )
    # --- quality filters -----------------------------------------------------------------
    dedupe: Dedupe = field(
        default="near",
        metadata={
            "help": "Remove samples whose reply and last user turn repeat an earlier one: "
            "'exact' text, 'near' (also case, punctuation, stretched letters, laughs), 'off'."
        },
    )
    max_bubble_chars: int = field(
        default=1000,
        metadata={
            "help": "A reply with a longer bubble is a paste or forward and is not trained on."
        },
    )
    long_bubble_factor: float = field(
        default=3.0,
        metadata={
            "help": "Also not trained on: replies with a bubble longer than this many times "
            "the persona's 99th-percentile message length (0 turns this off)."
        },
    )
    drop_url_only: bool = field(
        default=True,
        metadata={"help": "Do not train on replies that are nothing but links."},
    )
    max_reply_repeats: int | None = field(
        default=20,
        metadata={
            "help": "Train on at most this many replies with the same (normalised) text, "
            "e.g. 'ok' or 'haha'; None turns the cap off."
        },
    )
    max_reply_share: float = field(
        default=0.01,
        metadata={
            "help": "Raises that cap to this share of the training replies on large datasets."
        },
    )
    max_chat_share: float | None = field(
        default=None,
        metadata={
            "help": "When several chats are combined, no chat keeps more than this share of "
            "the trained replies (the largest are thinned evenly); None keeps all."
        },
    )
    # --- small data ----------------------------------------------------------------------
    augment_contexts: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "Extra training copies of every reply with only the last N user turns "
            "as context, one per N (e.g. 1,3); marked augmented. Empty: none."
        },
    )
    # --- privacy -------------------------------------------------------------------------
    scrub_mode: str | None = field(
        default=None,
        metadata={
            "help": "Scrub personal data before turns are built: 'redact', 'pseudonymize' or "
            "'drop' (the persona's name is kept); None: no scrubbing unless a scrubber is "
            "passed."
        },
    )

    def validate(self) -> None:
        """Raise DatasetError naming the first setting that cannot work."""
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value is None and name == "scrub_mode":
                continue
            if value not in choices:
                raise DatasetError(
                    f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}"
                )
        if self.gap_minutes is not None and self.gap_minutes <= 0:
            raise DatasetError(f"gap_minutes must be positive, not {self.gap_minutes}")
        if self.max_tokens < 32:
            raise DatasetError(f"max_tokens must be at least 32, not {self.max_tokens}")
        if not 0.0 <= self.eval_share < 1.0:
            raise DatasetError(f"eval_share must be at least 0 and below 1, not {self.eval_share}")
        if self.max_bubble_chars < 1:
            raise DatasetError(f"max_bubble_chars must be positive, not {self.max_bubble_chars}")
        if self.long_bubble_factor < 0:
            raise DatasetError(
                f"long_bubble_factor must be 0 (off) or positive, not {self.long_bubble_factor}"
            )
        if self.max_reply_repeats is not None and self.max_reply_repeats < 1:
            raise DatasetError(
                f"max_reply_repeats must be at least 1 or None, not {self.max_reply_repeats}"
            )
        if not 0.0 <= self.max_reply_share <= 1.0:
            raise DatasetError(f"max_reply_share must be in 0..1, not {self.max_reply_share}")
        if self.max_chat_share is not None and not 0.0 < self.max_chat_share <= 1.0:
            raise DatasetError(
                f"max_chat_share must be in (0, 1] or None, not {self.max_chat_share}"
            )
        if any(not isinstance(n, int) or n < 1 for n in self.augment_contexts):
            raise DatasetError(
                f"augment_contexts must be positive whole numbers, not {self.augment_contexts}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["augment_contexts"] = list(self.augment_contexts)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetConfig:
        """Build from a mapping (parsed YAML or JSON); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DatasetError(
                f"unknown dataset setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values = dict(data)
        if "augment_contexts" in values:
            contexts = values["augment_contexts"]
            if isinstance(contexts, int):
                contexts = [contexts]
            values["augment_contexts"] = tuple(contexts or ())
        config = cls(**values)
        config.validate()
        return config
