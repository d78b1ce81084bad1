"""One evaluation: several systems answer the same held-out turns and are measured alike.

A system is anything that writes the persona's replies (a registry version, a backend); it
is given to `generate_all` as an async callable, so this module never imports the bot. Every
system is measured against all the held-out references.

The "real replies" row is the ceiling: the person herself, measured the same way. Its style
distances compare as many of her real training replies (a seeded sample: other
conversations, the same number of turns, so the sampling noise matches) with the held-out
references; its persona share and degeneration are those of her real held-out replies (how
often the judge recognises her, how often she repeats her own training replies). Comparing
one half of the references with the other would measure two sets half the size, whose
distances are larger by noise alone: on 40 held-out turns of the sample a retrieval backend
(0.208) would "beat" that ceiling (0.286), though it only replays her real messages.

    run = EvaluationRun.from_dataset(dataset_dir, persona="Maya", signature_phrases=phrases)
    generation = await generate_all(run.heldout, reply, concurrency=4)
    run.add("maya-v3", generation, kind="model")
    run.save(out / "report.json")  # numbers only
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from training.dataset.samples import BUBBLE_SEPARATOR
from training.errors import TrainingError
from training.evaluate.degeneration import Degeneration, measure_degeneration
from training.evaluate.discriminator import Discriminator
from training.evaluate.heldout import HeldOutTurn, load_heldout, load_training_texts
from training.evaluate.style_distance import StyleDistances, style_distances

__all__ = [
    "REAL",
    "EvaluationError",
    "EvaluationRun",
    "Generation",
    "SystemKind",
    "SystemResult",
    "evaluate_system",
    "generate_all",
]

logger = logging.getLogger(__name__)

SystemKind = Literal["model", "backend", "real"]
REAL = "real replies"
"""The name of the ceiling row: the persona's own held-out replies."""
REPORT_VERSION = 1

ReplyFunction = Callable[[HeldOutTurn], Awaitable[tuple[Sequence[str], float]]]
"""Writes one reply: the held-out turn in, (bubbles, seconds it took) out."""
Progress = Callable[[int, int], None]
"""Called with (done, total) after every reply."""


class EvaluationError(TrainingError):
    """An evaluation cannot be run as asked (no held-out turns, misaligned replies...)."""


@dataclass(frozen=True, slots=True)
class Generation:
    """One system's replies to the held-out turns, in their order."""

    replies: list[list[str]]
    latencies_s: list[float] = field(default_factory=list)
    """Seconds per successful reply."""
    failed: int = 0
    """Replies that raised one of the expected errors; each stands as an empty reply."""


@dataclass(frozen=True, slots=True)
class SystemResult:
    """How one system's replies measure against the persona's real ones."""

    name: str
    kind: SystemKind
    turns: int
    distances: StyleDistances
    persona_share: float | None
    """Share of its replies the discriminator attributes to the persona (None: no judge)."""
    degeneration: Degeneration
    latency_p50_s: float | None
    latency_p95_s: float | None
    failed: int
    """Replies that could not be generated."""
    empty: int
    """Replies with no visible text (failed ones included)."""

    def metrics(self) -> dict[str, float]:
        """The headline numbers, finite floats only: what the registry records."""
        d = self.degeneration
        values: dict[str, float | None] = {
            "style_score": self.distances.score,
            "persona_share": self.persona_share,
            "copy_rate": d.copied_replies,
            "copy_ngram_rate": d.copied_ngram_replies,
            "self_repetition": d.self_repetition,
            "distinct_2": d.distinct_2,
            "empty_rate": d.empty,
            "runaway_rate": d.runaway,
            "failed_rate": self.failed / self.turns,
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
            "eval_turns": float(self.turns),
        }
        return {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of numbers (no message text)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "turns": self.turns,
            "failed": self.failed,
            "empty": self.empty,
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
            "persona_share": self.persona_share,
            "metrics": self.metrics(),
            "style": self.distances.to_dict(),
            "degeneration": self.degeneration.to_dict(),
        }


def evaluate_system(
    name: str,
    generated: Sequence[Sequence[str]],
    heldout: Sequence[HeldOutTurn],
    *,
    training_replies: Sequence[str],
    discriminator: Discriminator | None,
    signature_phrases: Sequence[str] = (),
    latencies_s: Sequence[float] = (),
    failed: int = 0,
    kind: SystemKind = "backend",
) -> SystemResult:
    """Measure `generated` (one reply per held-out turn, same order) against the real replies."""
    if len(generated) != len(heldout):
        raise EvaluationError(
            f"{name}: {len(generated)} replies for {len(heldout)} held-out turns; "
            "give exactly one reply per turn, in order"
        )
    if not heldout:
        raise EvaluationError("no held-out turns to evaluate; rebuild the dataset with eval_share")
    reference = [list(turn.reference) for turn in heldout]
    return _measure(
        name,
        kind,
        [list(reply) for reply in generated],
        reference,
        training_replies=training_replies,
        discriminator=discriminator,
        signature_phrases=signature_phrases,
        latencies_s=latencies_s,
        failed=failed,
    )


async def generate_all(
    heldout: Sequence[HeldOutTurn],
    reply: ReplyFunction,
    *,
    concurrency: int = 4,
    on_progress: Progress | None = None,
    failures: tuple[type[BaseException], ...] = (),
) -> Generation:
    """Ask `reply` for every held-out turn, at most `concurrency` at a time.

    An error of a type in `failures` (say, the bot's `BackendUnavailable`) counts the turn
    as failed and leaves its reply empty; any other error stops the evaluation.
    """
    if concurrency < 1:
        raise EvaluationError(f"concurrency must be at least 1, not {concurrency}")
    replies: list[list[str]] = [[] for _ in heldout]
    latencies: list[float | None] = [None] * len(heldout)
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(turn: HeldOutTurn, slot: int) -> None:
        nonlocal done
        async with gate:
            try:
                bubbles, seconds = await reply(turn)
            except failures as exc:  # the turn stays empty, its latency unknown: failed
                logger.info("held-out turn %d failed: %s", turn.index, type(exc).__name__)
            else:
                replies[slot] = [bubble for bubble in bubbles if bubble]
                latencies[slot] = float(seconds)
        done += 1
        if on_progress is not None:
            on_progress(done, len(heldout))

    await asyncio.gather(*(one(turn, slot) for slot, turn in enumerate(heldout)))
    return Generation(
        replies=replies,
        latencies_s=[s for s in latencies if s is not None],
        failed=sum(s is None for s in latencies),
    )


@dataclass
class EvaluationRun:
    """Several systems measured on the same held-out turns, with the real replies as ceiling.

    Holds the replies' text (for the HTML report's examples and charts); `to_dict` and
    `save` write numbers only.
    """

    persona: str
    heldout: list[HeldOutTurn]
    training_replies: list[str]
    discriminator: Discriminator | None
    signature_phrases: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    systems: list[SystemResult] = field(default_factory=list)
    replies: dict[str, list[list[str]]] = field(default_factory=dict)
    """Each system's replies by name, aligned with `heldout` (private text)."""
    seed: int = 0
    """Picks the training replies of the ceiling row."""
    ceiling: SystemResult = field(init=False)
    """The real replies' row (see the module's docstring)."""

    def __post_init__(self) -> None:
        if not self.heldout:
            raise EvaluationError("no held-out turns to evaluate")
        if not self.training_replies:
            raise EvaluationError("no training replies; the ceiling row needs the training split")
        references = self.references
        rng = np.random.default_rng(self.seed)
        size = min(len(references), len(self.training_replies))
        picks = np.sort(rng.choice(len(self.training_replies), size, replace=False))
        self.ceiling = _measure(
            REAL,
            "real",
            references,
            references,
            style_sample=[self.training_replies[i].split(BUBBLE_SEPARATOR) for i in picks],
            training_replies=self.training_replies,
            discriminator=self.discriminator,
            signature_phrases=self.signature_phrases,
            latencies_s=(),
            failed=0,
        )

    @classmethod
    def from_dataset(
        cls,
        dataset_dir: Path,
        *,
        persona: str,
        signature_phrases: Sequence[str] = (),
        limit: int | None = None,
        seed: int = 0,
    ) -> EvaluationRun:
        """Load the held-out turns and training texts, and fit the discriminator on the latter."""
        heldout = load_heldout(dataset_dir, limit=limit)
        texts = load_training_texts(dataset_dir)
        judge = Discriminator.fit(texts.persona, texts.others, seed=seed)
        return cls(
            persona=persona,
            heldout=heldout,
            training_replies=texts.replies,
            discriminator=judge,
            signature_phrases=list(signature_phrases),
        )

    @property
    def references(self) -> list[list[str]]:
        """The persona's real replies, aligned with `heldout` (private text)."""
        return [list(turn.reference) for turn in self.heldout]

    def add(
        self, name: str, generation: Generation, *, kind: SystemKind = "backend"
    ) -> SystemResult:
        """Measure one system's replies and keep them; names must be unique."""
        if name in self.replies or name == REAL:
            raise EvaluationError(f"a system named {name!r} is already in this evaluation")
        result = evaluate_system(
            name,
            generation.replies,
            self.heldout,
            training_replies=self.training_replies,
            discriminator=self.discriminator,
            signature_phrases=self.signature_phrases,
            latencies_s=generation.latencies_s,
            failed=generation.failed,
            kind=kind,
        )
        self.systems.append(result)
        self.replies[name] = [list(reply) for reply in generation.replies]
        return result

    def result(self, name: str) -> SystemResult:
        """The row of the system named `name` (or `REAL`)."""
        for row in self.rows():
            if row.name == name:
                return row
        raise EvaluationError(f"no system named {name!r} in this evaluation")

    def rows(self) -> list[SystemResult]:
        """Every system's row, then the ceiling's."""
        return [*self.systems, self.ceiling]

    def to_dict(self) -> dict[str, object]:
        """Everything measured, as a JSON-ready dict of numbers and names (no message text)."""
        judge = self.discriminator
        held = judge.held_out if judge is not None else None
        return {
            "report_version": REPORT_VERSION,
            "persona": self.persona,
            "created_at": self.created_at.isoformat(),
            "heldout_turns": len(self.heldout),
            "signature_phrases": len(self.signature_phrases),
            "discriminator": None
            if held is None
            else {
                "accuracy": held.accuracy,
                "persona_recall": held.persona_recall,
                "other_recall": held.other_recall,
                "held_out_persona": held.persona,
                "held_out_other": held.other,
            },
            "systems": [row.to_dict() for row in self.systems],
            "ceiling": self.ceiling.to_dict(),
        }

    def save(self, path: Path) -> Path:
        """Write `to_dict()` as JSON to `path`; returns it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def _measure(
    name: str,
    kind: SystemKind,
    generated: list[list[str]],
    reference: list[list[str]],
    *,
    training_replies: Sequence[str],
    discriminator: Discriminator | None,
    signature_phrases: Sequence[str],
    latencies_s: Sequence[float],
    failed: int,
    style_sample: list[list[str]] | None = None,
) -> SystemResult:
    """One row; `style_sample` replaces `generated` for the style distances (the ceiling)."""
    latencies = np.asarray(latencies_s, dtype=np.float64)
    p50, p95 = np.percentile(latencies, [50, 95]) if latencies.size else (None, None)
    degeneration = measure_degeneration(
        generated, training_replies=training_replies, reference=reference
    )
    styled = generated if style_sample is None else style_sample
    return SystemResult(
        name=name,
        kind=kind,
        turns=len(generated),
        distances=style_distances(styled, reference, signature_phrases=signature_phrases),
        persona_share=None if discriminator is None else _persona_share(discriminator, generated),
        degeneration=degeneration,
        latency_p50_s=None if p50 is None else float(p50),
        latency_p95_s=None if p95 is None else float(p95),
        failed=failed,
        empty=sum(not _visible(reply) for reply in generated),
    )


def _persona_share(judge: Discriminator, replies: list[list[str]]) -> float:
    """The share of replies attributed to the persona; an empty reply never is."""
    said = [reply for reply in replies if _visible(reply)]
    return judge.persona_share(said) * len(said) / len(replies) if said else 0.0


def _visible(reply: Sequence[str]) -> bool:
    return bool(BUBBLE_SEPARATOR.join(reply).strip())
