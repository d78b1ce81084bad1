"""Data commands: parse, scrub, profile, dataset and the bundled sample."""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.cli.common import AssignmentError, app, assignments, err, fail
from bot.scrubbing import export_scrubber, training_scrubber_factory
from bot.settings import Settings
from style.errors import StyleError
from style.messages import Message
from style.scrub import ScrubMode

if TYPE_CHECKING:
    from style.parse import ChatStream
    from training.dataset import DatasetBuild, TokenCounter


@app.command()
def parse(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="WhatsApp .txt/.zip exports or Telegram result.json; default: the bundled sample."
        ),
    ] = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print dialect, counts and date range instead.")
    ] = False,
    chat: Annotated[
        str | None, typer.Option(help="In a multi-chat Telegram export, only this chat.")
    ] = None,
    max_size_mb: Annotated[
        int | None, typer.Option(help="Refuse chat files larger than this (MB).")
    ] = None,
) -> None:
    """Parse an export and write one JSON object per message (JSON Lines) to stdout."""
    from style.parse import iter_chats
    from style.sample import sample_paths

    settings = Settings()
    if max_size_mb is not None:
        settings.max_export_mb = max_size_mb
    try:
        streams = [
            stream
            for path in paths or sample_paths()
            for stream in iter_chats(path, limits=settings.export_limits())
            if chat is None or stream.source.rsplit("#", 1)[-1] == chat
        ]
        if chat is not None and not streams:
            raise StyleError(f"no chat named {chat!r} in the given exports")
        if summary:
            for stream in streams:
                _print_summary(stream)
        else:
            for stream in streams:
                name = stream.source.rsplit("#", 1)[-1] if len(streams) > 1 else None
                _write_jsonl(stream, chat=name)
    except StyleError as exc:
        raise fail(exc) from exc
    except BrokenPipeError:  # `wa-persona parse x | head` is fine
        sys.stderr.close()


def _write_jsonl(messages: Iterable[Message], *, chat: str | None = None) -> None:
    """One compact JSON object per message on stdout, written in batches."""
    suffix = "" if chat is None else f',"chat":{json.dumps(chat, ensure_ascii=False)}}}'
    batch: list[str] = []
    for message in messages:
        line = message.to_json()
        batch.append(line if not suffix else line[:-1] + suffix)
        if len(batch) == 4096:
            sys.stdout.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        sys.stdout.write("\n".join(batch) + "\n")
    sys.stdout.flush()


def _print_summary(stream: ChatStream) -> None:
    by_author: Counter[tuple[str, str]] = Counter()
    first = last = None
    for message in stream:
        by_author[(message.author or "(system)", message.kind.value)] += 1
        first = message.ts if first is None or message.ts < first else first
        last = message.ts if last is None or message.ts > last else last
    console = Console()
    console.print(f"[bold]{escape(stream.source)}[/]", highlight=False)
    console.print(f"dialect: {stream.dialect}", highlight=False)
    if first is not None:
        console.print(f"dates: {first:%Y-%m-%d %H:%M} → {last:%Y-%m-%d %H:%M}", highlight=False)
    unparsed = stream.stats.unparsed_lines
    where = f" (first at line {stream.stats.first_unparsed_line})" if unparsed else ""
    console.print(f"lines: {stream.stats.lines}, unparsed kept as text: {unparsed}{where}")
    kinds = sorted(
        {kind for _, kind in by_author}, key=["text", "media", "deleted", "system"].index
    )
    table = Table("author", *kinds, "total")
    authors = sorted(
        {a for a, _ in by_author},
        key=lambda a: -sum(n for (who, _), n in by_author.items() if who == a),
    )
    for author in authors:
        counts = [by_author[(author, kind)] for kind in kinds]
        table.add_row(escape(author), *map(str, counts), str(sum(counts)))
    totals = [sum(n for (_, k), n in by_author.items() if k == kind) for kind in kinds]
    table.add_row("[bold]all[/]", *map(str, totals), str(sum(totals)))
    console.print(table)


@app.command()
def profile(
    exports: Annotated[list[Path], typer.Argument(help="Chat exports (.txt/.zip/result.json).")],
    persona: Annotated[str, typer.Option(help="The author to profile, as named in the export.")],
    report: Annotated[
        Path | None,
        typer.Option(help="Write profile.json and report.html (charts) into this folder."),
    ] = None,
    gap_minutes: Annotated[
        float | None,
        typer.Option(help="Silence that starts a new conversation; default: from the data."),
    ] = None,
    min_messages: Annotated[
        int | None, typer.Option(help="Warn when the persona has fewer messages.")
    ] = None,
) -> None:
    """Measure how one person writes: profile JSON on stdout, or a report with --report."""
    from style.profile import ProfileWarning, profile_exports
    from style.report import summary_table, write_report

    settings = Settings()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProfileWarning)  # the summary lists them
            result = profile_exports(
                exports,
                persona,
                limits=settings.export_limits(),
                gap_minutes=gap_minutes or settings.conversation_gap_minutes,
                min_messages=min_messages or settings.profile_min_messages,
            )
    except StyleError as exc:
        raise fail(exc) from exc
    if report is None:
        err.print(summary_table(result))
        typer.echo(result.to_json())
    else:
        page = write_report(result, report)
        Console().print(summary_table(result))
        typer.echo(f"Report: {page}")  # plain text: paths may contain [brackets]


@app.command()
def dataset(
    exports: Annotated[list[Path], typer.Argument(help="Chat exports (.txt/.zip/result.json).")],
    persona: Annotated[str, typer.Option(help="The author the model learns to be.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the dataset files.")],
    config: Annotated[
        Path | None, typer.Option(help="A JSON file of dataset settings (DatasetConfig fields).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one setting: key=value (JSON value); repeatable."),
    ] = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Also print token counts and training cost/time.")
    ] = False,
    epochs: Annotated[int, typer.Option(help="Epochs assumed by --estimate.")] = 3,
) -> None:
    """Build fine-tuning data (HF, OpenAI, ShareGPT formats and a dataset card) into OUT."""
    from style.profile import ProfileWarning
    from training.dataset import (
        DatasetConfig,
        build_from_exports,
        load_token_counter,
        write_card,
        write_dataset,
    )
    from training.errors import TrainingError

    settings = Settings()
    try:
        values = json.loads(config.read_text(encoding="utf-8")) if config else {}
        values.update(assignments(set_ or []))
        values.setdefault("gap_minutes", settings.conversation_gap_minutes)
        cfg = DatasetConfig.from_dict(values)
        counter = load_token_counter(cfg.tokenizer)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProfileWarning)  # listed in build.notes
            build = build_from_exports(
                exports,
                persona,
                cfg,
                limits=settings.export_limits(),
                make_scrubber=training_scrubber_factory(settings, persona),
                token_counter=counter,
            )
        files = write_dataset(build, out, token_counter=counter)
        write_card(build, out, files, token_counter=counter)
    except (StyleError, TrainingError, OSError, json.JSONDecodeError, AssignmentError) as exc:
        raise fail(exc) from exc
    console = Console()
    for note in build.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    names = ", ".join(sorted(p.name for p in files.values()))
    console.print(
        f"{len(build.train)} training and {len(build.eval)} held-out samples → {out} ({names})",
        markup=False,
        highlight=False,
    )
    if estimate:
        _print_estimate(build, counter, settings, epochs, console)


def _print_estimate(
    build: DatasetBuild, counter: TokenCounter, settings: Settings, epochs: int, console: Console
) -> None:
    """Token counts and cost/time per training target, OpenAI's price from settings."""
    from training.dataset import estimate, estimate_table
    from training.dataset.estimate import default_targets

    targets = default_targets(openai_usd_per_1m_tokens=settings.openai_training_usd_per_1m_tokens)
    console.print(
        estimate_table(estimate(build, token_counter=counter, targets=targets, epochs=epochs))
    )


@app.command()
def scrub(
    paths: Annotated[
        list[Path], typer.Argument(help="Exports to scrub (any format `parse` reads).")
    ],
    persona: Annotated[
        list[str] | None,
        typer.Option("--persona", "-p", help="Names to keep (the persona); repeat for more."),
    ] = None,
    mode: Annotated[
        ScrubMode | None, typer.Option(help="Override the settings' scrub mode.")
    ] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Print only the counts, no messages.")
    ] = False,
) -> None:
    """Write the exports' messages with private data scrubbed (JSON Lines), then the counts."""
    from style.parse import load_chats

    settings = Settings()
    try:
        messages = [
            m
            for path in paths
            for chat in load_chats(path, limits=settings.export_limits())
            for m in chat.messages
        ]
        scrubber = export_scrubber(settings, messages, keep_names=persona or (), mode=mode)
        scrubbed = scrubber.scrub_messages(messages)
        if report_only:
            deque(scrubbed, maxlen=0)
        else:
            _write_jsonl(scrubbed)
    except StyleError as exc:
        raise fail(exc) from exc
    err.print_json(scrubber.report.to_json())


@app.command()
def sample(
    directory: Annotated[Path, typer.Argument(help="Folder to write the sample export into.")],
    seed: Annotated[int, typer.Option(help="Random seed; the bundled files use 7.")] = 7,
    scale: Annotated[float, typer.Option(help="Multiply the number of conversations.")] = 1.0,
) -> None:
    """Write the fictional sample export (WhatsApp Android + iOS chats) into DIRECTORY."""
    from style.sample import write_sample

    for written in write_sample(directory, seed=seed, scale=scale):
        typer.echo(str(written))
