"""Count tokens the way the target model will: its own tokenizer when present, else an estimate.

The dataset builder sizes every sample by a token budget. When the model's tokenizer is
available locally (`transformers` installed and the files on disk or in the Hugging Face
cache) it is used; nothing is ever downloaded. Otherwise `EstimatedCounter` stands in:

    tokens(text) = ceil(utf8_bytes(text) / 3.2) + 4 per message

Why bytes and 3.2. Published Llama-3 measurements give, in tokens per *character*: English
0.25-0.30, French/Spanish/German 0.30-0.40, Russian 0.50-0.60, Chinese 0.60-0.80, Japanese
0.70-0.90, Korean 0.80-1.00. Per character that spreads over 4x, but UTF-8 spends 1 byte on
Latin letters, 2 on Cyrillic and 3 on CJK, so per *byte* the same figures all land between
about 2.5 and 5 bytes per token (English 3.3-4, German 2.6-3.3, Russian 3.3-4, Chinese
3.8-5, Korean 3-3.8). Chat text tokenizes worse than prose (slang, "sooo", emoji: 4 bytes
and usually 1-3 tokens), so 3.2 bytes per token errs towards counting too many tokens,
which only makes samples a little shorter than the budget, never longer. Qwen-style
tokenizers pack CJK better still, so the estimate is conservative there too. These figures
come from public tokenizer comparisons, not from a tokenizer run here; pass the model's
tokenizer for exact counts.

The 4 tokens per message are the chat template's role header and end-of-turn marker (Llama 3
spends 5 on `<|start_header_id|>role<|end_header_id|>\\n\\n ... <|eot_id|>`, ChatML 5 on
`<|im_start|>role\\n ... <|im_end|>\\n`, Mistral fewer).

A sample of n messages is counted as its contents + n x `per_message` + `per_sample`: the
tokens a template adds once per chat (a BOS; Llama 3.1's "Cutting Knowledge Date: ... Today
Date: ..." header in the system message, 20-odd tokens) and what its system message's header
costs beyond the average message's. A tokenizer's figures are measured on its template; the
estimate adds 1.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

BYTES_PER_TOKEN = 3.2
"""UTF-8 bytes per token of the estimate; see the module docstring for the calibration."""

MESSAGE_OVERHEAD = 4
"""Tokens the chat template adds around every message (role header, end of turn)."""

SAMPLE_OVERHEAD = 1
"""Tokens the estimate adds once per sample: the BOS token most templates start with (Llama,
Mistral, Gemma; ChatML has none, where the estimate only leans high). A header the template
writes into the system message (Llama 3.1's dates) needs its tokenizer to be counted."""


class TokenCounter(Protocol):
    """Counts tokens of message contents; the template adds `per_message` to every message
    and `per_sample` once to every rendered chat."""

    name: str
    exact: bool
    per_message: int
    per_sample: int

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text's content alone (no template overhead)."""
        ...


class EstimatedCounter:
    """The tokenizer-free estimate: ceil(UTF-8 bytes / 3.2); `reason` says why it is used.

    `per_message` (4) and `per_sample` (1, for a BOS token) stand in for the template's own
    tokens; set them to your template's figures when you know them.
    """

    exact = False

    def __init__(
        self,
        *,
        bytes_per_token: float = BYTES_PER_TOKEN,
        per_message: int = MESSAGE_OVERHEAD,
        per_sample: int = SAMPLE_OVERHEAD,
        reason: str = "no tokenizer was given",
    ) -> None:
        if bytes_per_token <= 0:
            raise ValueError(f"bytes_per_token must be positive, not {bytes_per_token}")
        self.name = f"estimate (utf-8 bytes / {bytes_per_token:g})"
        self.per_message = per_message
        self.per_sample = per_sample
        self.reason = reason
        # ceil(b / r) == -(-b * scale // (r * scale)) in integers: no float per text
        self._num, self._den = 1000, round(bytes_per_token * 1000)

    def count(self, texts: Sequence[str]) -> list[int]:
        """Estimated tokens of each text."""
        num, den = self._num, self._den
        return [-(-len(text.encode()) * num // den) for text in texts]


class TokenizerCounter:
    """Exact counts from a Hugging Face tokenizer (anything with `__call__` -> input_ids)."""

    exact = True

    def __init__(
        self,
        tokenizer: Any,
        name: str,
        *,
        per_message: int | None = None,
        per_sample: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.name = name
        self.per_message = template_overhead(tokenizer) if per_message is None else per_message
        if per_sample is None:
            per_sample = template_sample_overhead(tokenizer, self.per_message)
        self.per_sample = per_sample

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, special tokens left out (the template adds those)."""
        counts: list[int] = []
        for start in range(0, len(texts), 4096):  # batches keep memory flat
            batch = list(texts[start : start + 4096])
            ids = self.tokenizer(batch, add_special_tokens=False)["input_ids"]
            counts += map(len, ids)
        return counts


def template_overhead(tokenizer: Any) -> int:
    """Tokens the tokenizer's chat template adds per message, or `MESSAGE_OVERHEAD`.

    Measured as the growth of a rendered two-message chat when one more message pair is
    added, minus those messages' own tokens, halved and rounded up: a user and an assistant
    message together never cost more than two of it, so samples stay within the budget.
    """
    apply = getattr(tokenizer, "apply_chat_template", None)
    if apply is None or getattr(tokenizer, "chat_template", None) is None:
        return MESSAGE_OVERHEAD
    one = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    try:
        short = _token_ids(apply(one, tokenize=True))
        long = _token_ids(apply([*one, *one], tokenize=True))
        own = sum(len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in ("a", "b"))
    except _template_errors() as exc:  # templates that reject this shape
        logger.info("could not measure the chat template overhead: %s", exc)
        return MESSAGE_OVERHEAD
    return max(0, -(-(len(long) - len(short) - own) // 2))


def template_sample_overhead(tokenizer: Any, per_message: int) -> int:
    """Tokens the tokenizer's chat template adds once per chat, or `SAMPLE_OVERHEAD`.

    Measured on a rendered [system, user, assistant] chat: its length minus the three
    contents' own tokens and 3 x `per_message`, at least 0. That holds the BOS, any header the
    template writes into the system message and what the system role costs beyond
    `per_message`, so a sample counted as contents + `per_message` each + this is its rendered
    length (or a little more, where `per_message` was rounded up). A template that rejects a
    system message (or this shape) adds 0: the builder's samples cannot be rendered with it.
    """
    apply = getattr(tokenizer, "apply_chat_template", None)
    if apply is None or getattr(tokenizer, "chat_template", None) is None:
        return SAMPLE_OVERHEAD
    contents = ("a", "b", "c")
    chat = [
        {"role": role, "content": content}
        for role, content in zip(("system", "user", "assistant"), contents, strict=True)
    ]
    try:
        rendered = _token_ids(apply(chat, tokenize=True))
        own = sum(len(tokenizer(x, add_special_tokens=False)["input_ids"]) for x in contents)
    except _template_errors() as exc:  # e.g. "System role not supported"
        logger.info("could not measure the chat template's tokens per sample: %s", exc)
        return 0
    return max(0, len(rendered) - own - 3 * per_message)


def _template_errors() -> tuple[type[Exception], ...]:
    """What rendering a chat the template rejects raises: jinja2's `TemplateError` from the
    template's `raise_exception(...)`, or a plain error from the tokenizer's own checks."""
    try:
        from jinja2 import TemplateError
    except ImportError:  # no jinja2: transformers cannot render templates either
        return (ValueError, TypeError, KeyError)
    return (ValueError, TypeError, KeyError, TemplateError)


def _token_ids(rendered: Any) -> Sequence[int]:
    """The ids `apply_chat_template(..., tokenize=True)` gave: transformers 5 returns a
    `BatchEncoding` (a mapping, whose `len` is its number of keys), earlier versions a list."""
    ids: Sequence[int] = rendered["input_ids"] if isinstance(rendered, Mapping) else rendered
    return ids


def load_token_counter(model: str | Path | None) -> TokenCounter:
    """The model's tokenizer when it is available locally, else `EstimatedCounter`.

    `model` is a Hugging Face model id (looked up in the local cache only) or a local
    folder. transformers is imported here, lazily; when it is missing, or the tokenizer is
    not on disk, the estimate is used and its `reason` (also logged) says why.
    """
    if model is None:
        return EstimatedCounter()
    try:
        from transformers import AutoTokenizer
    except ImportError:
        reason = "transformers is not installed (install wa-persona[train] for exact counts)"
        logger.warning("token counts for %s are estimated: %s", model, reason)
        return EstimatedCounter(reason=reason)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model), local_files_only=True)
    except (OSError, ValueError) as exc:  # not in the cache / not a tokenizer folder
        reason = f"tokenizer {str(model)!r} is not available locally ({exc})"
        logger.warning("token counts are estimated: %s", reason)
        return EstimatedCounter(reason=reason)
    return TokenizerCounter(tokenizer, str(model))
