"""The HTML report and terminal summary: real PNG charts, escaped text, JSON that round-trips."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
import warnings
from datetime import datetime, timedelta

import numpy as np
import pytest
from matplotlib import image
from rich.console import Console
from rich.table import Table

from style.messages import Chat, Message
from style.parse import load_chats
from style.profile import Form, Profile, build_profile
from style.report import render_html, summary_table, write_report
from style.sample import sample_paths

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"')
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def maya() -> Profile:
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    return build_profile(chats, "Maya")


@pytest.fixture(scope="module")
def written(maya, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = write_report(maya, folder)
    return page, caught


def images(page: str) -> dict[str, np.ndarray]:
    found = {}
    for data, alt in IMG.findall(page):
        raw = base64.b64decode(data, validate=True)
        assert raw.startswith(PNG_MAGIC), alt
        assert len(raw) > 5000, alt
        found[alt] = image.imread(io.BytesIO(raw), format="png")
    return found


def test_report_writes_both_files(written):
    page, _ = written
    assert page.name == "report.html"
    assert (page.parent / "profile.json").is_file()


def test_profile_json_round_trips(written, maya):
    page, _ = written
    assert Profile.from_json((page.parent / "profile.json").read_text("utf-8")) == maya


def test_every_chart_is_a_real_picture(written):
    page, _ = written
    charts = images(page.read_text("utf-8"))
    assert set(charts) == {
        "Messages by weekday and hour",
        "Reply latency",
        "Silences between messages and the conversation gap",
        "Message length",
        "Burst sizes",
        "Signature words and phrases (z-score)",
    }
    for alt, pixels in charts.items():
        height, width = pixels.shape[:2]
        assert height >= 300 and width >= 700, alt
        assert float(pixels[..., :3].std()) > 0.05, alt  # not one flat colour


def test_report_is_self_contained(written):
    page = written[0].read_text("utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page


def test_drawing_is_silent(written):
    _, caught = written
    assert [str(w.message) for w in caught] == []


def test_colour_emoji_go_in_a_table(written):
    page = written[0].read_text("utf-8")
    assert "Top emoji" in page and "<td>😂</td>" in page
    assert 'alt="Top emoji"' not in page  # no installed font draws 😂 in matplotlib


def test_emoji_a_font_can_draw_get_a_chart(maya):
    drawable = [Form("❤️", 12), Form("☺️", 5)]  # DejaVu Sans ships with matplotlib
    profile = dataclasses.replace(maya, emoji=dataclasses.replace(maya.emoji, top=drawable))
    charts = images(render_html(profile))
    assert "Top emoji" in charts


def test_report_shows_signature_terms_and_sources(written, maya):
    page = written[0].read_text("utf-8")
    assert "<td>no bc</td>" in page
    assert maya.sources[0].sha256[:16] in page


def test_persona_names_are_escaped():
    start = datetime(2024, 1, 1, 20, 0, 0)
    messages = [
        Message(start + timedelta(minutes=3 * i, seconds=i), author, words)
        for i, (author, words) in enumerate([("<b>x</b>", "hey"), ("O", "Hi.")] * 30)
    ]
    profile = build_profile(Chat("t", "t", messages, []), "<b>x</b>", min_messages=1)
    page = render_html(profile)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_an_empty_chart_is_replaced_by_a_note():
    start = datetime(2024, 1, 1, 20, 0, 0)
    messages = [Message(start + timedelta(hours=5 * i), "P", "hello there") for i in range(5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profile = build_profile(Chat("t", "t", messages, ["P"]), "P")
    page = render_html(profile)
    assert "Reply latency: not enough data for a chart." in page


def test_summary_table_lists_the_headlines(maya):
    table = summary_table(maya)
    assert isinstance(table, Table)
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "Style profile: Maya" in text
    for label in ("signature words", "reply latency", "emoji", "formality"):
        assert label in text
    assert "u, im" in text
