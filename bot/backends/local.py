"""The local backend: an open chat model, with the persona's LoRA adapter, on this machine.

The prompt is built exactly like a training sample (docs/dataset.md): the persona card as
the system message, then alternating user/assistant turns starting with a user turn, the
bubbles of a turn joined by a blank line, and `CONVERSATION_START` first when the persona
opened the conversation. Older turns are dropped (from the front, a user turn always
first) until the prompt fits `max_prompt_tokens`.

Generation runs in one dedicated worker thread, so the bot's event loop keeps serving other
chats while torch works (it releases the GIL). Requests that arrive together, from any
chat, are collected for up to `batch_window_ms` (or until `max_batch` wait) and generated
in one left-padded `generate` call; each caller gets its own reply.

`strength` (0 "inspired by" .. 1 "exact replication") scales the adapter's LoRA update:
`min_scale + (1 - min_scale) * strength`, so strength 1 is the adapter as trained and
strength 0 keeps `min_scale` (0.3) of it; a batch is split by scale, as one `generate`
call runs at one scale. A full model or the untuned base has no adapter to scale.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.backends.base import Prompt, Reply
from bot.bubbles import split_bubbles
from bot.errors import BackendError, BackendUnavailable
from training.dataset.conversations import fold
from training.dataset.persona_card import time_of_day as time_of_day_line
from training.dataset.samples import BUBBLE_SEPARATOR, CONVERSATION_START
from training.registry import BackendKind

if TYPE_CHECKING:
    from style.profile import Profile
    from training.registry import ModelVersion

__all__ = [
    "END_OF_TURN_TOKENS",
    "MAX_PROMPT_TOKENS",
    "MIN_SCALE",
    "Generation",
    "LocalBackend",
    "LocalModel",
    "LocalModelError",
    "ModelSource",
    "SamplingSettings",
    "adapter_scale",
    "local_base",
    "local_from_version",
]

logger = logging.getLogger(__name__)

MAX_PROMPT_TOKENS = 1024
"""The prompt's token budget: the dataset's default sample budget, so the model sees about
as much history as it was trained with."""
MIN_SCALE = 0.3
"""The adapter's scale at strength 0: enough of the persona to be "inspired by" her."""
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")
"""End-of-turn tokens of common chat templates; generation stops at any the tokenizer has,
besides its eos token and the token the template itself writes after a reply."""
NEEDS_TRAIN_EXTRA = "the local backend needs the ML stack; install wa-persona[train]"
FOUR_BIT_NEEDS_CUDA = (
    "4-bit loading needs an NVIDIA GPU with CUDA and bitsandbytes "
    "(pip install 'wa-persona[gpu]'); turn load_in_4bit off to load the model unquantized"
)
_TEMPLATE_PROBE = "wa-persona-end-of-turn-probe"


class LocalModelError(BackendError):
    """The local model cannot be set up as asked (wrong kind, missing files, no CUDA)."""


@dataclass(frozen=True, slots=True)
class SamplingSettings:
    """How one persona's replies are sampled; temperature 0 means greedy (deterministic).

    Args:
        temperature: softmax temperature; 0 picks the likeliest token every time.
        top_p: nucleus sampling mass (1 turns it off).
        top_k: sample among the k likeliest tokens (0 turns it off).
        repetition_penalty: above 1 discourages repeats; 1 (off) keeps "hahaha" and "sooo".
        max_new_tokens: the runaway guard: a reply is cut after this many tokens.
        seed: seeds torch's generator when the model loads, so a run of replies repeats.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.0
    max_new_tokens: int = 200
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise LocalModelError(f"temperature must be 0 or more, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise LocalModelError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.top_k < 0:
            raise LocalModelError(f"top_k must be 0 or more, not {self.top_k}")
        if self.repetition_penalty <= 0:
            raise LocalModelError(
                f"repetition_penalty must be above 0, not {self.repetition_penalty}"
            )
        if self.max_new_tokens < 1:
            raise LocalModelError(f"max_new_tokens must be 1 or more, not {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        """Whether replies are decoded greedily (temperature 0)."""
        return self.temperature == 0

    def generate_kwargs(self) -> dict[str, Any]:
        """The `generate` keyword arguments for these settings."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.greedy:
            return {**kwargs, "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        return {
            **kwargs,
            "do_sample": True,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Which weights to load, and how.

    Args:
        base_model: a hub id or a local folder (a full fine-tuned model's folder too).
        adapter: the LoRA adapter folder, or None for the model alone.
        name: how replies name the model (the registry version, else `base_model`).
        load_in_4bit: quantize the base with bitsandbytes NF4 (needs CUDA).
        allow_download: fetch a hub id that is not cached; off, only local files are read.
        device: "cuda" or "cpu"; None picks CUDA when available.
    """

    base_model: str
    adapter: Path | None = None
    name: str | None = None
    load_in_4bit: bool = False
    allow_download: bool = False
    device: str | None = None

    @property
    def label(self) -> str:
        """The model's name in replies and messages."""
        return self.name or self.base_model

    def check(self) -> None:
        """Refuse, before anything loads, what cannot work here: no ML stack, 4-bit on CPU."""
        needed = ("torch", "transformers", "peft") if self.adapter else ("torch", "transformers")
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            raise LocalModelError(f"{', '.join(missing)} not installed: {NEEDS_TRAIN_EXTRA}")
        if self.adapter is not None and not (self.adapter / "adapter_config.json").is_file():
            raise LocalModelError(
                f"{self.adapter}: no adapter_config.json, so this is not a PEFT adapter folder; "
                "register the run's adapter/ folder"
            )
        if self.load_in_4bit:
            import torch

            cuda = torch.cuda.is_available() and self.device in (None, "cuda")
            if not cuda or importlib.util.find_spec("bitsandbytes") is None:
                raise LocalModelError(FOUR_BIT_NEEDS_CUDA)


@dataclass(frozen=True, slots=True)
class Generation:
    """One generated reply: its text, how many tokens it took, whether it ended by itself."""

    text: str
    new_tokens: int
    finished: bool  # an end-of-turn token came; False means max_new_tokens cut it


def adapter_scale(strength: float, min_scale: float = MIN_SCALE) -> float:
    """The adapter's scale for a style strength: `min_scale` at 0, 1 at 1 (two decimals)."""
    strength = min(1.0, max(0.0, strength))
    return round(min_scale + (1.0 - min_scale) * strength, 2)


class LocalModel:
    """A loaded causal LM (with its adapter, if any) and its tokenizer, ready to generate.

    Not thread-safe: the backend calls it from its one worker thread only.
    """

    def __init__(self, model: Any, tokenizer: Any, source: ModelSource) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.stop_ids = _stop_ids(tokenizer, model)
        self.has_adapter = source.adapter is not None

    @classmethod
    def load(cls, source: ModelSource) -> LocalModel:
        """Load the base (quantized or in the device's best dtype), the adapter and tokenizer.

        Raises:
            LocalModelError: the source cannot work here (see `ModelSource.check`).
            BackendUnavailable: the weights cannot be loaded (missing, not cached, no memory).
        """
        source.check()
        import torch
        from safetensors import SafetensorError
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        device = source.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = _dtype(torch, device)
        kwargs: dict[str, Any] = {"local_files_only": not source.allow_download}
        try:
            tokenizer = AutoTokenizer.from_pretrained(_tokenizer_source(source), **kwargs)
            if source.load_in_4bit:
                kwargs["quantization_config"] = _four_bit(torch, dtype)
                kwargs["device_map"] = {"": 0}
            model = AutoModelForCausalLM.from_pretrained(source.base_model, dtype=dtype, **kwargs)
            if not source.load_in_4bit:
                model.to(device)
            if source.adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(
                    model, str(source.adapter), local_files_only=not source.allow_download
                )
        except (OSError, ValueError, RuntimeError, ImportError, KeyError, SafetensorError) as exc:
            _free_memory()
            raise BackendUnavailable(_load_failure(source, exc)) from exc
        model.eval()
        tokenizer.padding_side = "left"  # batched prompts end where generation starts
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        if tokenizer.pad_token is None:
            raise LocalModelError(
                f"{source.base_model}: the tokenizer has no pad, eos or unk token to pad with"
            )
        if not tokenizer.chat_template:
            raise LocalModelError(
                f"{source.base_model}: the tokenizer has no chat template; use the chat model "
                "the adapter was trained on"
            )
        logger.info(
            "local model %s loaded in %.1fs on %s (%s%s)",
            source.label,
            time.perf_counter() - started,
            device,
            str(dtype).removeprefix("torch."),
            ", 4-bit" if source.load_in_4bit else "",
        )
        return cls(model, tokenizer, source)

    @property
    def device(self) -> Any:
        """Where the model's inputs go."""
        return self.model.device

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text: the chat template over `messages`, then the assistant's header."""
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )

    def count_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """Tokens of the rendered prompt."""
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def fit(self, messages: Sequence[dict[str, str]], max_tokens: int) -> list[dict[str, str]]:
        """`messages` with the oldest turns dropped until the prompt fits `max_tokens`.

        The system message and the last user turn always stay; the kept turns start with a
        user turn. Binary search: fewer turns never take more tokens.
        """
        system, turns = messages[0], list(messages[1:])
        starts = [i for i, turn in enumerate(turns) if turn["role"] == "user"]
        if self.count_tokens([system, *turns]) <= max_tokens:
            return [system, *turns]
        low, high = 1, len(starts) - 1  # the last user turn stays even if it alone is too long
        while low < high:
            middle = (low + high) // 2
            if self.count_tokens([system, *turns[starts[middle] :]]) <= max_tokens:
                high = middle
            else:
                low = middle + 1
        return [system, *turns[starts[high] :]]

    @contextmanager
    def scaled(self, scale: float) -> Iterator[None]:
        """Inside, the adapter's LoRA update is multiplied by `scale` (no-op without one)."""
        if not self.has_adapter or scale == 1.0:
            yield
            return
        from peft.helpers import rescale_adapter_scale

        with rescale_adapter_scale(self.model, scale):
            yield

    def generate(
        self,
        conversations: Sequence[Sequence[dict[str, str]]],
        sampling: SamplingSettings,
        *,
        scale: float = 1.0,
        max_prompt_tokens: int = MAX_PROMPT_TOKENS,
    ) -> list[Generation]:
        """One reply per conversation, generated together in one left-padded batch."""
        import torch

        texts = [self.render(self.fit(messages, max_prompt_tokens)) for messages in conversations]
        encoded = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.device)
        with torch.inference_mode(), self.scaled(scale):
            output = self.model.generate(
                **encoded,
                **sampling.generate_kwargs(),
                eos_token_id=list(self.stop_ids),
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = output[:, encoded["input_ids"].shape[1] :].tolist()
        return [self._decoded(row) for row in new]

    def _decoded(self, row: list[int]) -> Generation:
        end = next((i for i, token in enumerate(row) if token in self.stop_ids), None)
        tokens = row if end is None else row[:end]
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        return Generation(text=text, new_tokens=len(tokens), finished=end is not None)


@dataclass(slots=True)
class _Request:
    """One caller's conversation waiting for a batch, and where its reply goes."""

    messages: list[dict[str, str]]
    scale: float
    future: asyncio.Future[Generation]
    arrived: float


@dataclass(slots=True)
class _Queue:
    """Requests waiting for the worker, and the task that feeds them to it."""

    pending: list[_Request] = field(default_factory=list)
    running: list[_Request] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class LocalBackend:
    """Writes the persona's reply with a model on this machine (loaded on first use).

    Args:
        source: the weights to load.
        card: the persona card, exactly the dataset's system prompt.
        profile: lets `split_bubbles` split a one-piece answer the way the persona does.
        sampling: this persona's sampling settings.
        time_of_day: add the "It is Tuesday evening." line, as datasets built with it have.
        max_prompt_tokens: the prompt's token budget; older turns are dropped to fit.
        min_scale: the adapter's scale at strength 0.
        batch_window_ms: how long the first request of a batch waits for others.
        max_batch: the most requests generated in one call.
        rng: draws bubble counts (seed it in tests).
    """

    name = "local"

    def __init__(
        self,
        source: ModelSource,
        card: str,
        *,
        profile: Profile | None = None,
        sampling: SamplingSettings | None = None,
        time_of_day: bool = False,
        max_prompt_tokens: int = MAX_PROMPT_TOKENS,
        min_scale: float = MIN_SCALE,
        batch_window_ms: float = 20.0,
        max_batch: int = 8,
        rng: random.Random | None = None,
    ) -> None:
        if max_batch < 1 or batch_window_ms < 0:
            raise LocalModelError(
                f"need max_batch >= 1 and batch_window_ms >= 0, not {max_batch}, {batch_window_ms}"
            )
        if not 0 <= min_scale <= 1:
            raise LocalModelError(f"min_scale must be in [0, 1], not {min_scale}")
        source.check()
        self.source = source
        self.card = card
        self.profile = profile
        self.sampling = sampling or SamplingSettings()
        self.time_of_day = time_of_day
        self.max_prompt_tokens = max_prompt_tokens
        self.min_scale = min_scale
        self.batch_window_ms = batch_window_ms
        self.max_batch = max_batch
        self._rng = rng or random.Random(self.sampling.seed)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-model")
        self._model: LocalModel | None = None
        self._queue = _Queue()
        self._closed = False

    @property
    def model(self) -> LocalModel | None:
        """The loaded model, or None before the first request (or after an unload)."""
        return self._model

    async def load(self) -> LocalModel:
        """Load the model now (in the worker), so the first reply does not wait for it."""
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._loaded)

    async def reply(self, prompt: Prompt) -> Reply:
        """The persona's next turn, generated in a batch with whatever else is waiting."""
        self._check_open()
        messages = self.messages(prompt)
        loop = asyncio.get_running_loop()
        scale = adapter_scale(prompt.strength, self.min_scale) if self.source.adapter else 1.0
        request = _Request(messages, scale, loop.create_future(), loop.time())
        started = time.perf_counter()
        queue = self._queue
        queue.pending.append(request)
        if len(queue.pending) >= self.max_batch:
            queue.full.set()
        if queue.task is None:
            queue.task = asyncio.create_task(self._feed())
        generation = await request.future
        latency = time.perf_counter() - started
        if not generation.text:
            raise BackendUnavailable(
                f"the local model {self.source.label} wrote nothing (only special tokens or "
                "whitespace); the next backend answers"
            )
        bubbles = split_bubbles(generation.text, self.profile, rng=self._rng)
        return Reply(bubbles=bubbles, backend=self.name, model=self.source.label, latency_s=latency)

    def messages(self, prompt: Prompt) -> list[dict[str, str]]:
        """The chat `messages`, shaped like a training sample (before any token trimming)."""
        history = prompt.history
        if not history or history[-1].role != "user":
            raise BackendError("a prompt's history must end with the user's turn to answer")
        system = self.card
        if self.time_of_day:
            system = f"{self.card}\n{time_of_day_line(prompt.now)}"
        turns: list[dict[str, str]] = []
        for turn in history:
            bubbles = [bubble for bubble in map(fold, turn.bubbles) if bubble]
            if not bubbles:
                continue
            content = BUBBLE_SEPARATOR.join(bubbles)
            if turns and turns[-1]["role"] == turn.role:
                turns[-1]["content"] += BUBBLE_SEPARATOR + content
            else:
                turns.append({"role": turn.role, "content": content})
        if not turns or turns[-1]["role"] != "user":
            raise BackendError("the user's turn to answer has no text; nothing to reply to")
        if turns[0]["role"] == "assistant":
            turns.insert(0, {"role": "user", "content": CONVERSATION_START})
        return [{"role": "system", "content": system}, *turns]

    async def aclose(self) -> None:
        """Stop the worker, fail what still waits, and free the model's memory."""
        if self._closed:
            return
        self._closed = True
        queue = self._queue
        if queue.task is not None:
            queue.task.cancel()
        for request in (*queue.pending, *queue.running):
            if not request.future.done():
                request.future.set_exception(BackendUnavailable("the local backend was closed"))
        queue.pending.clear()
        # The thread may be inside generate(); wait for it before dropping the model.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        self._unload()

    def _check_open(self) -> None:
        if self._closed:
            raise BackendUnavailable("the local backend was closed")

    async def _feed(self) -> None:
        """Collect a batch, generate it in the worker, repeat while requests wait."""
        queue = self._queue
        try:
            while queue.pending:
                await self._collect()
                batch = [request for request in queue.pending if not request.future.done()]
                batch = batch[: self.max_batch]
                taken = {id(request) for request in batch}
                queue.pending = [
                    request
                    for request in queue.pending
                    if id(request) not in taken and not request.future.done()
                ]
                if len(queue.pending) < self.max_batch:
                    queue.full.clear()
                queue.running = batch
                await self._generate(batch)
                queue.running = []
        finally:
            queue.task = None

    async def _collect(self) -> None:
        """Wait until `max_batch` requests wait or the oldest has waited the batch window."""
        queue = self._queue
        loop = asyncio.get_running_loop()
        remaining = queue.pending[0].arrived + self.batch_window_ms / 1000 - loop.time()
        if len(queue.pending) >= self.max_batch or remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                await queue.full.wait()
        except TimeoutError:
            return

    async def _generate(self, batch: list[_Request]) -> None:
        """Generate `batch` in the worker, one call per adapter scale; answer each caller."""
        loop = asyncio.get_running_loop()
        groups: dict[float, list[_Request]] = {}
        for request in batch:
            groups.setdefault(request.scale, []).append(request)
        for scale, group in groups.items():
            conversations = [request.messages for request in group]
            try:
                results = await loop.run_in_executor(
                    self._executor, self._generate_now, conversations, scale
                )
            except Exception as exc:  # handed to each caller, who raises it
                for request in group:
                    if not request.future.done():
                        request.future.set_exception(exc)
            else:
                for request, result in zip(group, results, strict=True):
                    if not request.future.done():
                        request.future.set_result(result)

    def _generate_now(
        self, conversations: list[list[dict[str, str]]], scale: float
    ) -> list[Generation]:
        """In the worker: generate one batch; out of memory unloads the model."""
        import torch

        model = self._loaded()
        started = time.perf_counter()
        try:
            results = model.generate(
                conversations,
                self.sampling,
                scale=scale,
                max_prompt_tokens=self.max_prompt_tokens,
            )
        except (torch.OutOfMemoryError, MemoryError) as exc:
            self._unload()
            raise BackendUnavailable(
                f"out of memory generating {len(conversations)} replies with {self.source.label}; "
                "the model is unloaded and loads again on the next request (lower max_batch or "
                "max_prompt_tokens, or set load_in_4bit)"
            ) from exc
        cut = sum(not result.finished for result in results)
        logger.debug(
            "local %s: batch of %d at scale %.2f in %.2fs, %d new tokens, %d cut at %d",
            self.source.label,
            len(results),
            scale,
            time.perf_counter() - started,
            sum(result.new_tokens for result in results),
            cut,
            self.sampling.max_new_tokens,
        )
        if cut:
            logger.info(
                "local %s: %d replies hit max_new_tokens (%d) and were cut",
                self.source.label,
                cut,
                self.sampling.max_new_tokens,
            )
        return results

    def _loaded(self) -> LocalModel:
        """In the worker: the model, loaded (and the sampler seeded) on first use."""
        if self._model is None:
            self._model = LocalModel.load(self.source)
            if self.sampling.seed is not None:
                import torch

                torch.manual_seed(self.sampling.seed)
        return self._model

    def _unload(self) -> None:
        if self._model is not None:
            self._model = None
            logger.info("local model %s unloaded", self.source.label)
        _free_memory()


def local_from_version(
    version: ModelVersion,
    card: str,
    *,
    profile: Profile | None = None,
    sampling: SamplingSettings | None = None,
    load_in_4bit: bool = False,
    allow_download: bool = False,
    device: str | None = None,
    time_of_day: bool = False,
) -> LocalBackend:
    """The backend for a registered local version: an adapter on its base, or a full model.

    Raises:
        LocalModelError: the version is not local, its folder is gone, it names no base model,
            or 4-bit was asked for without CUDA.
    """
    if version.kind not in (BackendKind.LOCAL_ADAPTER, BackendKind.LOCAL_MODEL):
        raise LocalModelError(
            f"{version.version} is a {version.kind.value} model, not a local one; "
            "use its own backend"
        )
    if not version.path or not Path(version.path).is_dir():
        raise LocalModelError(
            f"{version.version}: its folder {version.path} is missing; re-import it with "
            "`wa-persona models import` or activate another version"
        )
    folder = Path(version.path)
    if version.kind is BackendKind.LOCAL_MODEL:
        base, adapter = str(folder), None
    else:
        base, adapter = version.base_model or _adapter_base(folder), folder
        if not base:
            raise LocalModelError(
                f"{version.version}: no base model recorded or named in adapter_config.json; "
                "re-import it with --base-model"
            )
    source = ModelSource(
        base,
        adapter=adapter,
        name=version.version,
        load_in_4bit=load_in_4bit,
        allow_download=allow_download,
        device=device,
    )
    return LocalBackend(source, card, profile=profile, sampling=sampling, time_of_day=time_of_day)


def local_base(
    base_model: str,
    card: str,
    *,
    profile: Profile | None = None,
    sampling: SamplingSettings | None = None,
    load_in_4bit: bool = False,
    allow_download: bool = False,
    device: str | None = None,
    time_of_day: bool = False,
) -> LocalBackend:
    """The untuned base model answering with the persona card as its system prompt only."""
    source = ModelSource(
        base_model,
        load_in_4bit=load_in_4bit,
        allow_download=allow_download,
        device=device,
    )
    return LocalBackend(source, card, profile=profile, sampling=sampling, time_of_day=time_of_day)


def _adapter_base(folder: Path) -> str | None:
    """The base model an adapter folder's adapter_config.json names."""
    try:
        config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LocalModelError(f"{folder / 'adapter_config.json'}: unreadable ({exc})") from exc
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return base if isinstance(base, str) and base else None


def _tokenizer_source(source: ModelSource) -> str:
    """The adapter's folder when training saved the tokenizer there (its chat template
    may be the run's own), else the base model."""
    if source.adapter is not None and (source.adapter / "tokenizer_config.json").is_file():
        return str(source.adapter)
    return source.base_model


def _dtype(torch: Any, device: str) -> Any:
    """bf16 on GPUs that compute in it, fp16 on older GPUs, fp32 on the CPU."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _four_bit(torch: Any, dtype: Any) -> Any:
    """bitsandbytes NF4 with double quantization, computing in the GPU's dtype."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def _stop_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    """Every token that ends the persona's turn: eos, the template's, the common ones."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(item for item in value if isinstance(item, int))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    template_end = _template_end_token(tokenizer)
    if template_end is not None:
        ids.add(template_end)
    return frozenset(ids)


def _template_end_token(tokenizer: Any) -> int | None:
    """The special token the chat template writes right after an assistant reply, if any."""
    from jinja2 import TemplateError

    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": _TEMPLATE_PROBE},
    ]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except (TemplateError, ValueError, TypeError, KeyError):
        return None
    if not isinstance(text, str) or _TEMPLATE_PROBE not in text:
        return None
    after = text.split(_TEMPLATE_PROBE, 1)[1]
    ids = tokenizer(after, add_special_tokens=False)["input_ids"]
    if ids and ids[0] in set(tokenizer.all_special_ids):
        return int(ids[0])
    return None


def _load_failure(source: ModelSource, exc: BaseException) -> str:
    """What went wrong loading `source`, and what to do about it."""
    what = f"{source.base_model}" + (f" with adapter {source.adapter}" if source.adapter else "")
    hint = (
        "; downloads are off, so a hub id must already be in the Hugging Face cache"
        if not source.allow_download
        else ""
    )
    return f"could not load the local model {what} ({type(exc).__name__}: {exc}){hint}"


def _free_memory() -> None:
    """Hand freed GPU memory back to the driver, so another model (or a reload) fits.

    Without CUDA, reference counting frees the weights as soon as the model is dropped.
    """
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    if torch.cuda.is_available():
        gc.collect()  # tensors held only by reference cycles (tracebacks) go first
        torch.cuda.empty_cache()
