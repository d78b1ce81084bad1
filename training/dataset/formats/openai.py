"""OpenAI fine-tuning JSONL: chat `messages` with `weight` 0/1 on every assistant message.

The format and the checks follow OpenAI's fine-tuning guide and its cookbook notebook "Data
preparation and analysis for chat model fine-tuning": one JSON object per line, each with a
`messages` list; roles system/user/assistant/tool; content present; no keys OpenAI does not
know; at least one assistant message; `weight` only on assistant messages and only 0 or 1; an
example no longer than the model's training context (65,536 tokens for gpt-4o-mini and the
gpt-4.1 family); at least 10 examples in a training file.

OpenAI is winding down self-serve fine-tuning (announced 7 May 2026; see
`training.dataset.estimate.OPENAI_WIND_DOWN_NOTE`). The file stays useful: it is plain chat
JSONL with loss weights, which Axolotl can read with `message_field_training: weight`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from training.dataset.samples import Turn


class BatchTokenCounter(Protocol):
    """Counts many texts at once, like `training.dataset.tokens.TokenCounter`.

    It may also carry `per_message` (the chat template's tokens per message) and `name`.
    """

    def count(self, texts: Sequence[str]) -> list[int]: ...


TokenCounter = Callable[[str], int] | BatchTokenCounter
"""`rough_token_count`, any `str -> int` function (`lambda s: len(enc.encode(s))` with tiktoken),
or a batch counter such as `training.dataset.tokens.load_token_counter(model)`."""

TRAIN_FILE = "openai_train.jsonl"
EVAL_FILE = "openai_eval.jsonl"

MAX_TOKENS_PER_EXAMPLE = 65_536
"""OpenAI's per-example training limit for gpt-4o-mini and gpt-4.1(-mini/-nano); older models
had 16,385 or 4,096. Pass the limit of the model you train."""

MIN_EXAMPLES = 10
"""OpenAI refuses a training file with fewer examples."""

TOKENS_PER_MESSAGE = 3
"""Chat-format overhead per message (role and separators), as OpenAI's cookbook counts it."""

ROLES = frozenset({"system", "user", "assistant", "tool"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
)
EXAMPLE_KEYS = frozenset({"messages", "tools", "parallel_tool_calls", "functions"})


class _Absent:
    """Marks a message without `weight`."""


_ABSENT = _Absent()
_PLAIN_PAIRS = frozenset({*((role, _ABSENT) for role in ROLES), ("assistant", 0), ("assistant", 1)})
_PLAIN_WEIGHT_TYPES = frozenset({int, _Absent})
_decode = json.JSONDecoder().raw_decode
_skip_space = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]

_USER = b'{"role":"user","content":'
_ASSISTANT = b'{"role":"assistant","content":'
_TRAINED = b',"weight":1}'
_CONTEXT = b',"weight":0}'


def rough_token_count(text: str) -> int:
    """ceil(UTF-8 bytes / 3.2): the builder's tokenizer-free estimate, leaning high for chat.

    The same figure as `training.dataset.tokens.EstimatedCounter` (whose docstring has the
    calibration); pass a real tokenizer's counter where the numbers matter.
    """
    return -(-len(text.encode("utf-8")) * 10 // 32)


def count_texts(counter: TokenCounter, texts: Sequence[str]) -> list[int]:
    """The token count of each text, with a `str -> int` function or a batch counter."""
    if counter is rough_token_count:  # inlined: this runs for every message of a build
        return [-(-len(text.encode("utf-8")) * 10 // 32) for text in texts]
    batch = getattr(counter, "count", None)
    if batch is not None:
        return list(batch(texts))
    return [counter(text) for text in texts]  # type: ignore[operator]


def per_message_tokens(counter: TokenCounter, default: int) -> int:
    """The counter's own template overhead per message when it has one, else `default`."""
    value = getattr(counter, "per_message", None)
    return value if isinstance(value, int) else default


def counter_name(counter: TokenCounter) -> str:
    """How the counts were made, for the dataset card and the estimate table."""
    if counter is rough_token_count:
        return "estimate (utf-8 bytes / 3.2)"
    name = getattr(counter, "name", None) or getattr(counter, "__qualname__", None)
    return str(name) if name else type(counter).__name__


def openai_message(turn: Turn, content: bytes) -> bytes:
    """One turn's message, `weight` 0/1 on assistant turns from `Turn.train`.

    `content` is the turn's JSON-encoded text, as UTF-8. A line is assembled as in
    `hf.hf_line`: the two formats differ only in the weights.
    """
    if turn.role == "user":
        return _USER + content + b"}"
    return _ASSISTANT + content + (_TRAINED if turn.train else _CONTEXT)


def validate_openai_jsonl(
    path: Path,
    *,
    max_tokens_per_example: int = MAX_TOKENS_PER_EXAMPLE,
    token_counter: TokenCounter = rough_token_count,
    min_examples: int = MIN_EXAMPLES,
    tokens_per_message: int | None = None,
) -> list[str]:
    """Check a file against OpenAI's published fine-tuning rules; return the problems found.

    Each problem reads `line N: what is wrong [code]`, with the cookbook's error codes where it
    has one. An empty list means OpenAI should accept the file. Token counts are only as exact
    as `token_counter`; `tokens_per_message` defaults to the counter's own `per_message`, else
    `TOKENS_PER_MESSAGE`. A line shorter in bytes than the limit is not counted: no tokenizer
    makes more tokens of a text than its UTF-8 bytes plus one.
    """
    if tokens_per_message is None:
        tokens_per_message = per_message_tokens(token_counter, TOKENS_PER_MESSAGE)
    problems: list[str] = []
    examples = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            examples += 1
            found = _example_problems(
                raw, max_tokens_per_example, token_counter, tokens_per_message
            )
            if found:
                problems += [f"line {number}: {problem}" for problem in found]
    if examples < min_examples:
        problems.append(
            f"file: {examples} examples; OpenAI needs at least {min_examples} [too_few_examples]"
        )
    return problems


def _example_problems(
    raw: bytes, max_tokens: int, token_counter: TokenCounter, tokens_per_message: int
) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ["not UTF-8 [invalid_encoding]"]
    try:  # json.loads without its per-call overhead: one value, then only whitespace
        example, end = _decode(text, _skip_space(text, 0).end())
        if _skip_space(text, end).end() != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON ({exc.msg}) [invalid_json]"]
    if _plain_and_valid(example, len(raw), max_tokens, token_counter, tokens_per_message):
        return []
    if not isinstance(example, dict):
        return ["the example is not a JSON object [data_type]"]
    problems = [
        f"unrecognized example key {key!r} [example_unrecognized_key]"
        for key in example
        if key not in EXAMPLE_KEYS
    ]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("no `messages` list [missing_messages_list]")
        return problems
    texts: list[str] = []
    assistant = False
    for index, message in enumerate(messages):
        where = f"message {index}"
        if not isinstance(message, dict):
            problems.append(f"{where} is not a JSON object [message_data_type]")
            continue
        problems.extend(_message_problems(where, message))
        assistant = assistant or message.get("role") == "assistant"
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
    tokens = sum(count_texts(token_counter, texts)) + tokens_per_message * len(messages)
    if not assistant:
        problems.append("no assistant message [example_missing_assistant_message]")
    if tokens > max_tokens:
        problems.append(
            f"about {tokens:,} tokens, over the {max_tokens:,}-token limit [example_too_long]"
        )
    return problems


def _plain_and_valid(
    example: Any, size: int, max_tokens: int, token_counter: TokenCounter, per_message: int
) -> bool:
    """True when the example is plain text messages that pass every rule: what we write.

    The same rules as the checks below, done with a few C-level list and set operations per
    example instead of Python code per message; anything unusual returns False and gets the
    full check. `size` is the line's length in bytes.
    """
    if type(example) is not dict or len(example) != 1 or "messages" not in example:
        return False
    messages = example["messages"]
    if type(messages) is not list or not messages:
        return False
    try:
        roles = [m["role"] for m in messages]
        contents = [m["content"] for m in messages]
        weights = [m.get("weight", _ABSENT) for m in messages]
        count = len(messages)
        weighted = count - weights.count(_ABSENT)
        if sum(map(len, messages)) != 2 * count + weighted:  # a key besides these three
            return False
        if not set(roles) <= ROLES or "assistant" not in roles:
            return False
        if set(map(type, contents)) != {str} or "" in contents:
            return False
        if weighted and not (
            set(map(type, weights)) <= _PLAIN_WEIGHT_TYPES
            and set(zip(roles, weights, strict=True)) <= _PLAIN_PAIRS
        ):
            return False
    except (TypeError, KeyError, AttributeError):  # not dicts, unhashable values
        return False
    # Every content's UTF-8 bytes are in the line (escaped, at least as long), and no
    # tokenizer makes more tokens of a text than its bytes plus one (a leading-space marker):
    # a line that fits this bound needs no counting. The estimate has a tighter one,
    # ceil(b / 3.2) <= b / 3.2 + 1 per message.
    if size + count * (1 + per_message) <= max_tokens:
        return True
    rough = token_counter is rough_token_count
    if rough and -(-size * 10 // 32) + count * (1 + per_message) <= max_tokens:
        return True
    return sum(count_texts(token_counter, contents)) + per_message * count <= max_tokens


def _message_problems(where: str, message: dict[str, Any]) -> list[str]:
    problems = []
    if "role" not in message:
        problems.append(f"{where} has no `role` [message_missing_key]")
    calls = message.get("tool_calls") or message.get("function_call")
    if "content" not in message and not calls:
        problems.append(f"{where} has no `content` [message_missing_key]")
    problems.extend(
        f"{where} has unrecognized key {key!r} [message_unrecognized_key]"
        for key in message
        if key not in MESSAGE_KEYS
    )
    role = message.get("role")
    if "role" in message and role not in ROLES:
        problems.append(f"{where} has unrecognized role {role!r} [unrecognized_role]")
    content = message.get("content")
    if "content" in message and not calls and (not isinstance(content, str) or not content):
        problems.append(f"{where} has empty or non-text content [missing_content]")
    if "weight" in message:
        weight = message["weight"]
        if role != "assistant":
            problems.append(f"{where}: `weight` is only allowed on assistant messages [weight]")
        elif type(weight) is not int or weight not in (0, 1):
            problems.append(f"{where}: `weight` must be 0 or 1, not {weight!r} [weight]")
    return problems
