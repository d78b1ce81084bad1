"""The local backend on a real tiny Llama (transformers) with a real LoRA adapter (peft)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.backends.base import ChatTurn, Prompt
from bot.backends.fallback import FallbackChain
from bot.backends.local import (
    MIN_SCALE,
    LocalBackend,
    LocalModel,
    LocalModelError,
    ModelSource,
    SamplingSettings,
    adapter_scale,
    local_base,
    local_from_version,
)
from bot.bubbles import split_bubbles
from bot.errors import BackendError, BackendUnavailable
from tests.training.tiny_model import tiny_dataset_dir, tiny_model_dir
from training.chat_tokens import loss_spans, tokenize_chat
from training.dataset.samples import CONVERSATION_START
from training.registry import BackendKind, ModelVersion, Registry, import_model

pytest.importorskip("peft")

__all__ = ["tiny_dataset_dir", "tiny_model_dir"]  # fixtures, imported to be found

pytestmark = pytest.mark.anyio

NOW = datetime(2024, 3, 12, 21, 0, tzinfo=UTC)
CARD = "You are Maya, texting friends on WhatsApp. You write in lowercase."
GREEDY = SamplingSettings(temperature=0, max_new_tokens=12)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A LoRA adapter on the tiny model with random (not zero) B matrices, so it matters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    folder = tmp_path_factory.mktemp("adapter")
    get_peft_model(model, config).save_pretrained(folder)
    return folder


REPLY_TO_LEARN = [
    {"role": "system", "content": CARD},
    {"role": "user", "content": "pizza tonight?"},
    {"role": "assistant", "content": "yesss 🍕\n\nwhat time"},
]


@pytest.fixture(scope="module")
def stopping_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A LoRA adapter trained (100 steps, the trainer's own loss mask) on one reply, so the
    model learns to write it and end its turn."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    ids, labels = tokenize_chat(tokenizer, REPLY_TO_LEARN, [2])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    # lm_head too: the random model's logits are too flat for the other layers alone to
    # make one reply clearly the likeliest.
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "lm_head"]
    config = LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    inputs, targets = torch.tensor([ids]), torch.tensor([labels])
    for _ in range(100):
        loss = model(input_ids=inputs, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    folder = tmp_path_factory.mktemp("stopping-adapter")
    model.save_pretrained(folder, save_embedding_layers=False)
    return folder


@pytest.fixture
def stopping_adapter(tmp_path: Path, stopping_adapter_dir: Path) -> ModelVersion:
    registry = Registry.open(tmp_path / "wa-persona.db")
    return import_model(registry, "Maya", BackendKind.LOCAL_ADAPTER, path=stopping_adapter_dir)


@pytest.fixture
def version(tmp_path: Path, adapter_dir: Path) -> ModelVersion:
    """The adapter imported into a real registry, as `wa-persona models import` does."""
    registry = Registry.open(tmp_path / "wa-persona.db")
    return import_model(registry, "Maya", BackendKind.LOCAL_ADAPTER, path=adapter_dir)


@pytest.fixture
async def backend(version: ModelVersion) -> AsyncIterator[LocalBackend]:
    backend = local_from_version(version, CARD, sampling=GREEDY, device="cpu")
    yield backend
    await backend.aclose()


@pytest.fixture
async def base_backend(tiny_model_dir: Path) -> AsyncIterator[LocalBackend]:
    backend = local_base(str(tiny_model_dir), CARD, sampling=GREEDY, device="cpu")
    yield backend
    await backend.aclose()


@dataclass
class GenerateSpy:
    """Wraps a loaded model's real `generate`, recording each call's inputs and outputs."""

    original: Callable[..., Any]
    calls: list[dict[str, Any]] = field(default_factory=list)
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None

    def __call__(self, **kwargs: Any) -> Any:
        if self.before:
            self.before()
        output = self.original(**kwargs)
        if self.after:
            self.after()
        self.calls.append({**kwargs, "output": output})
        return output


def spy_on(model: LocalModel) -> GenerateSpy:
    spy = GenerateSpy(model.model.generate)
    model.model.generate = spy
    return spy


def prompt(*turns: tuple[str, str], strength: float = 1.0, chat: str = "c1") -> Prompt:
    """A prompt from ("them" | "me", "bubble | bubble") pairs."""
    history = tuple(
        ChatTurn("user" if who == "them" else "assistant", tuple(text.split(" | ")), NOW)
        for who, text in turns
    )
    return Prompt(persona="Maya", chat_id=chat, history=history, now=NOW, strength=strength)


PROMPTS = [
    prompt(("them", "pizza tonight?")),
    prompt(("them", "how was the dentist | did it hurt")),
    prompt(("me", "omg"), ("them", "what"), ("me", "nothing hahah"), ("them", "tell me")),
    prompt(("them", "wanna watch a movie later or are u busy with the thing from work")),
]


# --- the prompt looks exactly like training ------------------------------------------------


def dataset_samples(folder: Path, count: int) -> list[list[dict[str, str]]]:
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["messages"] for line in lines[:count]]


def as_prompt(messages: list[dict[str, str]]) -> Prompt:
    """The live chat a training sample's context stands for (bubbles split again)."""
    history = tuple(
        ChatTurn(m["role"], tuple(m["content"].split("\n\n")), NOW)  # type: ignore[arg-type]
        for m in messages[1:]
        if m["content"] != CONVERSATION_START
    )
    return Prompt(persona="Maya", chat_id="c1", history=history, now=NOW)


async def test_prompt_is_the_training_sample_up_to_the_reply(
    tiny_dataset_dir: Path, version: ModelVersion
) -> None:
    samples = dataset_samples(tiny_dataset_dir, 40)
    assert any(s[1]["content"] == CONVERSATION_START for s in samples)  # persona-started ones
    assert any("\n\n" in m["content"] for s in samples for m in s if m["role"] == "user")
    card = samples[0][0]["content"]
    backend = local_from_version(version, card, sampling=GREEDY, device="cpu")
    model = await backend.load()
    try:
        for messages in samples:
            context = messages[:-1]
            if len(context) == 2 and context[1]["content"] == CONVERSATION_START:
                continue  # the persona opens: no user turn to answer
            assert backend.messages(as_prompt(context)) == context
            # The trainer's own loss spans: the reply starts right where our prompt ends.
            trained_text, spans = loss_spans(model.tokenizer, messages, [len(messages) - 1])
            assert model.render(context) == trained_text[: spans[-1][0]]
    finally:
        await backend.aclose()


async def test_messages_merge_same_role_turns_and_open_a_persona_started_chat(
    backend: LocalBackend,
) -> None:
    turns = (("me", "heyy | u up"), ("them", "yes"), ("them", "why\n\n\nwhat happened"))
    assert backend.messages(prompt(*turns)) == [
        {"role": "system", "content": CARD},
        {"role": "user", "content": CONVERSATION_START},
        {"role": "assistant", "content": "heyy\n\nu up"},
        {"role": "user", "content": "yes\n\nwhy\nwhat happened"},
    ]


async def test_time_of_day_line_follows_the_card_as_in_datasets_built_with_it(
    tiny_model_dir: Path,
) -> None:
    backend = local_base(str(tiny_model_dir), CARD, device="cpu", time_of_day=True)
    try:
        system = backend.messages(prompt(("them", "hi")))[0]["content"]
    finally:
        await backend.aclose()
    assert system == f"{CARD}\nIt is Tuesday evening."


async def test_history_must_end_with_the_users_turn(backend: LocalBackend) -> None:
    with pytest.raises(BackendError, match="must end with the user's turn"):
        await backend.reply(prompt(("them", "hi"), ("me", "hey")))


async def test_long_history_is_trimmed_from_the_front_starting_with_a_user_turn(
    backend: LocalBackend,
) -> None:
    model = await backend.load()
    turns = [("them" if i % 2 else "me", f"message number {i} about pizza") for i in range(40)]
    turns.append(("them", "so?"))
    messages = backend.messages(prompt(*turns))
    full = model.count_tokens(messages)
    kept = model.fit(messages, full // 3)
    assert model.count_tokens(kept) <= full // 3
    assert kept[0] == messages[0] and kept[1]["role"] == "user"
    assert kept[-1] == messages[-1]
    assert kept[1:] == messages[-(len(kept) - 1) :]
    # one more turn would not have fitted
    assert model.count_tokens([messages[0], *messages[-(len(kept) + 1) :]]) > full // 3


# --- generation -----------------------------------------------------------------------------


async def test_greedy_replies_are_deterministic_and_name_the_version(
    backend: LocalBackend, version: ModelVersion
) -> None:
    first = await backend.reply(PROMPTS[1])
    second = await backend.reply(PROMPTS[1])
    assert first.bubbles and first.bubbles == second.bubbles
    assert (first.backend, first.model) == ("local", version.version)
    assert first.latency_s > 0


async def test_concurrent_requests_share_one_generate_call_and_match_unbatched(
    backend: LocalBackend,
) -> None:
    import torch

    model = await backend.load()
    spy = spy_on(model)
    replies = await asyncio.gather(*(backend.reply(p) for p in PROMPTS))

    assert len(spy.calls) == 1
    call = spy.calls[0]
    assert call["input_ids"].shape[0] == len(PROMPTS)
    assert call["attention_mask"][:, 0].tolist().count(0) >= 1  # left-padded: lengths differ
    width = call["input_ids"].shape[1]
    for row, reply in enumerate(replies):
        # The same prompt alone, through transformers directly: no padding, no batch.
        ids = call["input_ids"][row][call["attention_mask"][row] == 1].unsqueeze(0)
        with torch.inference_mode():
            alone = spy.original(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=GREEDY.max_new_tokens,
                eos_token_id=list(model.stop_ids),
                pad_token_id=model.tokenizer.pad_token_id,
            )
        batched = call["output"][row, width:].tolist()
        assert batched == alone[0, ids.shape[1] :].tolist()
        text = model.tokenizer.decode(batched, skip_special_tokens=True).strip()
        assert reply.bubbles == split_bubbles(text, None, rng=random.Random())


async def test_requests_over_max_batch_are_split_into_batches(backend: LocalBackend) -> None:
    backend.max_batch = 2
    spy = spy_on(await backend.load())
    await asyncio.gather(*(backend.reply(p) for p in PROMPTS))
    assert [call["input_ids"].shape[0] for call in spy.calls] == [2, 2]


async def test_event_loop_keeps_running_while_the_model_generates(version: ModelVersion) -> None:
    sampling = SamplingSettings(temperature=0, max_new_tokens=150)
    backend = local_from_version(version, CARD, sampling=sampling, device="cpu")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    seen: dict[str, int] = {}
    try:
        spy = spy_on(await backend.load())
        spy.before = lambda: seen.setdefault("start", ticks)
        spy.after = lambda: seen.setdefault("end", ticks)
        task = asyncio.create_task(ticker())
        await backend.reply(PROMPTS[0])
        task.cancel()
    finally:
        await backend.aclose()
    # On the loop's own thread the ticker could not run at all during generate().
    assert seen["end"] - seen["start"] >= 10


async def test_a_cancelled_caller_does_not_stop_the_others(backend: LocalBackend) -> None:
    await backend.load()
    waiting = asyncio.create_task(backend.reply(PROMPTS[0]))
    other = asyncio.create_task(backend.reply(PROMPTS[1]))
    await asyncio.sleep(0)
    waiting.cancel()
    reply = await other
    assert reply.bubbles
    assert (await backend.reply(PROMPTS[2])).bubbles


async def test_a_deadline_miss_in_the_chain_leaves_the_backend_usable(
    backend: LocalBackend,
) -> None:
    chain = FallbackChain([backend], deadline_s=0.001, failures_to_open=5, reset_s=60)
    with pytest.raises(BackendUnavailable):
        await chain.reply(PROMPTS[0])  # the first request also loads the model: too slow
    assert (await backend.reply(PROMPTS[0])).bubbles


async def test_max_new_tokens_cuts_a_runaway_reply(
    version: ModelVersion, caplog: pytest.LogCaptureFixture
) -> None:
    sampling = SamplingSettings(temperature=0, max_new_tokens=5)
    backend = local_from_version(version, CARD, sampling=sampling, device="cpu")
    try:
        model = await backend.load()
        spy = spy_on(model)
        with caplog.at_level(logging.INFO, logger="bot.backends.local"):
            reply = await backend.reply(PROMPTS[0])
        generated = model.generate([backend.messages(PROMPTS[0])], sampling)[0]
    finally:
        await backend.aclose()
    call = spy.calls[0]
    assert call["output"].shape[1] - call["input_ids"].shape[1] == 5
    assert (generated.new_tokens, generated.finished) == (5, False)  # the tiny model never stops
    assert reply.bubbles
    assert "hit max_new_tokens (5)" in caplog.text


async def test_a_trained_reply_stops_at_the_end_of_turn_token_and_splits_into_bubbles(
    stopping_adapter: ModelVersion,
) -> None:
    backend = local_from_version(stopping_adapter, CARD, sampling=GREEDY, device="cpu")
    try:
        model = await backend.load()
        spy = spy_on(model)
        reply = await backend.reply(prompt(("them", "pizza tonight?")))
    finally:
        await backend.aclose()
    assert reply.bubbles == ("yesss 🍕", "what time")
    call = spy.calls[0]
    new = call["output"][0, call["input_ids"].shape[1] :].tolist()
    assert new[-1] == model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert len(new) < GREEDY.max_new_tokens + 8


async def test_seeded_sampling_repeats_and_differs_from_greedy(version: ModelVersion) -> None:
    sampling = SamplingSettings(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, seed=3)
    replies = []
    for _ in range(2):
        backend = local_from_version(version, CARD, sampling=sampling, device="cpu")
        try:
            replies.append([(await backend.reply(p)).bubbles for p in PROMPTS[:2]])
        finally:
            await backend.aclose()
    assert replies[0] == replies[1]
    greedy = local_from_version(version, CARD, sampling=GREEDY, device="cpu")
    try:
        assert [(await greedy.reply(p)).bubbles for p in PROMPTS[:2]] != replies[0]
    finally:
        await greedy.aclose()


def test_sampling_settings_refuse_nonsense() -> None:
    with pytest.raises(LocalModelError, match="top_p"):
        SamplingSettings(top_p=0)
    with pytest.raises(LocalModelError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=0)
    assert SamplingSettings(temperature=0).generate_kwargs()["do_sample"] is False


# --- style strength scales the adapter -------------------------------------------------------


def test_adapter_scale_runs_from_min_scale_to_one() -> None:
    assert adapter_scale(0.0) == MIN_SCALE == 0.3
    assert adapter_scale(1.0) == 1.0
    assert adapter_scale(0.5) == 0.65
    assert adapter_scale(7.0) == 1.0 and adapter_scale(-1.0) == 0.3


async def test_strength_scales_the_adapter_and_one_is_the_plain_adapter(
    backend: LocalBackend, base_backend: LocalBackend
) -> None:
    import torch

    adapted, base = await backend.load(), await base_backend.load()
    text = adapted.render(backend.messages(PROMPTS[2]))
    inputs = adapted.tokenizer([text], return_tensors="pt", add_special_tokens=False)

    def logits(model: LocalModel, scale: float | None = None) -> torch.Tensor:
        with torch.inference_mode():
            if scale is None:
                return model.model(**inputs).logits
            with model.scaled(scale):
                return model.model(**inputs).logits

    plain = logits(adapted)
    assert torch.equal(logits(adapted, 1.0), plain)
    weak = logits(adapted, adapter_scale(0.0))
    assert not torch.allclose(weak, plain, atol=1e-3)
    assert not torch.allclose(weak, logits(base), atol=1e-3)
    assert torch.allclose(logits(adapted, 0.0), logits(base), atol=1e-5)  # no LoRA update left
    assert torch.equal(logits(adapted), plain)  # the scale is restored afterwards
    assert not torch.allclose(plain, logits(base), atol=1e-3)  # the adapter matters


async def test_a_mixed_strength_batch_runs_one_call_per_scale(backend: LocalBackend) -> None:
    model = await backend.load()
    spy = spy_on(model)
    strong, weak = prompt(("them", "pizza?")), prompt(("them", "pizza?"), strength=0.0)
    replies = await asyncio.gather(backend.reply(strong), backend.reply(weak))
    assert len(spy.calls) == 2
    assert replies[0].bubbles != replies[1].bubbles
    with model.scaled(MIN_SCALE):
        direct = model.generate([backend.messages(weak)], GREEDY)[0].text
    assert replies[1].bubbles == split_bubbles(direct, None, rng=random.Random())


async def test_the_base_model_ignores_strength_and_batches_all(base_backend: LocalBackend) -> None:
    spy = spy_on(await base_backend.load())
    await asyncio.gather(
        *(base_backend.reply(p) for p in (PROMPTS[0], prompt(("them", "x"), strength=0)))
    )
    assert len(spy.calls) == 1


# --- factories, loading and failures ---------------------------------------------------------


async def test_untuned_base_answers_with_the_card_as_system_prompt(
    base_backend: LocalBackend, backend: LocalBackend, tiny_model_dir: Path
) -> None:
    reply = await base_backend.reply(PROMPTS[1])
    assert reply.bubbles and reply.model == str(tiny_model_dir)
    assert base_backend.model is not None and not base_backend.model.has_adapter
    assert reply.bubbles != (await backend.reply(PROMPTS[1])).bubbles


async def test_a_full_model_version_loads_without_an_adapter(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    registry = Registry.open(tmp_path / "wa-persona.db")
    version = import_model(registry, "Maya", BackendKind.LOCAL_MODEL, path=tiny_model_dir)
    backend = local_from_version(version, CARD, sampling=GREEDY, device="cpu")
    try:
        reply = await backend.reply(PROMPTS[0])
    finally:
        await backend.aclose()
    assert reply.model == version.version and reply.bubbles


def test_four_bit_without_cuda_is_a_clear_error(
    tiny_model_dir: Path, version: ModelVersion
) -> None:
    with pytest.raises(LocalModelError, match="4-bit loading needs an NVIDIA GPU with CUDA"):
        local_base(str(tiny_model_dir), CARD, load_in_4bit=True, device="cpu")
    with pytest.raises(LocalModelError, match="turn load_in_4bit off"):
        local_from_version(version, CARD, load_in_4bit=True, device="cpu")


def test_only_local_versions_with_their_folder_are_accepted(
    version: ModelVersion, tmp_path: Path
) -> None:
    from dataclasses import replace

    with pytest.raises(LocalModelError, match="is a openai model, not a local one"):
        local_from_version(replace(version, kind=BackendKind.OPENAI), CARD)
    with pytest.raises(LocalModelError, match="is missing"):
        local_from_version(replace(version, path=str(tmp_path / "gone")), CARD)
    with pytest.raises(LocalModelError, match="not a PEFT adapter folder"):
        local_from_version(replace(version, path=str(tmp_path)), CARD)


async def test_a_model_that_cannot_load_is_unavailable(tiny_model_dir: Path) -> None:
    backend = local_base("nobody/not-a-cached-model", CARD, device="cpu")
    try:
        with pytest.raises(BackendUnavailable, match="downloads are off"):
            await backend.reply(PROMPTS[0])
        assert backend.model is None
    finally:
        await backend.aclose()


async def test_a_corrupt_adapter_is_unavailable_and_names_the_folder(
    version: ModelVersion, adapter_dir: Path, tmp_path: Path
) -> None:
    import shutil
    from dataclasses import replace

    broken = tmp_path / "broken-adapter"
    shutil.copytree(adapter_dir, broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not safetensors")
    backend = local_from_version(replace(version, path=str(broken)), CARD, device="cpu")
    try:
        with pytest.raises(BackendUnavailable, match=f"with adapter {broken}.*SafetensorError"):
            await backend.reply(PROMPTS[0])
        assert backend.model is None
    finally:
        await backend.aclose()


async def test_empty_output_is_unavailable(backend: LocalBackend) -> None:
    import torch

    model = await backend.load()
    with torch.no_grad():  # hidden states of zero: every logit 0, so token 0 (<|pad|>) wins
        model.model.base_model.model.model.norm.weight.zero_()
    with pytest.raises(BackendUnavailable, match="wrote nothing"):
        await backend.reply(PROMPTS[0])


async def test_out_of_memory_unloads_and_the_next_request_reloads(backend: LocalBackend) -> None:
    import torch

    model = await backend.load()
    expected = await backend.reply(PROMPTS[0])

    def out_of_memory(**kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.model.generate = out_of_memory
    with pytest.raises(BackendUnavailable, match="out of memory"):
        await backend.reply(PROMPTS[0])
    assert backend.model is None
    assert (await backend.reply(PROMPTS[0])).bubbles == expected.bubbles
    assert backend.model is not None and backend.model is not model


async def test_aclose_frees_the_model_and_refuses_new_requests(version: ModelVersion) -> None:
    backend = local_from_version(version, CARD, sampling=GREEDY, device="cpu")
    model = await backend.load()
    weights = weakref.ref(model.model)
    await backend.reply(PROMPTS[0])
    del model
    await backend.aclose()
    gc.collect()
    assert backend.model is None
    assert weights() is None
    with pytest.raises(BackendUnavailable, match="closed"):
        await backend.reply(PROMPTS[0])


async def test_aclose_fails_requests_still_waiting(version: ModelVersion) -> None:
    backend = local_from_version(version, CARD, sampling=GREEDY, device="cpu")
    backend.batch_window_ms = 10_000
    waiting = asyncio.create_task(backend.reply(PROMPTS[0]))
    await asyncio.sleep(0.01)
    await backend.aclose()
    with pytest.raises(BackendUnavailable, match="closed"):
        await waiting


def test_source_without_adapter_config_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(LocalModelError, match=r"adapter_config\.json"):
        LocalBackend(ModelSource(str(tiny_model_dir), adapter=tmp_path), CARD)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not cuda_available(), reason="needs an NVIDIA GPU with CUDA")
@pytest.mark.parametrize("four_bit", [False, True])
async def test_on_a_gpu_the_model_loads_in_half_precision_or_4_bit(
    version: ModelVersion, four_bit: bool
) -> None:
    import importlib.util

    import torch

    if four_bit and importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("needs bitsandbytes (wa-persona[gpu])")
    backend = local_from_version(version, CARD, sampling=GREEDY, load_in_4bit=four_bit)
    try:
        model = await backend.load()
        generated = model.generate([backend.messages(PROMPTS[0])], GREEDY)[0]
    finally:
        await backend.aclose()
    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert model.device.type == "cuda"
    assert model.model.get_input_embeddings().weight.dtype == half
    assert generated.new_tokens == GREEDY.max_new_tokens
