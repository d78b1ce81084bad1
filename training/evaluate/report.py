"""Show an evaluation: `report.json` (numbers only) and a self-contained `report.html`.

The HTML report puts the systems side by side: a table of every metric with the best
system per metric highlighted, charts (bubble lengths, bubbles per turn, punctuation habits,
discriminator shares) and a few example replies next to the real one. The examples are
message text, so the page says it is private and is written readable by its owner only
(0600); `report.json` holds numbers and names only and can be shared.

Charts and the page are drawn with style/report.py's helpers: matplotlib's Agg canvas, PNGs
embedded as base64 data URIs, matplotlib imported only when drawing.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.box import SIMPLE_HEAD
from rich.table import Table
from rich.text import Text

from style.profile.lexicon import WORD_RE, clean
from style.report import ACCENT, html_figure, html_page, html_section, png_data_uri
from training.dataset.samples import CONVERSATION_START
from training.evaluate.run import REAL, EvaluationRun, SystemResult
from training.evaluate.style_distance import PUNCTUATION_FEATURES, punctuation_profile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "METRICS",
    "Metric",
    "ReportFiles",
    "render_html",
    "summary_table",
    "write_private",
    "write_report",
]

REAL_COLOUR = "#444444"
PALETTE = (ACCENT, "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d4ac0d")
EXAMPLES = 6
"""Example turns shown per report."""
MAX_BUBBLES_BIN = 5
"""Bubbles per turn from this many up share one bar."""
EVALUATION_CSS = """\
th, td { vertical-align: top; }
td.best { background: #e3f1e3; font-weight: bold; }
td.real, th.real { color: #666; }
.private { background: #fdf2e9; border-left: 4px solid #e67e22; padding: 0.5rem 1rem; }
.bubble { display: inline-block; background: #eef5fb; border-radius: 0.6rem;
          padding: 0.15rem 0.6rem; margin: 0.1rem 0; white-space: pre-wrap; }
"""
"""Rules this page adds to the reports' shared style sheet (`style.report.html_page`)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of the metrics table: how to read it off a result and which way is better."""

    label: str
    read: Callable[[SystemResult], float | None]
    better: str | None
    """"lower", "higher", or None when neither is better (it should match the person)."""
    percent: bool = False


def _part(name: str) -> Callable[[SystemResult], float | None]:
    return lambda r: r.distances.parts().get(name)


METRICS: tuple[Metric, ...] = (
    Metric("style score", lambda r: r.distances.score, "lower"),
    Metric("· length", _part("length"), "lower"),
    Metric("· bubbles per turn", _part("bubbles"), "lower"),
    Metric("· emoji", _part("emoji"), "lower"),
    Metric("· punctuation and case", _part("punctuation"), "lower"),
    Metric("· signature phrases", _part("signature"), "lower"),
    Metric("· vocabulary (JSD)", _part("vocabulary"), "lower"),
    Metric("· character n-grams", _part("char_ngrams"), "lower"),
    Metric("persona share (discriminator)", lambda r: r.persona_share, "higher", percent=True),
    Metric("distinct-2", lambda r: r.degeneration.distinct_2, None),
    Metric("self-repetition", lambda r: r.degeneration.self_repetition, "lower", percent=True),
    Metric("copied training replies", lambda r: r.degeneration.copied_replies, "lower", True),
    Metric("copied 8-word runs", lambda r: r.degeneration.copied_ngram_replies, "lower", True),
    Metric("empty replies", lambda r: r.degeneration.empty, "lower", percent=True),
    Metric("runaway replies", lambda r: r.degeneration.runaway, "lower", percent=True),
    Metric("failed replies", lambda r: r.failed / r.turns, "lower", percent=True),
    Metric("latency p50 (s)", lambda r: r.latency_p50_s, "lower"),
    Metric("latency p95 (s)", lambda r: r.latency_p95_s, "lower"),
)
"""The metrics table's rows, in order."""


@dataclass(frozen=True, slots=True)
class ReportFiles:
    """Where `write_report` wrote the report."""

    json: Path
    html: Path


def write_report(run: EvaluationRun, out_dir: Path, *, examples: int = EXAMPLES) -> ReportFiles:
    """Write `report.json` (numbers) and `report.html` (private, 0600) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = run.save(out_dir / "report.json")
    page = out_dir / "report.html"
    write_private(page, render_html(run, examples=examples))
    return ReportFiles(json=data, html=page)


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read or write (also when it existed)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def summary_table(run: EvaluationRun) -> Table:
    """The headline numbers per system for the terminal (print it with rich)."""
    table = Table(
        title=Text(f"Evaluation: {run.persona}", style="italic"), box=SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("system", no_wrap=True)
    for header in ("score↓", "share↑", "copied↓", "empty↓", "runaway↓", "p50 s", "failed"):
        table.add_column(header, justify="right", no_wrap=True)
    best = _best(run, METRICS[0])
    for row in run.rows():
        d = row.degeneration
        table.add_row(
            Text(row.name),
            Text(_number(row.distances.score), style="bold green" if row.name in best else ""),
            _percent(row.persona_share),
            _percent(d.copied_replies),
            _percent(d.empty),
            _percent(d.runaway),
            _number(row.latency_p50_s),
            "—" if row.kind == "real" else str(row.failed),
            style="dim" if row.kind == "real" else None,
        )
    table.caption = (
        f"{len(run.heldout)} held-out turns. score: style distance (0 = writes like her); "
        f"share: replies the discriminator attributes to her; {REAL}: the person herself"
        + _accuracy_note(run)
    )
    return table


def render_html(run: EvaluationRun, *, examples: int = EXAMPLES) -> str:
    """The whole report as one HTML document (charts inlined as PNG data URIs)."""
    sections = [
        html_section("Metrics", _metrics_table(run)),
        html_section(
            "Charts",
            html_figure(_length_chart(run), "Bubble length (characters), share of bubbles")
            + html_figure(_bubbles_chart(run), "Bubbles per reply, share of replies")
            + html_figure(_habits_chart(run), "Punctuation and case habits, share of bubbles")
            + html_figure(_share_chart(run), "Replies the discriminator attributes to the persona"),
        ),
        html_section("Examples", _examples(run, examples)),
    ]
    return html_page(
        f"Evaluation: {run.persona}",
        f"""<p class="private"><strong>Private:</strong> this report contains message text from the
persona's chats (the examples). Keep it to yourself; report.json beside it holds the
numbers only.</p>
<p class="meta">{run.created_at:%Y-%m-%d %H:%M} UTC; {len(run.heldout):,} held-out turns;
{len(run.systems)} system(s). "{REAL}" is the person herself, the best a model can be
expected to do: as many of her real training replies against the held-out ones (style), and
her real held-out replies (persona share, degeneration).{html.escape(_accuracy_note(run))}</p>
{"".join(sections)}""",
        css=EVALUATION_CSS,
    )


# --- the metrics table ---------------------------------------------------------------------


def _metrics_table(run: EvaluationRun) -> str:
    rows = run.rows()
    head = "".join(
        f'<th class="{"real" if r.kind == "real" else ""}">{html.escape(r.name)}</th>' for r in rows
    )
    body = []
    for metric in METRICS:
        best = _best(run, metric)
        cells = []
        for row in rows:
            value = metric.read(row)
            text = _percent(value) if metric.percent else _number(value)
            classes = ["num"]
            if row.kind == "real":
                classes.append("real")
            elif row.name in best:
                classes.append("best")
            cells.append(f'<td class="{" ".join(classes)}">{text}</td>')
        arrow = {"lower": " ↓", "higher": " ↑"}.get(metric.better or "", "")
        body.append(f"<tr><th>{html.escape(metric.label)}{arrow}</th>{''.join(cells)}</tr>")
    note = (
        "<p class=meta>↓ lower is better, ↑ higher is better; the best system per metric is "
        "highlighted (the real replies are the reference, not a contender). Style parts are "
        "0..1 distances (docs/evaluation.md).</p>"
    )
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>{note}"


def _best(run: EvaluationRun, metric: Metric) -> set[str]:
    """Names of the systems with the best value of `metric` (none with fewer than two)."""
    values = {r.name: metric.read(r) for r in run.systems}
    known = {name: v for name, v in values.items() if v is not None and np.isfinite(v)}
    if metric.better is None or len(known) < 2:
        return set()
    pick = min if metric.better == "lower" else max
    target = pick(known.values())
    return {name for name, v in known.items() if np.isclose(v, target)}


# --- charts --------------------------------------------------------------------------------


def _series(run: EvaluationRun) -> list[tuple[str, list[list[str]], str]]:
    """(name, replies, colour): the real replies first, then each system."""
    series = [(REAL, run.references, REAL_COLOUR)]
    for i, system in enumerate(run.systems):
        series.append((system.name, run.replies[system.name], PALETTE[i % len(PALETTE)]))
    return series


def _length_chart(run: EvaluationRun) -> str | None:
    series = [(name, [len(b) for r in replies for b in r], c) for name, replies, c in _series(run)]
    everything = [n for _, lengths, _ in series for n in lengths]
    if not everything:
        return None
    top = max(10.0, float(np.percentile(everything, 99)))
    edges = np.linspace(0, top, 31)

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        for name, lengths, colour in series:
            if not lengths:
                continue
            counts, _ = np.histogram(np.clip(lengths, 0, top), bins=edges)
            width = 2.5 if name == REAL else 1.5
            ax.stairs(counts / len(lengths), edges, label=name, color=colour, linewidth=width)
        ax.set_xlabel("characters per bubble")
        ax.set_ylabel("share of bubbles")
        ax.legend(frameon=False)

    return png_data_uri(draw)


def _bubbles_chart(run: EvaluationRun) -> str | None:
    series = _series(run)
    sizes = range(MAX_BUBBLES_BIN + 1)

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        width = 0.8 / len(series)
        for i, (name, replies, colour) in enumerate(series):
            counts = np.bincount(
                [min(len(r), MAX_BUBBLES_BIN) for r in replies], minlength=len(sizes)
            )
            x = np.arange(len(sizes)) + (i - (len(series) - 1) / 2) * width
            ax.bar(x, counts / max(1, len(replies)), width=width, label=name, color=colour)
        labels = [str(n) for n in sizes[:-1]] + [f"{MAX_BUBBLES_BIN}+"]
        ax.set_xticks(range(len(sizes)), labels)
        ax.set_xlabel("bubbles in a reply")
        ax.set_ylabel("share of replies")
        ax.legend(frameon=False)

    return png_data_uri(draw)


def _habits_chart(run: EvaluationRun) -> str | None:
    series = _series(run)
    shares = []
    for _, replies, _ in series:
        bubbles = [b for r in replies for b in r] or [""]
        words = [[clean(t) for t in WORD_RE.findall(b.lower())] for b in bubbles]
        shares.append(punctuation_profile(bubbles, words))

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        height = 0.8 / len(series)
        y = np.arange(len(PUNCTUATION_FEATURES))
        for i, ((name, _, colour), values) in enumerate(zip(series, shares, strict=True)):
            offset = i * height - 0.4 + height / 2
            ax.barh(y + offset, values, height=height, label=name, color=colour)
        ax.set_yticks(y, [f.replace("_", " ") for f in PUNCTUATION_FEATURES])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of bubbles")
        ax.legend(frameon=False, loc="lower right")

    return png_data_uri(draw, size=(8.0, 6.0))


def _share_chart(run: EvaluationRun) -> str | None:
    rows = [r for r in run.rows() if r.persona_share is not None]
    if not rows:
        return None
    colours = {name: colour for name, _, colour in _series(run)}

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        names = [r.name for r in rows]
        shares = [r.persona_share for r in rows]
        ax.bar(range(len(rows)), shares, color=[colours[n] for n in names])
        ax.set_xticks(range(len(rows)), names)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share attributed to the persona")
        if run.ceiling is not None and run.ceiling.persona_share is not None:
            ax.axhline(run.ceiling.persona_share, color=REAL_COLOUR, linestyle="--")

    return png_data_uri(draw, size=(8.0, 3.2))


# --- examples and HTML pieces --------------------------------------------------------------


def _examples(run: EvaluationRun, count: int) -> str:
    if count < 1:
        return "<p class=meta>No examples requested.</p>"
    picks = sorted(set(np.linspace(0, len(run.heldout) - 1, count).round().astype(int)))
    blocks = []
    for index in picks:
        turn = run.heldout[index]
        said = turn.last_user_turn.bubbles
        opener = said == (CONVERSATION_START,)
        wrote = "(the persona starts the conversation)" if opener else _bubbles(said)
        rows = [f"<tr><th>they wrote</th><td>{wrote}</td></tr>"]
        rows.append(f"<tr><th>{html.escape(REAL)}</th><td>{_bubbles(turn.reference)}</td></tr>")
        rows += [
            f"<tr><th>{html.escape(s.name)}</th><td>{_bubbles(run.replies[s.name][index])}</td></tr>"
            for s in run.systems
        ]
        blocks.append(f"<h3>Held-out turn {index + 1}</h3><table>{''.join(rows)}</table>")
    return "".join(blocks)


def _bubbles(bubbles: Sequence[str]) -> str:
    if not bubbles:
        return "<span class=meta>(no reply)</span>"
    return "<br>".join(f'<span class="bubble">{html.escape(b)}</span>' for b in bubbles)


def _accuracy_note(run: EvaluationRun) -> str:
    judge = run.discriminator
    if judge is None or judge.held_out is None:
        return ""
    return f"; discriminator balanced accuracy {judge.accuracy:.3f} on its held-out texts"


def _number(value: float | None) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"
