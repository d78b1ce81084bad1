"""Evaluate a persona's models and backends: what `wa-persona eval` and the evaluate job share.

`evaluate_persona` asks every system (registry versions, backends) for a reply to each
held-out persona turn of the persona's dataset, measures the replies against the real ones
(`training.evaluate`), writes `report.json` (numbers) and a private `report.html`, records
the headline numbers on each version in the registry and, when a ready version is compared
with the active one, applies the champion/challenger rule (`promote` activates the winner).

It loads data, fits the discriminator and draws charts in the calling thread: the bot runs
it in a worker process, never on the service's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from bot.errors import BackendUnavailable, BotError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.backends.base import Backend
    from bot.personas import PersonaAssets
    from training.evaluate import (
        ChampionRule,
        Decision,
        EvaluationRun,
        Generation,
        HeldOutTurn,
        ReportFiles,
        SystemResult,
    )
    from training.registry import ModelVersion, Registry

__all__ = [
    "EvalError",
    "EvalProgress",
    "EvalSystem",
    "EvaluationOutcome",
    "Verdict",
    "evaluate_persona",
    "generate_systems",
    "resolve_system",
]


class EvalError(BotError):
    """An evaluation cannot be set up as asked (unknown system, a version of someone else...)."""


@dataclass(frozen=True, slots=True)
class EvalSystem:
    """One thing to evaluate: a registry version or a backend, and the backend that answers."""

    name: str
    backend: Backend
    version: ModelVersion | None = None


@dataclass(frozen=True, slots=True)
class EvalProgress:
    """How far one system is: `done` of `total` held-out replies, or capability prompts."""

    system: str
    stage: Literal["replies", "capability"]
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The champion/challenger rule's decision on one ready version."""

    challenger: str
    champion: str | None
    """The active version it was measured against (None: there was none)."""
    decision: Decision

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "challenger": self.challenger,
            "champion": self.champion,
            "promote": self.decision.promote,
            "reasons": list(self.decision.reasons),
        }


@dataclass(frozen=True)
class EvaluationOutcome:
    """A finished evaluation: the run (holds reply text), its report files and the decisions."""

    run: EvaluationRun
    files: ReportFiles
    systems: tuple[EvalSystem, ...]
    capability: dict[str, float] = field(default_factory=dict)
    """Share of the general capability prompts each version passed (when asked for)."""
    notes: tuple[str, ...] = ()
    """What was added to the systems asked for, and why."""
    verdicts: tuple[Verdict, ...] = ()
    winner: str | None = None
    """The best ready version that passed the rule, if any."""
    promoted: ModelVersion | None = None
    """The version activated (only with `promote`)."""

    @property
    def rows(self) -> list[SystemResult]:
        """Every system's row, then the real replies' (the ceiling)."""
        return self.run.rows()

    def summary(self) -> dict[str, object]:
        """Numbers, names and report paths only (no message text): what a job records."""
        return {
            "persona": self.run.persona,
            "report": str(self.files.html),
            "numbers": str(self.files.json),
            "heldout_turns": len(self.run.heldout),
            "systems": {row.name: row.metrics() for row in self.run.systems},
            "ceiling": self.run.ceiling.metrics(),
            "capability": dict(self.capability),
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
            "winner": self.winner,
            "promoted": None if self.promoted is None else self.promoted.version,
        }


async def evaluate_persona(
    settings: Settings,
    persona: str,
    *,
    models: Sequence[str] = (),
    backends: Sequence[str] = (),
    limit: int | None = None,
    out: Path | None = None,
    concurrency: int = 4,
    capability: bool = False,
    rule: ChampionRule | None = None,
    strength: float = 1.0,
    seed: int = 0,
    promote: bool = False,
    on_progress: Callable[[EvalProgress], None] | None = None,
) -> EvaluationOutcome:
    """Evaluate `models` (registry versions) and `backends` on the persona's held-out turns.

    With neither, the active version (if any) and the retrieval backend. A ready version is
    compared with the active one, which is added when not listed.

    Args:
        limit: evaluate this many held-out turns, spread over the split (None: all).
        out: the report folder; default `<persona folder>/evals/<UTC time>`.
        capability: also ask the versions the general capability prompts.
        rule: the champion/challenger limits (default `ChampionRule()`).
        promote: activate the ready version the rule picks.

    Raises:
        BotError, TrainingError, StyleError, OSError: the persona, a system or the dataset
            cannot be used; nothing is recorded then.
    """
    from bot.personas import load_persona
    from training.evaluate import ChampionRule, EvaluationRun, signature_phrases, write_report
    from training.registry import Registry

    assets = load_persona(settings, persona)
    registry = Registry.open(settings.database_path())
    try:
        systems, notes = _systems(assets, settings, registry, models, backends)
        run = EvaluationRun.from_dataset(
            assets.dataset_dir,
            persona=assets.name,
            signature_phrases=signature_phrases(assets.profile),
            limit=limit,
            seed=seed,
        )
        results = await generate_systems(
            run.heldout,
            systems,
            assets.name,
            now=datetime.now(UTC),
            strength=strength,
            concurrency=concurrency,
            deadline_s=settings.backend_deadline_s,
            capability=capability,
            on_progress=on_progress,
        )
        scores: dict[str, float] = {}
        for system, (generation, score) in zip(systems, results, strict=True):
            run.add(system.name, generation, kind="model" if system.version else "backend")
            if score is not None:
                scores[system.name] = score
        folder = out or assets.folder / "evals" / f"{run.created_at:%Y%m%dT%H%M%SZ}"
        files = write_report(run, folder)
        for system in systems:
            if system.version is not None:
                metrics = run.result(system.name).metrics()
                if system.name in scores:
                    metrics["capability"] = scores[system.name]
                registry.update(system.name, metrics=metrics)
        verdicts, winner = _judge(run, systems, rule or ChampionRule(), scores)
        promoted = registry.activate(winner) if promote and winner is not None else None
    finally:
        registry.db.close()
    return EvaluationOutcome(
        run=run,
        files=files,
        systems=tuple(systems),
        capability=scores,
        notes=tuple(notes),
        verdicts=tuple(verdicts),
        winner=winner,
        promoted=promoted,
    )


# --- systems -------------------------------------------------------------------------------


def _systems(
    assets: PersonaAssets,
    settings: Settings,
    registry: Registry,
    models: Sequence[str],
    backends: Sequence[str],
) -> tuple[list[EvalSystem], list[str]]:
    """The systems to evaluate, and notes about what was added; default: active + retrieval."""
    from training.registry import ModelStatus

    notes: list[str] = []
    active = registry.active(assets.name)
    if not models and not backends:
        models = [active.version] if active is not None else []
        backends = ["retrieval"]
    names = [*models, *backends]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise EvalError(f"{', '.join(repeated)} is listed twice; list each system once")
    versions = [_version(registry, name, assets.name) for name in models]
    ready = any(v.status is ModelStatus.READY for v in versions)
    if ready and active is not None and active.version not in models:
        models = [active.version, *models]
        notes.append(f"comparing with the active version {active.version} (the champion)")
    return [
        *(resolve_system(assets, settings, registry, name, is_version=True) for name in models),
        *(resolve_system(assets, settings, registry, name, is_version=False) for name in backends),
    ], notes


def resolve_system(
    assets: PersonaAssets,
    settings: Settings,
    registry: Registry,
    name: str,
    *,
    is_version: bool | None,
) -> EvalSystem:
    """The system `name`: a version (`is_version`), a backend, or either (None: try both)."""
    from bot.backends.factory import build_backend
    from training.registry import UnknownVersionError

    version = None
    if is_version is not False:
        try:
            version = _version(registry, name, assets.name)
        except UnknownVersionError:
            if is_version:
                raise
    backend = build_backend(name, assets, settings, registry)
    if backend is None:
        raise EvalError(
            f"{name} is not set up for {assets.name} (no model, no key, or remote backends "
            "not allowed); see docs/backends.md"
        )
    return EvalSystem(name, backend, version)


def _version(registry: Registry, name: str, persona: str) -> ModelVersion:
    """The registry version `name`, refused when it is another persona's or has no model."""
    from training.registry import ModelStatus

    version = registry.get(name)
    if version.persona != persona:
        raise EvalError(f"{name} is {version.persona}'s model, not {persona}'s")
    if version.status in (ModelStatus.TRAINING, ModelStatus.FAILED):
        raise EvalError(f"{name} is {version.status.value}; only a trained version can answer")
    return version


# --- generation ----------------------------------------------------------------------------


async def generate_systems(
    heldout: Sequence[HeldOutTurn],
    systems: Sequence[EvalSystem],
    persona: str,
    *,
    now: datetime,
    strength: float,
    concurrency: int,
    deadline_s: float,
    capability: bool,
    on_progress: Callable[[EvalProgress], None] | None = None,
) -> list[tuple[Generation, float | None]]:
    """Each system's replies (one system at a time, so latencies are its own) and capability.

    One event loop for all of them: SDK clients bound to a loop stay usable. Every backend
    is closed at the end.
    """
    from training.evaluate import capability_prompts, generate_all

    def report(name: str, stage: Literal["replies", "capability"], done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(EvalProgress(name, stage, done, total))

    results: list[tuple[Generation, float | None]] = []
    try:
        for system in systems:
            report(system.name, "replies", 0, len(heldout))
            reply = _reply_function(system.backend, persona, now, strength, deadline_s)
            generation = await generate_all(
                heldout,
                reply,
                concurrency=concurrency,
                on_progress=lambda done, total, name=system.name: report(
                    name, "replies", done, total
                ),
                failures=(BackendUnavailable, TimeoutError),
            )
            score = None
            if capability and system.version is not None:
                report(system.name, "capability", 0, len(capability_prompts()))
                score = await _capability(system.backend, persona, now, concurrency, deadline_s)
            results.append((generation, score))
    finally:
        for system in systems:
            close = getattr(system.backend, "aclose", None)  # SDK clients, model threads
            if close is not None:
                await close()
    return results


def _reply_function(
    backend: Backend, persona: str, now: datetime, strength: float, deadline_s: float
) -> Callable[[HeldOutTurn], Awaitable[tuple[list[str], float]]]:
    """Ask `backend` for the persona's reply to one held-out turn, timed, within the deadline."""
    from bot.backends.base import ChatTurn, Prompt

    async def reply(turn: HeldOutTurn) -> tuple[list[str], float]:
        history = tuple(ChatTurn(t.role, t.bubbles, now) for t in turn.context)
        prompt = Prompt(persona, f"eval:{turn.line}", history, now, strength)
        start = time.perf_counter()
        async with asyncio.timeout(deadline_s):
            answer = await backend.reply(prompt)
        return list(answer.bubbles), time.perf_counter() - start

    return reply


async def _capability(
    backend: Backend, persona: str, now: datetime, concurrency: int, deadline_s: float
) -> float:
    """The share of the bundled general prompts the backend answers correctly."""
    from bot.backends.base import ChatTurn, Prompt
    from training.evaluate import capability_prompts, score_capability

    gate = asyncio.Semaphore(concurrency)

    async def ask(number: int, text: str) -> str:
        prompt = Prompt(persona, f"capability:{number}", (ChatTurn("user", (text,), now),), now)
        async with gate:
            try:
                async with asyncio.timeout(deadline_s):
                    answer = await backend.reply(prompt)
            except (BackendUnavailable, TimeoutError):
                return ""
        return "\n".join(answer.bubbles)

    prompts = capability_prompts()
    answers = await asyncio.gather(*(ask(i, p.prompt) for i, p in enumerate(prompts)))
    return score_capability(answers)


# --- champion / challenger -----------------------------------------------------------------


def _judge(
    run: EvaluationRun,
    systems: Sequence[EvalSystem],
    rule: ChampionRule,
    capability: dict[str, float],
) -> tuple[list[Verdict], str | None]:
    """The rule's decision for each ready version against the active one, and the best winner."""
    from training.evaluate import Contender, decide
    from training.registry import ModelStatus

    challengers = [s for s in systems if s.version and s.version.status is ModelStatus.READY]
    champion = next(
        (s for s in systems if s.version and s.version.status is ModelStatus.ACTIVE), None
    )
    defending = (
        None
        if champion is None
        else Contender.from_result(
            run.result(champion.name), capability=capability.get(champion.name)
        )
    )
    real = Contender.from_result(run.ceiling)
    verdicts: list[Verdict] = []
    winners: list[tuple[float, str]] = []
    for challenger in challengers:
        result = run.result(challenger.name)
        contender = Contender.from_result(result, capability=capability.get(challenger.name))
        decision = decide(contender, defending, rule, real=real)
        against = None if champion is None else champion.name
        verdicts.append(Verdict(challenger.name, against, decision))
        if decision.promote:
            winners.append((result.distances.score, challenger.name))
    return verdicts, min(winners)[1] if winners else None
