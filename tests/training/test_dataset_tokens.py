"""Counting tokens: the model's own tokenizer when it is on disk, else the byte estimate."""

from __future__ import annotations

import copy
import functools
import logging
import sys
import types

import pytest

from training.dataset.tokens import (
    MESSAGE_OVERHEAD,
    SAMPLE_OVERHEAD,
    EstimatedCounter,
    TokenizerCounter,
    load_token_counter,
)

# Llama 3.1's chat template without its tool parts: a BOS, and a date header that it writes
# into the system message of every chat.
LLAMA31_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)
LLAMA31_HEADER = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"


@functools.cache
def _trained_tokenizer():
    from tests.training.tiny_model import build_tokenizer

    return build_tokenizer()


def chatml_tokenizer():
    """The tiny model's tokenizer (a copy: trained once): ChatML, whose system role costs more
    tokens than its user and assistant roles, and nothing else added once per chat."""
    pytest.importorskip("transformers")
    return copy.deepcopy(_trained_tokenizer())


def llama31_tokenizer():
    """The tiny model's tokenizer with Llama 3.1's special tokens and (tool-less) template."""
    tokenizer = chatml_tokenizer()
    tokenizer.add_special_tokens(
        {
            "bos_token": "<|begin_of_text|>",
            "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        }
    )
    tokenizer.chat_template = LLAMA31_TEMPLATE
    return tokenizer


TEMPLATED_TOKENIZERS = {"chatml": chatml_tokenizer, "llama31": llama31_tokenizer}


def rendered_length(tokenizer, messages: list[dict[str, str]]) -> int:
    """Tokens of `messages` rendered with the tokenizer's own chat template."""
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


class FakeTokenizer:
    """Splits on spaces, like a tokenizer with one token per word."""

    chat_template = None

    def __call__(self, texts, add_special_tokens=True):
        if isinstance(texts, str):
            return {"input_ids": texts.split()}
        return {"input_ids": [text.split() for text in texts]}


def fake_transformers(monkeypatch, from_pretrained) -> list[dict]:
    calls: list[dict] = []

    class AutoTokenizer:
        @staticmethod
        def from_pretrained(name, **kwargs):
            calls.append({"name": name, **kwargs})
            return from_pretrained(name)

    module = types.ModuleType("transformers")
    module.AutoTokenizer = AutoTokenizer
    monkeypatch.setitem(sys.modules, "transformers", module)
    return calls


def test_estimate_is_utf8_bytes_over_3_2_rounded_up():
    counter = EstimatedCounter()
    assert counter.count(["hello", "😂", "привет", ""]) == [2, 2, 4, 0]
    assert counter.per_message == MESSAGE_OVERHEAD
    assert not counter.exact


def test_no_model_gives_the_estimate():
    counter = load_token_counter(None)
    assert isinstance(counter, EstimatedCounter)
    assert counter.reason == "no tokenizer was given"


def test_missing_transformers_falls_back_to_the_estimate(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import raises ImportError
    counter = load_token_counter("org/model")
    assert isinstance(counter, EstimatedCounter)
    assert "transformers is not installed" in counter.reason


def test_local_tokenizer_is_loaded_without_downloading(monkeypatch):
    calls = fake_transformers(monkeypatch, lambda name: FakeTokenizer())
    counter = load_token_counter("org/model")
    assert isinstance(counter, TokenizerCounter)
    assert counter.exact and counter.name == "org/model"
    assert calls == [{"name": "org/model", "local_files_only": True}]
    assert counter.count(["one two three", "four"]) == [3, 1]


def test_tokenizer_not_on_disk_falls_back_to_the_estimate(monkeypatch):
    def missing(name):
        raise OSError(f"{name} is not in the cache")

    fake_transformers(monkeypatch, missing)
    counter = load_token_counter("org/model")
    assert isinstance(counter, EstimatedCounter)
    assert "not available locally" in counter.reason


def test_tokenizer_without_chat_template_uses_the_default_overhead():
    assert TokenizerCounter(FakeTokenizer(), "fake").per_message == MESSAGE_OVERHEAD


def test_chat_template_overhead_is_measured():
    class Templated(FakeTokenizer):
        chat_template = "{{ messages }}"

        def apply_chat_template(self, messages, tokenize=True):
            # "<start> role content <end>" per message: 3 tokens around the content
            return [piece for m in messages for piece in ("<s>", m["role"], m["content"], "</s>")]

    assert TokenizerCounter(Templated(), "fake").per_message == 3


def test_chat_template_overhead_of_a_real_tokenizer_matches_a_direct_count():
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True)
    pytest.importorskip("transformers")
    from tests.training.tiny_model import build_tokenizer

    tokenizer = build_tokenizer()
    pair = [{"role": "user", "content": "did u see"}, {"role": "assistant", "content": "omg yes"}]
    rendered = tokenizer.apply_chat_template(pair, tokenize=True, return_dict=False)
    own = sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in pair)
    around = len(rendered) - own  # "<|im_start|>role\n" and "<|im_end|>\n" of both messages
    per_message = TokenizerCounter(tokenizer, "tiny").per_message
    assert per_message > 0
    assert per_message == -(-around // 2)


@pytest.mark.parametrize("bad", [0, -1.0])
def test_estimate_needs_a_positive_ratio(bad):
    with pytest.raises(ValueError, match="bytes_per_token"):
        EstimatedCounter(bytes_per_token=bad)


def test_estimate_counts_one_token_per_sample_for_a_bos():
    assert EstimatedCounter().per_sample == SAMPLE_OVERHEAD == 1
    assert EstimatedCounter(per_sample=0).per_sample == 0


def test_tokenizer_without_chat_template_uses_the_default_per_sample():
    assert TokenizerCounter(FakeTokenizer(), "fake").per_sample == SAMPLE_OVERHEAD


class HeaderTemplated(FakeTokenizer):
    """A BOS, then "<s> role content </s>" per message, a two-word header in the system's."""

    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize=True):
        pieces = ["<bos>"]
        for m in messages:
            header = ["today", "date"] if m["role"] == "system" else []
            pieces += ["<s>", m["role"], *header, m["content"], "</s>"]
        return pieces


def test_chat_template_per_sample_is_measured():
    counter = TokenizerCounter(HeaderTemplated(), "fake")
    assert (counter.per_message, counter.per_sample) == (3, 3)  # <bos> and the two header words


def test_per_sample_is_overridable():
    assert TokenizerCounter(HeaderTemplated(), "fake", per_sample=0).per_sample == 0


def test_template_that_rejects_a_system_message_adds_nothing_per_sample(caplog):
    tokenizer = chatml_tokenizer()  # Gemma-style: jinja2's raise_exception on a system message
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}{{ '<|im_start|>' + m['content'] + '<|im_end|>' }}{% endfor %}"
    )
    with caplog.at_level(logging.INFO, logger="training.dataset.tokens"):
        counter = TokenizerCounter(tokenizer, "no-system")
    assert (counter.per_message, counter.per_sample) == (2, 0)
    assert "System role not supported" in caplog.text


def test_template_that_rejects_the_measuring_chat_keeps_the_default_per_message(caplog):
    tokenizer = chatml_tokenizer()
    tokenizer.chat_template = "{{ raise_exception('tools only') }}"
    with caplog.at_level(logging.INFO, logger="training.dataset.tokens"):
        counter = TokenizerCounter(tokenizer, "tools-only")
    assert (counter.per_message, counter.per_sample) == (MESSAGE_OVERHEAD, 0)
    assert "tools only" in caplog.text


@pytest.mark.parametrize("template", TEMPLATED_TOKENIZERS)
def test_counted_chat_is_its_rendered_length(template):
    tokenizer = TEMPLATED_TOKENIZERS[template]()
    counter = TokenizerCounter(tokenizer, template)
    chat = [
        {"role": "system", "content": "You are Maya, texting friends."},
        {"role": "user", "content": "did u see the game"},
        {"role": "assistant", "content": "omg yes\n\nthat last goal 😭"},
    ]
    own = sum(counter.count([m["content"] for m in chat]))
    # both templates spend an even number of tokens on a user/assistant pair, so the
    # per-message average is exact and so is the whole count
    assert own + 3 * counter.per_message + counter.per_sample == rendered_length(tokenizer, chat)


def test_llama31_per_sample_holds_the_bos_and_the_system_date_header():
    tokenizer = llama31_tokenizer()
    header = len(tokenizer(LLAMA31_HEADER, add_special_tokens=False)["input_ids"])
    assert header >= 20
    assert TokenizerCounter(tokenizer, "llama31").per_sample >= 1 + header


def test_chatml_per_sample_is_what_its_system_role_costs_beyond_the_average():
    tokenizer = chatml_tokenizer()
    counter = TokenizerCounter(tokenizer, "chatml")
    system = rendered_length(tokenizer, [{"role": "system", "content": "a"}]) - 1
    assert counter.per_sample == system - counter.per_message > 0  # no BOS in ChatML
