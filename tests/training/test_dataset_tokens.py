"""Counting tokens: the model's own tokenizer when it is on disk, else the byte estimate."""

from __future__ import annotations

import sys
import types

import pytest

from training.dataset.tokens import (
    MESSAGE_OVERHEAD,
    EstimatedCounter,
    TokenizerCounter,
    load_token_counter,
)


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
