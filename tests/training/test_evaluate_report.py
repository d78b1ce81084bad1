"""The evaluation report: a private HTML page with charts and examples, a JSON of numbers."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from rich.console import Console

from training.dataset import Turn
from training.evaluate import (
    REAL,
    Discriminator,
    EvaluationRun,
    Generation,
    HeldOutTurn,
    ReportFiles,
    summary_table,
    write_report,
)

PERSONA = [
    "omg sooo good haha",
    "lol u coming tonight??",
    "im crying 😭",
    "wait what no way",
    "ngl thats so funny haha",
    "yesss omg",
    "idk tbh lol",
    "hahaha stoppp",
    "ur so right omg",
    "ok ok ok",
]
OTHERS = [
    "Good morning. I will be there at seven.",
    "Thank you, that sounds lovely.",
    "Are you free on Saturday afternoon?",
    "I have a meeting until five.",
    "See you at the station.",
    "That is a good idea. Let me check.",
    "The train was late again.",
    "I finished the report yesterday.",
    "Could you send me the address?",
    "Sounds good. Have a nice evening.",
]
REPLIES = [
    ("omg yesss", "see u at 7 ✨"),
    ("no bc thats hilarious 😂",),
    ("wait what",),
    ("im sooo tired", "<b>bed</b> now"),
    ("lol ok",),
    ("haha stoppp", "ur the best"),
]
FORMAL = [["Certainly. I shall be there at seven."], ["Thank you for letting me know."]] * 3


@pytest.fixture(scope="module")
def run() -> EvaluationRun:
    heldout = [
        HeldOutTurn(i, i + 1, "You are Maya.", (Turn("user", (f"Sam: question {i}?",)),), reply)
        for i, reply in enumerate(REPLIES)
    ]
    run = EvaluationRun(
        persona="Maya",
        heldout=heldout,
        training_replies=PERSONA,
        discriminator=Discriminator.fit(PERSONA, OTHERS, seed=0),
        signature_phrases=["omg", "no bc"],
    )
    run.add(
        "chatty", Generation([["omg haha"], ["lol ok"]] * 3, latencies_s=[0.1] * 6), kind="model"
    )
    run.add("formal", Generation(FORMAL, latencies_s=[2.0] * 6, failed=0))
    return run


@pytest.fixture(scope="module")
def written(run, tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    return write_report(run, tmp_path_factory.mktemp("report"))


def test_html_report_embeds_the_four_charts_as_data_uris(written: ReportFiles) -> None:
    page = written.html.read_text(encoding="utf-8")
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]{200,})"', page)
    assert len(images) == 4
    for caption in ("Bubble length", "Bubbles per reply", "Punctuation and case", "discriminator"):
        assert caption in page


def test_html_report_is_private_says_so_and_escapes_the_examples(written: ReportFiles) -> None:
    assert stat.S_IMODE(written.html.stat().st_mode) == 0o600
    page = written.html.read_text(encoding="utf-8")
    assert "Private:" in page and "contains message text" in page
    assert "&lt;b&gt;bed&lt;/b&gt; now" in page and "<b>bed</b>" not in page
    assert "Sam: question 0?" in page  # what she answered, next to the replies


def test_rewriting_a_report_makes_an_open_file_private_again(run, tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("old", encoding="utf-8")
    (tmp_path / "report.html").chmod(0o644)
    assert stat.S_IMODE(write_report(run, tmp_path).html.stat().st_mode) == 0o600


def test_metrics_table_highlights_the_best_system_per_metric(run, written: ReportFiles) -> None:
    page = written.html.read_text(encoding="utf-8")
    row = re.search(r"<tr><th>style score ↓</th>(.*?)</tr>", page).group(1)
    cells = re.findall(r'<td class="([^"]*)">([^<]*)</td>', row)
    assert [c[0] for c in cells] == ["num best", "num", "num real"]  # chatty, formal, real
    chatty, formal = run.result("chatty"), run.result("formal")
    assert chatty.distances.score < formal.distances.score
    latency = re.search(r"<tr><th>latency p50 \(s\) ↓</th>(.*?)</tr>", page).group(1)
    assert re.findall(r'<td class="([^"]*)">', latency)[0] == "num best"


def test_json_report_holds_numbers_only(written: ReportFiles) -> None:
    text = written.json.read_text(encoding="utf-8")
    data = json.loads(text)
    assert [s["name"] for s in data["systems"]] == ["chatty", "formal"]
    assert data["systems"][0]["kind"] == "model" and data["ceiling"]["name"] == REAL
    assert data["systems"][0]["metrics"]["latency_p50_s"] == pytest.approx(0.1)
    for reply in REPLIES:
        for bubble in reply:
            assert bubble not in text
    assert "question 0?" not in text and "omg haha" not in text


def test_terminal_summary_lists_every_system_and_the_ceiling(run) -> None:
    console = Console(width=160, record=True)
    console.print(summary_table(run))
    out = console.export_text()
    for name in ("chatty", "formal", REAL):
        assert name in out
    assert "6 held-out turns" in out
