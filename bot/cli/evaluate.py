"""`wa-persona eval` and `wa-persona abtest`: how much models and backends write like the persona.

`eval` asks every system (registry versions, backends) for a reply to each held-out persona
turn of the persona's dataset, measures the replies against the real ones
(`training.evaluate`), writes `report.json` (numbers) and a private `report.html`, prints the
side-by-side table, records the headline numbers on each version in the registry, and, when a
ready version is compared with the active one, applies the champion/challenger rule
(`--promote` activates the winner). `abtest` writes a blind test for people, and scores it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import AssignmentError, app, assignments, err, fail
from bot.errors import BackendUnavailable, BotError
from bot.settings import Settings
from style.errors import StyleError
from training.errors import TrainingError

if TYPE_CHECKING:
    from bot.backends.base import Backend
    from bot.personas import PersonaAssets
    from training.evaluate import ChampionRule, EvaluationRun, Generation, HeldOutTurn
    from training.registry import ModelVersion, Registry

REAL_SIDE = "real"
"""`--against real`: the persona's own held-out reply."""
_ERRORS = (BotError, StyleError, TrainingError, AssignmentError, OSError)


class EvalError(BotError):
    """An evaluation cannot be set up as asked (unknown system, a version of someone else...)."""


@dataclass(frozen=True, slots=True)
class _System:
    """One thing to evaluate: a registry version or a backend, and the backend that answers."""

    name: str
    backend: Backend
    version: ModelVersion | None = None


PersonaOption = Annotated[
    str | None, typer.Option("--persona", "-p", help="The prepared persona to evaluate.")
]
ConcurrencyOption = Annotated[
    int, typer.Option(min=1, help="Replies asked for at the same time, per system.")
]
StrengthOption = Annotated[
    float,
    typer.Option(min=0.0, max=1.0, help='Style strength: 0 "inspired by" .. 1 "exact" (default).'),
]


@app.command("eval")
def eval_(
    persona: Annotated[str, typer.Option("--persona", "-p", help="The prepared persona.")],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="A registry version to evaluate; repeatable."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option("--backend", "-b", help="A backend to evaluate (retrieval...); repeatable."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Evaluate this many held-out turns, spread over the split."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report folder; default <data_dir>/personas/<slug>/evals/<time>."),
    ] = None,
    concurrency: ConcurrencyOption = 4,
    capability: Annotated[
        bool,
        typer.Option(
            "--capability", help="Also ask the registry versions the general capability prompts."
        ),
    ] = False,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote", help="Activate the ready version the champion/challenger rule picks."
        ),
    ] = False,
    rule: Annotated[
        list[str] | None,
        typer.Option(help="Champion rule setting key=value (min_improvement=0.02); repeatable."),
    ] = None,
    strength: StrengthOption = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the discriminator and the ceiling.")] = 0,
) -> None:
    """Measure models and backends against the persona's held-out replies; write a report.

    Default: the active version (if any) and the retrieval backend.
    A ready version is compared with the active one under the champion/challenger rule.
    """
    from bot.personas import load_persona
    from training.evaluate import EvaluationRun, signature_phrases, summary_table, write_report
    from training.registry import Registry

    settings = Settings()
    try:
        champion_rule = _rule(rule or [])
        assets = load_persona(settings, persona)
        registry = Registry.open(settings.database_path())
        systems, notes = _systems(assets, settings, registry, model or [], backend or [])
        run = EvaluationRun.from_dataset(
            assets.dataset_dir,
            persona=assets.name,
            signature_phrases=signature_phrases(assets.profile),
            limit=limit,
            seed=seed,
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    for note in notes:
        err.print(escape(note), highlight=False)
    now = datetime.now(UTC)
    try:
        results = asyncio.run(
            _generate_systems(
                run.heldout,
                systems,
                assets.name,
                now=now,
                strength=strength,
                concurrency=concurrency,
                deadline_s=settings.backend_deadline_s,
                capability=capability,
            )
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    scores: dict[str, float] = {}
    for system, (generation, score) in zip(systems, results, strict=True):
        run.add(system.name, generation, kind="model" if system.version else "backend")
        if score is not None:
            scores[system.name] = score
    folder = out or assets.folder / "evals" / f"{run.created_at:%Y%m%dT%H%M%SZ}"
    try:
        files = write_report(run, folder)
        for system in systems:
            if system.version is not None:
                metrics = run.result(system.name).metrics()
                if system.name in scores:
                    metrics["capability"] = scores[system.name]
                registry.update(system.name, metrics=metrics)
    except _ERRORS as exc:
        raise fail(exc) from exc
    console = Console()
    console.print(summary_table(run))
    if scores:
        shown = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        console.print(f"capability (share of general prompts passed): {escape(shown)}")
    console.print(
        f"report: {escape(str(files.html))} (private: holds message text)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"numbers: {escape(str(files.json))}", highlight=False, soft_wrap=True)
    try:
        _champion(console, run, systems, registry, champion_rule, scores, promote=promote)
    except _ERRORS as exc:
        raise fail(exc) from exc


abtest_app = typer.Typer(
    name="abtest",
    help="Blind A/B tests for people: write pairs of replies with the key apart, then score.",
)
app.add_typer(abtest_app)


@abtest_app.callback(invoke_without_command=True)
def abtest(
    ctx: typer.Context,
    persona: PersonaOption = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="A registry version.")] = None,
    backend: Annotated[str | None, typer.Option("--backend", "-b", help="A backend.")] = None,
    against: Annotated[
        str, typer.Option(help="The other side: 'real' (her own reply), a version or a backend.")
    ] = REAL_SIDE,
    pairs: Annotated[int, typer.Option(min=1, help="Pairs to write.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Folder for the raters' files.")] = None,
    key: Annotated[
        Path | None, typer.Option(help="Where the answer key goes; default OUT/key.json.")
    ] = None,
    concurrency: ConcurrencyOption = 4,
    strength: StrengthOption = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the shuffling.")] = 0,
) -> None:
    """Write a blind A/B test from held-out turns: questions.md, answers.csv, key.json."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.personas import load_persona
    from training.evaluate import ABItem, load_heldout, write_abtest
    from training.registry import Registry

    settings = Settings()
    try:
        if persona is None or out is None:
            raise EvalError("give --persona and --out (or score a test: abtest score ANSWERS KEY)")
        if (model is None) == (backend is None):
            raise EvalError("give exactly one of --model and --backend")
        assets = load_persona(settings, persona)
        registry = Registry.open(settings.database_path())
        first_name = model or backend or ""
        first = _system(assets, settings, registry, first_name, is_version=model is not None)
        sides = [first]
        if against != REAL_SIDE:
            sides.append(_system(assets, settings, registry, against, is_version=None))
        heldout = load_heldout(assets.dataset_dir, limit=pairs)
        results = asyncio.run(
            _generate_systems(
                heldout,
                sides,
                assets.name,
                now=datetime.now(UTC),
                strength=strength,
                concurrency=concurrency,
                deadline_s=settings.backend_deadline_s,
                capability=False,
            )
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    replies = [generation.replies for generation, _ in results]
    other = replies[1] if len(replies) > 1 else [list(t.reference) for t in heldout]
    items = [
        ABItem(turn.context, tuple(a), tuple(b))
        for turn, a, b in zip(heldout, replies[0], other, strict=True)
        if a and b
    ]
    question = (
        f"Which reply did {assets.name} really write?"
        if against == REAL_SIDE
        else f"Which reply sounds more like {assets.name}?"
    )
    try:
        files = write_abtest(
            items,
            out,
            labels=(first.name, against),
            question=question,
            seed=seed,
            key_path=key,
            persona=assets.name,
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    dropped = len(heldout) - len(items)
    if dropped:
        err.print(f"left out {dropped} pair(s) where a side gave no reply", highlight=False)
    typer.echo(f"{len(items)} pairs: {files.questions} and {files.answers} are for the raters")
    typer.echo(f"answer key: {files.key}; keep it away from them")
    typer.echo(f"score the filled file with: wa-persona abtest score {files.answers} {files.key}")


@abtest_app.command("score")
def abtest_score(
    answers: Annotated[Path, typer.Argument(help="The filled answers.csv.")],
    key: Annotated[Path, typer.Argument(help="The key.json written with it.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a filled answers.csv against its key: picks per side, p-value, 95% interval."""
    import json

    from training.evaluate import score_abtest

    try:
        result = score_abtest(answers, key)
    except _ERRORS as exc:
        raise fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    table = Table(title=f"{result.judged} choices ({result.skipped} left blank)")
    table.add_column("side")
    table.add_column("picked", justify="right")
    table.add_column("share", justify="right")
    for label in result.labels:
        table.add_row(escape(label), str(result.picks[label]), f"{result.shares[label]:.0%}")
    console = Console()
    console.print(table)
    low, high = result.interval
    console.print(
        f"{escape(result.labels[0])} share 95% interval {low:.0%}..{high:.0%}; "
        f"two-sided binomial p = {result.p_value:.3g} against 50/50",
        highlight=False,
    )


# --- systems -------------------------------------------------------------------------------


def _systems(
    assets: PersonaAssets,
    settings: Settings,
    registry: Registry,
    models: Sequence[str],
    backends: Sequence[str],
) -> tuple[list[_System], list[str]]:
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
        *(_system(assets, settings, registry, name, is_version=True) for name in models),
        *(_system(assets, settings, registry, name, is_version=False) for name in backends),
    ], notes


def _system(
    assets: PersonaAssets,
    settings: Settings,
    registry: Registry,
    name: str,
    *,
    is_version: bool | None,
) -> _System:
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
    return _System(name, backend, version)


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


async def _generate_systems(
    heldout: Sequence[HeldOutTurn],
    systems: Sequence[_System],
    persona: str,
    *,
    now: datetime,
    strength: float,
    concurrency: int,
    deadline_s: float,
    capability: bool,
) -> list[tuple[Generation, float | None]]:
    """Each system's replies (one system at a time, so latencies are its own) and capability.

    One event loop for all of them: SDK clients bound to a loop stay usable.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from training.evaluate import generate_all

    results: list[tuple[Generation, float | None]] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    )
    try:
        with progress:
            for system in systems:
                task = progress.add_task(escape(system.name), total=len(heldout))
                reply = _reply_function(system.backend, persona, now, strength, deadline_s)
                generation = await generate_all(
                    heldout,
                    reply,
                    concurrency=concurrency,
                    on_progress=lambda done, _, task=task: progress.update(task, completed=done),
                    failures=(BackendUnavailable, TimeoutError),
                )
                score = None
                if capability and system.version is not None:
                    progress.update(task, description=f"{escape(system.name)}: capability")
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


def _rule(items: list[str]) -> ChampionRule:
    from pydantic import ValidationError

    from training.evaluate import ChampionRule

    try:
        return ChampionRule.model_validate(assignments(items))
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise EvalError(f"--rule {where}: {problem['msg']}") from exc


def _champion(
    console: Console,
    run: EvaluationRun,
    systems: Sequence[_System],
    registry: Registry,
    rule: ChampionRule,
    capability: dict[str, float],
    *,
    promote: bool,
) -> None:
    """Print the champion/challenger decision for each ready version; promote the best."""
    from training.evaluate import Contender, decide
    from training.registry import ModelStatus

    challengers = [s for s in systems if s.version and s.version.status is ModelStatus.READY]
    if not challengers:
        if promote:
            console.print("nothing to promote: no ready version was evaluated")
        return
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
    winners = []
    for challenger in challengers:
        result = run.result(challenger.name)
        contender = Contender.from_result(result, capability=capability.get(challenger.name))
        decision = decide(contender, defending, rule, real=real)
        against = f"the active {champion.name}" if champion else "no active version"
        verdict = "[bold green]promote[/]" if decision.promote else "[bold yellow]keep[/]"
        console.print(f"{escape(challenger.name)} against {escape(against)}: {verdict}")
        for reason in decision.reasons:
            console.print(f"  - {escape(reason)}", highlight=False)
        if decision.promote:
            winners.append((result.distances.score, challenger.name))
    if not winners:
        if promote:
            console.print("nothing promoted: no challenger passed the rule")
        return
    best = min(winners)[1]
    if promote:
        activated = registry.activate(best)
        console.print(f"{escape(activated.version)} is now active for {escape(activated.persona)}")
    else:
        console.print(f"run again with --promote to activate {escape(best)}")
