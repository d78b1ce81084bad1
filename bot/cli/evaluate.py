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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import AssignmentError, app, assignments, err, fail
from bot.errors import BotError
from bot.evaluations import (
    EvalError,
    EvalProgress,
    evaluate_persona,
    generate_systems,
    resolve_system,
)
from bot.settings import Settings
from style.errors import StyleError
from training.errors import TrainingError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from bot.evaluations import EvaluationOutcome
    from training.evaluate import ChampionRule

REAL_SIDE = "real"
"""`--against real`: the persona's own held-out reply."""
_ERRORS = (BotError, StyleError, TrainingError, AssignmentError, OSError)


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
    from training.evaluate import summary_table

    settings = Settings()
    bar = _Bar()
    try:
        outcome = asyncio.run(
            evaluate_persona(
                settings,
                persona,
                models=model or [],
                backends=backend or [],
                limit=limit,
                out=out,
                concurrency=concurrency,
                capability=capability,
                rule=_rule(rule or []),
                strength=strength,
                seed=seed,
                promote=promote,
                on_progress=bar.show,
            )
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    finally:
        bar.stop()
    for note in outcome.notes:
        err.print(escape(note), highlight=False)
    console = Console()
    console.print(summary_table(outcome.run))
    scores = outcome.capability
    if scores:
        shown = ", ".join(f"{name} {value:.2f}" for name, value in scores.items())
        console.print(f"capability (share of general prompts passed): {escape(shown)}")
    console.print(
        f"report: {escape(str(outcome.files.html))} (private: holds message text)",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"numbers: {escape(str(outcome.files.json))}", highlight=False, soft_wrap=True)
    _print_verdicts(console, outcome, promote=promote)


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
    bar = _Bar()
    try:
        if persona is None or out is None:
            raise EvalError("give --persona and --out (or score a test: abtest score ANSWERS KEY)")
        if (model is None) == (backend is None):
            raise EvalError("give exactly one of --model and --backend")
        assets = load_persona(settings, persona)
        registry = Registry.open(settings.database_path())
        first_name = model or backend or ""
        first = resolve_system(assets, settings, registry, first_name, is_version=model is not None)
        sides = [first]
        if against != REAL_SIDE:
            sides.append(resolve_system(assets, settings, registry, against, is_version=None))
        heldout = load_heldout(assets.dataset_dir, limit=pairs)
        results = asyncio.run(
            generate_systems(
                heldout,
                sides,
                assets.name,
                now=datetime.now(UTC),
                strength=strength,
                concurrency=concurrency,
                deadline_s=settings.backend_deadline_s,
                capability=False,
                on_progress=bar.show,
            )
        )
    except _ERRORS as exc:
        raise fail(exc) from exc
    finally:
        bar.stop()
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


# --- output --------------------------------------------------------------------------------


class _Bar:
    """A transient progress bar per system on stderr, shown from the first reply on."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def show(self, update: EvalProgress) -> None:
        """Move the system's bar (made on its first update)."""
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=err,
                transient=True,
            )
            self._progress.start()
        name = escape(update.system)
        if update.system not in self._tasks:
            self._tasks[update.system] = self._progress.add_task(name, total=update.total)
        task = self._tasks[update.system]
        if update.stage == "capability":
            self._progress.update(task, description=f"{name}: capability")
        else:
            self._progress.update(task, completed=update.done, total=update.total)

    def stop(self) -> None:
        """Take the bars down (safe when none was shown)."""
        if self._progress is not None:
            self._progress.stop()


def _rule(items: list[str]) -> ChampionRule:
    from pydantic import ValidationError

    from training.evaluate import ChampionRule

    try:
        return ChampionRule.model_validate(assignments(items))
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise EvalError(f"--rule {where}: {problem['msg']}") from exc


def _print_verdicts(console: Console, outcome: EvaluationOutcome, *, promote: bool) -> None:
    """Print the champion/challenger decision for each ready version, and what was promoted."""
    if not outcome.verdicts:
        if promote:
            console.print("nothing to promote: no ready version was evaluated")
        return
    for verdict in outcome.verdicts:
        against = f"the active {verdict.champion}" if verdict.champion else "no active version"
        shown = "[bold green]promote[/]" if verdict.decision.promote else "[bold yellow]keep[/]"
        console.print(f"{escape(verdict.challenger)} against {escape(against)}: {shown}")
        for reason in verdict.decision.reasons:
            console.print(f"  - {escape(reason)}", highlight=False)
    if outcome.winner is None:
        if promote:
            console.print("nothing promoted: no challenger passed the rule")
    elif outcome.promoted is not None:
        activated = outcome.promoted
        console.print(f"{escape(activated.version)} is now active for {escape(activated.persona)}")
    else:
        console.print(f"run again with --promote to activate {escape(outcome.winner)}")
