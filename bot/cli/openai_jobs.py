"""`wa-persona openai ...`: the optional, legacy OpenAI fine-tuning path.

OpenAI has closed self-serve fine-tuning to new users and is retiring it; local LoRA training
is the main path. Uploading is off unless WA_PERSONA_OPENAI_FINE_TUNING=true; `--dry-run`
needs neither the setting nor a key and sends nothing. See docs/openai-fine-tuning.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import app, err, fail
from bot.settings import Settings
from training.errors import TrainingError

if TYPE_CHECKING:
    from training.openai_ft import (
        CostEstimate,
        JobEvent,
        OpenAIDataset,
        OpenAIJobConfig,
        OpenAIJobs,
        TrackedJob,
    )

openai_app = typer.Typer(
    name="openai",
    help=(
        "OpenAI fine-tuning jobs: a legacy, optional path (OpenAI has closed self-serve "
        "fine-tuning to new users). Off unless WA_PERSONA_OPENAI_FINE_TUNING=true."
    ),
    no_args_is_help=True,
)
app.add_typer(openai_app)

DEFAULT_MODEL_HELP = "gpt-4.1-mini-2025-04-14"
"""`training.openai_ft.DEFAULT_MODEL`, spelled out so `--help` imports nothing more."""


@openai_app.command()
def train(
    dataset_dir: Annotated[
        Path, typer.Argument(help="A folder written by `wa-persona dataset` (scrubbed).")
    ],
    persona: Annotated[str, typer.Option(help="The persona the dataset was built for.")],
    model: Annotated[
        str | None,
        typer.Option(help=f"The OpenAI model to fine-tune (default {DEFAULT_MODEL_HELP})."),
    ] = None,
    epochs: Annotated[str, typer.Option(help="Epochs: a whole number or auto.")] = "auto",
    batch_size: Annotated[str, typer.Option(help="Batch size: a whole number or auto.")] = "auto",
    lr_multiplier: Annotated[
        str, typer.Option(help="Learning-rate multiplier: a number or auto.")
    ] = "auto",
    suffix: Annotated[
        str | None,
        typer.Option(help="Added to the model's name (at most 64 characters); default: persona."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed, for a reproducible job.")] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check the dataset, print the cost estimate, send nothing."),
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Start the job and return; `watch` follows it.")
    ] = False,
) -> None:
    """Upload a scrubbed dataset to OpenAI, start a fine-tuning job and follow it."""
    from training.openai_ft import (
        DEFAULT_MODEL,
        OpenAIJobConfig,
        load_dataset,
        require_upload_allowed,
    )

    settings = Settings()
    config = OpenAIJobConfig(
        model=model or DEFAULT_MODEL,
        n_epochs=_whole_or_auto(epochs, "--epochs"),
        batch_size=_whole_or_auto(batch_size, "--batch-size"),
        learning_rate_multiplier=_number_or_auto(lr_multiplier, "--lr-multiplier"),
        suffix=suffix,
        seed=seed,
    )
    try:
        config.validate()
        dataset = load_dataset(dataset_dir)
        if dry_run:
            _print_plan(dataset, persona, config, settings)
            return
        require_upload_allowed(settings.openai_fine_tuning)
        jobs = _jobs(settings)
        job = jobs.start(dataset, persona, config)
    except (TrainingError, OSError) as exc:
        raise fail(exc) from exc
    console = Console()
    console.print(
        f"started OpenAI job {job.job_id} for {job.version} ({job.model})",
        markup=False,
        highlight=False,
    )
    if no_wait:
        console.print(
            f"follow it with `wa-persona openai watch {job.job_id}`", markup=False, highlight=False
        )
        return
    _follow(jobs, [job.job_id], settings, console)


@openai_app.command()
def watch(
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Jobs to follow; default: every unfinished job started here."),
    ] = None,
) -> None:
    """Follow jobs until they finish (again after a restart), registering what they make."""
    settings = Settings()
    console = Console()
    try:
        jobs = _jobs(settings)
        ids = job_ids or [job.job_id for job in jobs.pending()]
    except TrainingError as exc:
        raise fail(exc) from exc
    if not ids:
        console.print("no unfinished OpenAI jobs", highlight=False)
        return
    _follow(jobs, ids, settings, console)


@openai_app.command("jobs")
def jobs_(
    remote: Annotated[
        bool, typer.Option("--remote", help="List the account's jobs at OpenAI instead.")
    ] = False,
) -> None:
    """List the OpenAI jobs started here (or, with --remote, the account's at OpenAI)."""
    from training.db import connect
    from training.openai_ft import JobStore

    settings = Settings()
    console = Console()
    try:
        if remote:
            listed = _jobs(settings).remote()
        else:
            stored = JobStore(connect(settings.database_path())).list()
    except TrainingError as exc:
        raise fail(exc) from exc
    if remote:
        table = Table("job", "model", "status", "fine-tuned model", "created (UTC)", "tracked")
        for found in listed:
            table.add_row(
                escape(found.job_id),
                escape(found.model),
                found.status,
                escape(found.fine_tuned_model or "—"),
                f"{found.created_at:%Y-%m-%d %H:%M}",
                "yes" if found.tracked else "no",
            )
        console.print(table)
        return
    if not stored:
        console.print("no OpenAI jobs yet — start one with `wa-persona openai train`")
        return
    table = Table("job", "version", "persona", "model", "status", "result", "updated (UTC)")
    for job in stored:
        table.add_row(
            escape(job.job_id),
            escape(job.version),
            escape(job.persona),
            escape(job.model),
            job.status,
            escape(job.fine_tuned_model or job.error or "—"),
            f"{job.updated_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@openai_app.command()
def cancel(job_id: Annotated[str, typer.Argument(help="A job started here.")]) -> None:
    """Cancel a running job; its model version is marked failed."""
    try:
        job = _jobs(Settings()).cancel(job_id)
    except TrainingError as exc:
        raise fail(exc) from exc
    typer.echo(f"{job.job_id} is {job.status}; {job.version} is marked failed")


def _jobs(settings: Settings) -> OpenAIJobs:
    """The job tracker for these settings (`OpenAINotConfiguredError` without a key)."""
    from training.db import connect
    from training.openai_ft import OpenAIJobs, openai_client

    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    client = openai_client(key, settings.openai_base_url)
    return OpenAIJobs(
        client, connect(settings.database_path()), allow_upload=settings.openai_fine_tuning
    )


def _follow(jobs: OpenAIJobs, ids: list[str], settings: Settings, console: Console) -> None:
    """Print events and a status line until the jobs finish; exit 1 when one did not succeed."""

    def on_event(job: TrackedJob, event: JobEvent) -> None:
        console.print(_event_line(job, event), markup=False, highlight=False)

    with console.status("waiting for OpenAI…") as status:

        def on_update(job: TrackedJob) -> None:
            status.update(escape(_status_line(job)))

        try:
            finished = jobs.watch(
                ids, interval=settings.openai_poll_seconds, on_event=on_event, on_update=on_update
            )
        except TrainingError as exc:
            raise fail(exc) from exc
        except KeyboardInterrupt:
            err.print(
                "stopped watching; the jobs go on at OpenAI. Resume with `wa-persona openai watch`",
                highlight=False,
            )
            raise typer.Exit(130) from None
    for job in finished:
        console.print(_outcome(job), markup=False, highlight=False)
    if any(job.status != "succeeded" for job in finished):
        raise typer.Exit(1)


def _event_line(job: TrackedJob, event: JobEvent) -> str:
    level = "" if event.level == "info" else f" {event.level.upper()}"
    return f"{job.job_id} {event.created_at:%Y-%m-%d %H:%M:%S}{level} {event.message}"


def _status_line(job: TrackedJob) -> str:
    line = f"{job.job_id} ({job.version}): {job.status}"
    metrics = job.metrics
    if "step" in metrics and "total_steps" in metrics:
        line += f", step {metrics['step']:.0f}/{metrics['total_steps']:.0f}"
    if "train_loss" in metrics:
        line += f", train loss {metrics['train_loss']:.4g}"
    if "valid_loss" in metrics:
        line += f", valid loss {metrics['valid_loss']:.4g}"
    return line


def _outcome(job: TrackedJob) -> str:
    if job.status == "succeeded":
        return (
            f"{job.job_id} succeeded: {job.version} is ready ({job.fine_tuned_model}); "
            f"use it with `wa-persona models activate {job.version}`"
        )
    return f"{job.job_id} {job.status}: {job.error or 'no reason given'}; {job.version} failed"


def _print_plan(
    dataset: OpenAIDataset, persona: str, config: OpenAIJobConfig, settings: Settings
) -> None:
    """What a real run would send and may cost; nothing is sent."""
    from training.openai_ft import OPENAI_WIND_DOWN_NOTE, default_suffix, estimate_cost

    cost = estimate_cost(
        dataset, config, usd_per_1m_tokens=settings.openai_training_usd_per_1m_tokens
    )
    console = Console()
    console.print(_cost_table(cost, settings.openai_training_usd_per_1m_tokens))
    files = ", ".join(path.name for path in (dataset.train, dataset.eval) if path is not None)
    console.print(
        f"dry run, nothing sent: would upload {files} (scrubbed: {dataset.scrub_mode}) and "
        f"fine-tune {config.model} for {persona} with n_epochs={config.n_epochs}, "
        f"batch_size={config.batch_size}, "
        f"learning_rate_multiplier={config.learning_rate_multiplier}, "
        f"suffix={config.suffix or default_suffix(persona)}",
        markup=False,
        highlight=False,
    )
    if not settings.openai_fine_tuning:
        console.print(
            "a real run needs WA_PERSONA_OPENAI_FINE_TUNING=true", markup=False, highlight=False
        )
    if settings.openai_api_key is None:
        console.print("a real run needs WA_PERSONA_OPENAI_API_KEY", markup=False, highlight=False)
    console.print(OPENAI_WIND_DOWN_NOTE, style="bold red", markup=False, highlight=False)


def _cost_table(cost: CostEstimate, usd_per_1m: float) -> Table:
    table = Table(title=f"OpenAI fine-tuning of {escape(cost.model)}: an estimate, not a quote")
    for header in ("training tokens", "epochs", "billed tokens", "USD", "validation tokens"):
        table.add_column(header, justify="right")
    table.add_row(
        f"{cost.train_tokens:,}",
        str(cost.epochs),
        f"{cost.billed_tokens:,}",
        f"${cost.usd:,.2f}",
        f"{cost.eval_tokens:,}",
    )
    table.caption = escape(
        f"Billed = training tokens × epochs × ${usd_per_1m:,.2f} per 1M tokens "
        "(WA_PERSONA_OPENAI_TRAINING_USD_PER_1M_TOKENS; check OpenAI's price list). "
        f"Epochs {cost.epochs_note}. Validation tokens are shown apart: OpenAI's formula "
        "prices the training file only. "
        f"Tokens counted with {cost.estimate.tokens.counter}, "
        f"{cost.estimate.tokens.tokens_per_message} per message."
    )
    return table


def _whole_or_auto(value: str, option: str) -> int | Literal["auto"]:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(
            f"takes a whole number or auto, not {value!r}", param_hint=option
        ) from None


def _number_or_auto(value: str, option: str) -> float | Literal["auto"]:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(
            f"takes a number or auto, not {value!r}", param_hint=option
        ) from None
