"""Show a style profile: `profile.json` plus a self-contained `report.html`, and a terminal table.

Charts are drawn with matplotlib's Agg canvas (no pyplot, no global backend switch) and
embedded as base64 PNG data URIs, so the HTML file stands alone. matplotlib is imported
inside the functions that draw, so importing this module costs nothing.

Emoji are drawn in a chart only when an installed font has a glyph for every one of them
(matplotlib cannot draw colour emoji fonts or join ZWJ sequences); otherwise they are listed
in an HTML table, where the browser draws them.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from style.profile.model import Distribution, Form, Histogram, Profile, Term

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ACCENT",
    "html_figure",
    "html_page",
    "html_section",
    "png_data_uri",
    "render_html",
    "summary_table",
    "write_report",
]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ACCENT = "#2a7ab0"
"""The colour of headings' rules and single-series charts."""
DPI = 100
PAGE_CSS = f"""\
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 64rem; color: #222;
       padding: 0 1rem; }}
h1 {{ margin-bottom: 0.2rem; }}
h2 {{ border-bottom: 2px solid {ACCENT}; padding-bottom: 0.2rem; margin-top: 2.5rem; }}
table {{ border-collapse: collapse; margin: 0.8rem 0 1.5rem; }}
th, td {{ padding: 0.25rem 0.8rem; text-align: left; border-bottom: 1px solid #ddd; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
figure {{ margin: 1rem 0; }}
figure img {{ max-width: 100%; height: auto; }}
figcaption {{ color: #555; font-size: 0.9rem; }}
.meta {{ color: #666; }}
"""
"""The reports' shared style sheet."""


def write_report(profile: Profile, directory: str | Path) -> Path:
    """Write `profile.json` and `report.html` into `directory`; returns the HTML path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.json").write_text(profile.to_json() + "\n", encoding="utf-8")
    page = folder / "report.html"
    page.write_text(render_html(profile), encoding="utf-8")
    return page


def summary_table(profile: Profile) -> Table:
    """A short terminal summary of the profile's headline numbers (print it with rich)."""
    # Text, not str: chat words like "[PHONE]" or "[b]" must not be read as rich markup.
    title = Text(f"Style profile: {profile.persona}", style="italic")
    table = Table(title=title, show_header=False, box=None)
    table.add_column("measure", style="bold")
    table.add_column("value")
    for label, value in _headlines(profile):
        table.add_row(label, Text(value))
    if profile.warnings:
        table.add_row("warnings", Text("\n".join(profile.warnings)), style="yellow")
    return table


def render_html(profile: Profile) -> str:
    """The whole report as one HTML document (charts inlined as PNG data URIs)."""
    figures = _figures(profile)
    sections = [
        html_section("At a glance", _rows_table(_headlines(profile))),
        html_section("Warnings", _list(profile.warnings)) if profile.warnings else "",
        html_section("When", figures["activity"] + figures["latency"] + figures["gaps"]),
        html_section("How long", figures["length"] + figures["bursts"]),
        html_section(
            "Words",
            figures["signature"]
            + _side_by_side(
                _terms_table("Signature words", profile.lexicon.signature_words),
                _terms_table("Signature phrases", profile.lexicon.signature_phrases),
                _terms_table("Words the persona avoids", profile.lexicon.avoided_words),
            )
            + _side_by_side(
                _forms_table("Greetings", profile.lexicon.greetings),
                _forms_table("Sign-offs", profile.lexicon.sign_offs),
                _forms_table("Laughter", profile.lexicon.laughter.forms),
                _forms_table("Stretched words", profile.lexicon.elongation.forms),
                _forms_table("Abbreviations and slang", profile.lexicon.abbreviations.forms),
            ),
        ),
        html_section("Emoji", figures["emoji"] + _forms_table("Top emoji", profile.emoji.top)),
        html_section("Typography and tone", _rows_table(_typography_rows(profile))),
        html_section("Conversation flow", _rows_table(_flow_rows(profile))),
        html_section("Sources", _sources_table(profile)),
    ]
    return html_page(
        f"Style profile: {profile.persona}",
        f"""<p class="meta">Profile version {profile.version}; {len(profile.sources)} chat(s);
{profile.counts.messages:,} messages by {html.escape(profile.persona)}.</p>
{"".join(sections)}""",
        css=".tables { display: flex; flex-wrap: wrap; gap: 0 2rem; }\n",
    )


# --- numbers -----------------------------------------------------------------------------


def _headlines(profile: Profile) -> list[tuple[str, str]]:
    c, length, timing, lex, emoji = (
        profile.counts,
        profile.length,
        profile.timing,
        profile.lexicon,
        profile.emoji,
    )
    seg, typo = profile.conversations, profile.typography
    top_words = ", ".join(t.term for t in lex.signature_words[:8]) or "-"
    top_phrases = ", ".join(t.term for t in lex.signature_phrases[:5]) or "-"
    laughs = ", ".join(f.form for f in lex.laughter.forms[:3]) or "-"
    busiest = sorted(range(24), key=lambda h: -timing.hours[h])[:3]
    return [
        ("messages", f"{c.messages:,} ({c.text:,} text, media {_pct(c.media_share)})"),
        (
            "conversations",
            f"{profile.flow.conversations:,} (gap {_duration(seg.gap_s)}, {seg.method}); "
            f"starts {_pct(profile.flow.started_share)}",
        ),
        (
            "message length",
            f"median {_num(length.chars.median)} chars, {_num(length.words.median)} words",
        ),
        (
            "bursts",
            f"mean {_num(length.burst_size.mean)} messages; "
            f"{_pct(length.multi_message_share)} of turns are bursts; "
            f"pause median {_duration(length.burst_gap_s.median)}",
        ),
        (
            "reply latency",
            f"median {_duration(timing.latency_s.median)}, "
            f"p90 {_duration(timing.latency_s.p90)}; "
            f"{_pct(timing.replied_within.get('1m'))} within a minute",
        ),
        (
            "active",
            f"evening {_pct(timing.part_of_day.get('evening'))}; busiest hours "
            + ", ".join(f"{h:02d}h" for h in busiest),
        ),
        (
            "typing speed",
            f"{_num(timing.typing.chars_per_second)} chars/s ({timing.typing.pairs:,} pairs)",
        ),
        ("signature words", top_words),
        ("signature phrases", top_phrases),
        ("laughter", f"{_num(lex.laughter.per_message)} per message ({laughs})"),
        (
            "emoji",
            f"{_num(emoji.per_message)} per message; " + " ".join(f.form for f in emoji.top[:6]),
        ),
        ("lowercase starts", _pct(typo.lowercase_start)),
        ("formality", f"{_num(typo.formality)} (0 chatty, 1 formal)"),
        ("languages", ", ".join(f"{k} {_pct(v)}" for k, v in typo.languages.items()) or "-"),
        ("vocabulary (MATTR)", f"{_num(lex.richness.mattr)} over {lex.richness.window} tokens"),
    ]


def _typography_rows(profile: Profile) -> list[tuple[str, str]]:
    t = profile.typography
    rows = [
        ("lowercase starts", _pct(t.lowercase_start)),
        ("capitalised starts", _pct(t.capitalised_start)),
        ("ALL CAPS messages", _pct(t.all_caps)),
        ("messages with a question mark", _pct(t.question)),
        ("messages with !!", _pct(t.multi_exclamation)),
        ("messages with ??", _pct(t.multi_question)),
        ("messages with an ellipsis", _pct(t.ellipsis)),
    ]
    rows += [(f"ends with: {name}", _pct(value)) for name, value in t.ending.items()]
    rows.append(("formality", _num(t.formality)))
    rows += [(f"formality: {name}", _num(value)) for name, value in t.formality_parts.items()]
    rows += [(f"language: {code}", _pct(value)) for code, value in t.languages.items()]
    emoji = profile.emoji
    rows += [(f"emoji position: {k}", _pct(v)) for k, v in emoji.position.items()]
    rows.append(("emoji repeated (😂😂)", _pct(emoji.repeated_share)))
    rows += [(f"skin tone: {k}", str(v)) for k, v in emoji.skin_tones.items() if v]
    return rows


def _flow_rows(profile: Profile) -> list[tuple[str, str]]:
    f = profile.flow
    return [
        ("conversations with the persona", f"{f.conversations:,}"),
        ("started by the persona", _pct(f.started_share)),
        ("persona has the last word", _pct(f.last_word_share)),
        ("turns per conversation", f"median {_num(f.turns.median)}, mean {_num(f.turns.mean)}"),
        ("conversation length", f"median {_duration(f.duration_s.median)}"),
        ("questions answered directly", _pct(f.answer_rate)),
        (
            "after a question",
            f"{f.after_question.turns:,} turns; latency "
            f"{_duration(f.after_question.latency_s.median)}, "
            f"{_num(f.after_question.chars.median)} chars",
        ),
        (
            "otherwise",
            f"{f.otherwise.turns:,} turns; latency {_duration(f.otherwise.latency_s.median)}, "
            f"{_num(f.otherwise.chars.median)} chars",
        ),
    ]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() or abs(value) >= 10:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- HTML pieces -------------------------------------------------------------------------


def html_page(title: str, body: str, *, css: str = "") -> str:
    """A self-contained HTML document: `title` as its heading, then `body`; `css` adds rules."""
    title = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{PAGE_CSS}{css}</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def html_section(title: str, body: str) -> str:
    """A titled section of a report page."""
    return f"<section>\n<h2>{html.escape(title)}</h2>\n{body}\n</section>\n"


def _list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in items) + "</ul>"


def _side_by_side(*tables: str) -> str:
    return '<div class="tables">' + "".join(f"<div>{t}</div>" for t in tables if t) + "</div>"


def _rows_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f"<table>{body}</table>"


def _terms_table(title: str, terms: Sequence[Term]) -> str:
    if not terms:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(t.term)}</td><td class=num>{t.count:,}</td>"
        f"<td class=num>{t.others:,}</td><td class=num>{t.z:.2f}</td></tr>"
        for t in terms
    )
    return (
        f"<h3>{html.escape(title)}</h3><table><tr><th>term</th><th>persona</th>"
        f"<th>others</th><th>z</th></tr>{rows}</table>"
    )


def _forms_table(title: str, forms: Sequence[Form]) -> str:
    if not forms:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(f.form)}</td><td class=num>{f.count:,}</td></tr>" for f in forms
    )
    return f"<h3>{html.escape(title)}</h3><table><tr><th>form</th><th>count</th></tr>{rows}</table>"


def _sources_table(profile: Profile) -> str:
    rows = "".join(
        f"<tr><td><code>{s.sha256[:16]}</code></td><td>{html.escape(s.dialect)}</td>"
        f"<td class=num>{s.messages:,}</td><td class=num>{s.persona_messages:,}</td>"
        f"<td class=num>{s.participants}</td><td>{s.first or '-'} .. {s.last or '-'}</td>"
        f"<td class=num>{s.resolution_s} s</td></tr>"
        for s in profile.sources
    )
    return (
        "<table><tr><th>sha256</th><th>format</th><th>messages</th><th>persona</th>"
        f"<th>people</th><th>dates</th><th>clock</th></tr>{rows}</table>"
    )


def html_figure(uri: str | None, caption: str) -> str:
    """A chart with its caption, or a line saying there was too little data to draw it."""
    if uri is None:
        return f"<p class=meta>{html.escape(caption)}: not enough data for a chart.</p>"
    return (
        f'<figure><img src="{uri}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


# --- charts ------------------------------------------------------------------------------


def _figures(profile: Profile) -> dict[str, str]:
    emoji_uri = _emoji_chart(profile.emoji.top[:12])
    return {
        "activity": html_figure(_activity_chart(profile), "Messages by weekday and hour"),
        "latency": html_figure(
            _histogram_chart(profile.timing.latency_s, "seconds (log scale)", "replies"),
            "Reply latency",
        ),
        "gaps": html_figure(
            _gap_chart(profile), "Silences between messages and the conversation gap"
        ),
        "length": html_figure(
            _histogram_chart(profile.length.chars, "characters", "messages"), "Message length"
        ),
        "bursts": html_figure(
            _histogram_chart(profile.length.burst_size, "messages in a turn", "turns"),
            "Burst sizes",
        ),
        "signature": html_figure(
            _signature_chart(profile), "Signature words and phrases (z-score)"
        ),
        "emoji": "" if emoji_uri is None else html_figure(emoji_uri, "Top emoji"),
    }


def png_data_uri(draw: Callable[[Figure], None], size: tuple[float, float] = (8.0, 3.6)) -> str:
    """A figure of `size` inches that `draw` fills, as a base64 PNG data URI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _activity_chart(profile: Profile) -> str | None:
    activity = profile.timing.activity
    if not any(any(row) for row in activity):
        return None

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        image = ax.imshow(activity, aspect="auto", cmap="Blues", interpolation="nearest")
        ax.set_yticks(range(7), WEEKDAYS)
        ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
        ax.set_xlabel("hour of day")
        figure.colorbar(image, ax=ax, label="messages")

    return png_data_uri(draw)


def _histogram_chart(dist: Distribution, xlabel: str, ylabel: str) -> str | None:
    histogram = dist.histogram
    if histogram is None or not dist.count or not any(histogram.counts):
        return None

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        _bars(ax, histogram)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if dist.median is not None:
            ax.axvline(dist.median, color="#c0392b", linestyle="--", label="median")
            ax.legend(frameon=False)

    return png_data_uri(draw)


def _bars(ax: Any, histogram: Histogram, color: str = ACCENT) -> None:
    edges, counts = histogram.edges, histogram.counts
    widths = [b - a for a, b in pairwise(edges)]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color=color, edgecolor="white")
    if histogram.log:
        ax.set_xscale("log")
    used = [i for i, count in enumerate(counts) if count]
    if used:  # zoom on the occupied bins, with one empty bin of margin
        ax.set_xlim(edges[max(used[0] - 1, 0)], edges[min(used[-1] + 2, len(edges) - 1)])


def _gap_chart(profile: Profile) -> str | None:
    seg = profile.conversations
    if not any(seg.histogram.counts):
        return None

    def draw(figure: Figure) -> None:
        ax = figure.subplots()
        _bars(ax, seg.histogram, color="#7f8c8d")
        ax.axvline(seg.gap_s, color="#c0392b", label=f"gap {_duration(seg.gap_s)} ({seg.method})")
        ax.set_xlabel("seconds between consecutive messages (log scale)")
        ax.set_ylabel("silences")
        ax.legend(frameon=False)

    return png_data_uri(draw)


def _signature_chart(profile: Profile) -> str | None:
    words = profile.lexicon.signature_words[:15]
    phrases = profile.lexicon.signature_phrases[:15]
    labels = [t.term for t in words + phrases]
    if not labels or not _drawable("".join(labels)):
        return None

    def draw(figure: Figure) -> None:
        axes = figure.subplots(1, 2)
        for ax, terms, title in ((axes[0], words, "words"), (axes[1], phrases, "phrases")):
            ax.barh(range(len(terms)), [t.z for t in terms], color=ACCENT)
            ax.set_yticks(range(len(terms)), [t.term for t in terms])
            ax.invert_yaxis()
            ax.set_title(title)
            ax.set_xlabel("z (log-odds, informative prior)")

    return png_data_uri(draw, size=(9.0, 5.0))


def _emoji_chart(top: Sequence[Form]) -> str | None:
    """A bar chart of the top emoji, or None when no installed font can draw them all."""
    if not top:
        return None
    labels = [form.form.replace("\ufe0f", "") for form in top]
    if any(len(label) != 1 for label in labels):
        return None  # ZWJ sequences, flags, keycaps: matplotlib would draw the parts
    font = _font_with("".join(labels))
    if font is None:
        return None

    def draw(figure: Figure) -> None:
        from matplotlib.font_manager import FontProperties

        ax = figure.subplots()
        ax.bar(range(len(top)), [f.count for f in top], color=ACCENT)
        ax.set_xticks(range(len(top)), labels, fontproperties=FontProperties(fname=font, size=16))
        ax.set_ylabel("times used")

    return png_data_uri(draw)


def _drawable(text: str) -> bool:
    """Whether matplotlib's default font has a glyph for every character of `text`."""
    from matplotlib import font_manager

    path = font_manager.findfont(font_manager.FontProperties())
    return set(map(ord, text.replace(" ", ""))) <= _charmap(path)


def _font_with(text: str) -> str | None:
    """An installed font file with a glyph for every character of `text`, if any."""
    from matplotlib import font_manager

    wanted = set(map(ord, text))
    default = font_manager.findfont(font_manager.FontProperties())
    candidates = [default, *sorted({entry.fname for entry in font_manager.fontManager.ttflist})]
    for path in candidates:
        if "lastresort" in Path(path).name.lower():
            continue  # draws a placeholder box for every code point
        if wanted <= _charmap(path):
            return path
    return None


@functools.cache
def _charmap(path: str) -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):
        return frozenset()
