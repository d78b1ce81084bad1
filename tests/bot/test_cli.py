"""The `wa-persona` command: JSON Lines out, readable summaries, clean errors, fast help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from bot.cli import app

runner = CliRunner()

CHAT = (
    "[12/03/2024, 21:04:05] Maya: hii 😂\n"
    "[12/03/2024, 21:04:09] Maya: wait\n"
    "two lines\n"
    "[12/03/2024, 21:05:00] Sam: \u200eimage omitted\n"
    "[12/03/2024, 21:06:00] Sam: sure <This message was edited>\n"
)


def _export(tmp_path: Path, text: str = CHAT) -> Path:
    path = tmp_path / "_chat.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_parse_writes_one_json_object_per_message(tmp_path: Path) -> None:
    result = runner.invoke(app, ["parse", str(_export(tmp_path))])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0] == {
        "ts": "2024-03-12T21:04:05",
        "author": "Maya",
        "text": "hii 😂",
        "kind": "text",
        "edited": False,
        "media": None,
        "line": 1,
    }
    assert records[1]["text"] == "wait\ntwo lines"
    assert (records[2]["kind"], records[2]["text"], records[2]["media"]) == (
        "media",
        "",
        {"type": "image", "omitted": True},
    )
    assert (records[3]["text"], records[3]["edited"]) == ("sure", True)


def test_parse_summary_shows_dialect_counts_and_dates(tmp_path: Path) -> None:
    result = runner.invoke(app, ["parse", str(_export(tmp_path)), "--summary"])
    assert result.exit_code == 0, result.output
    assert "iOS [D/M/Y, 24h:MM:SS]" in result.stdout
    assert "2024-03-12 21:04 → 2024-03-12 21:06" in result.stdout
    assert "Maya" in result.stdout and "Sam" in result.stdout


def test_parse_summary_counts_unparsed_lines(tmp_path: Path) -> None:
    path = _export(tmp_path, "junk first\n" + CHAT)
    result = runner.invoke(app, ["parse", str(path), "--summary"])
    assert "unparsed kept as text: 1 (first at line 1)" in result.stdout


def test_parse_without_a_path_reads_the_bundled_sample() -> None:
    result = runner.invoke(app, ["parse", "--summary"])
    assert result.exit_code == 0, result.output
    assert "Maya" in result.stdout
    assert "WhatsApp Chat with Sam.txt" in result.stdout


def test_parse_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n", encoding="utf-8")
    result = runner.invoke(app, ["parse", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {path}: no WhatsApp message header found; is this a chat export?"
    ]


def test_parse_over_max_size_exits_2(tmp_path: Path) -> None:
    path = _export(tmp_path, CHAT * 20000)
    result = runner.invoke(app, ["parse", str(path), "--max-size-mb", "1"])
    assert result.exit_code == 2
    assert "over the 1.0 MB limit" in result.stderr


def test_every_command_has_help() -> None:
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert command.help, f"{name} has no help text"


def test_help_does_not_import_the_ml_stack() -> None:
    code = (
        "import sys\n"
        "from bot.cli import main\n"
        "sys.argv = ['wa-persona', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("wa-persona")
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "parse" in out.stdout


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    import zipfile

    files = {
        "empty": b"",
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200),
        "not_a_chat": b"just some notes\nand more\n",
        "undecodable": "01/02/2024, 10:00 - a: caf\u00e9\n".encode("latin-1"),
        "bad_json": b'{"messages": [',
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_bytes(data)
    for name, entries in {
        "zip_without_chat": {"IMG-1.jpg": b"x"},
        "zip_slip": {"_chat.txt": CHAT, "../../etc/cron.d/x": "x"},
        "zip_bomb": {"_chat.txt": CHAT, "pad.bin": b"\x00" * (4 << 20)},
    }.items():
        paths[name] = tmp_path / f"{name}.zip"
        with zipfile.ZipFile(paths[name], "w", zipfile.ZIP_DEFLATED) as archive:
            for member, data in entries.items():
                archive.writestr(member, data)
    paths["missing"] = tmp_path / "missing.txt"
    paths["folder"] = tmp_path
    return paths


def test_every_kind_of_bad_input_exits_2_with_one_line_naming_the_file(tmp_path: Path) -> None:
    for name, path in _bad_inputs(tmp_path).items():
        result = runner.invoke(app, ["parse", str(path)])
        assert result.exit_code == 2, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, lines)
        assert lines[0].startswith(f"Error: {path}"), (name, lines)
        assert "Traceback" not in result.output


def test_scrub_redacts_private_data_and_prints_counts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(tmp_path / "data"))
    path = _export(
        tmp_path,
        "[12/03/2024, 21:04:05] Maya: call me on +44 7700 900123 or maya@example.com\n"
        "[12/03/2024, 21:05:00] Sam: ok Maya\n",
    )
    result = runner.invoke(app, ["scrub", str(path), "--persona", "Maya"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["text"] == "call me on [PHONE] or [EMAIL]"
    assert records[1]["text"] == "ok Maya"
    report = json.loads(result.stderr)
    assert report["found"]["phone"] == 1
    assert "7700" not in result.stderr


def test_scrub_pseudonymizes_with_a_private_salt_made_once(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(data))
    path = _export(
        tmp_path, "[12/03/2024, 21:04:05] Sam: hi Maya\n[12/03/2024, 21:05:00] Maya: yo\n"
    )
    first = runner.invoke(app, ["scrub", str(path), "--mode", "pseudonymize"])
    second = runner.invoke(app, ["scrub", str(path), "--mode", "pseudonymize"])
    assert first.stdout == second.stdout
    assert "Maya" not in json.loads(first.stdout.splitlines()[0])["text"]
    salt = data / "scrub.salt"
    assert salt.stat().st_mode & 0o077 == 0
    assert len(salt.read_text()) == 32


def test_scrub_bad_input_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scrub", str(tmp_path / "missing.txt")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_profile_prints_json_and_a_summary() -> None:
    from style.sample import sample_paths

    result = runner.invoke(app, ["profile", *map(str, sample_paths()), "--persona", "Maya"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["persona"] == "Maya"
    assert profile["counts"]["messages"] > 5000
    assert "Style profile: Maya" in result.stderr


def test_profile_report_writes_json_and_html(tmp_path: Path) -> None:
    from style.sample import sample_paths

    out = tmp_path / "report"
    args = ["profile", str(sample_paths()[0]), "--persona", "Maya", "--report", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "profile.json").is_file()
    assert "<img" in (out / "report.html").read_text(encoding="utf-8")


def test_profile_unknown_persona_exits_2_listing_participants(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profile", str(_export(tmp_path)), "--persona", "Nobody"])
    assert result.exit_code == 2
    assert "Maya" in result.stderr and "Sam" in result.stderr


def test_dataset_writes_every_format_and_a_card(tmp_path: Path, monkeypatch) -> None:
    from style.sample import sample_paths

    monkeypatch.setenv("WA_PERSONA_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "ds"
    args = ["dataset", *map(str, sample_paths()), "--persona", "Maya", "-o", str(out)]
    result = runner.invoke(app, [*args, "--set", "eval_share=0.2", "--estimate"])
    assert result.exit_code == 0, result.output
    for name in ("train.jsonl", "eval.jsonl", "openai_train.jsonl", "sharegpt_train.json"):
        assert (out / name).stat().st_size > 0
    card = json.loads((out / "dataset_card.json").read_text(encoding="utf-8"))
    assert card["settings"]["eval_share"] == 0.2
    first = json.loads((out / "train.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert [m["role"] for m in first["messages"]][:2] == ["system", "user"]
    assert "OpenAI" in result.stdout


def test_dataset_unknown_setting_exits_2(tmp_path: Path) -> None:
    args = ["dataset", str(_export(tmp_path)), "--persona", "Maya", "-o", str(tmp_path / "o")]
    result = runner.invoke(app, [*args, "--set", "bogus=1"])
    assert result.exit_code == 2
    assert "unknown dataset setting(s) bogus" in result.stderr


def test_error_text_with_brackets_is_printed_as_is(tmp_path: Path) -> None:
    path = tmp_path / "[bold]chat[red].txt"
    path.write_text("no chat here\n", encoding="utf-8")
    result = runner.invoke(app, ["parse", str(path)])
    assert result.exit_code == 2
    assert "[bold]chat[red].txt" in result.stderr


def test_summary_prints_bracketed_paths_and_authors_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "[red]chat.txt"
    path.write_text("[12/03/2024, 21:04:05] [b]Maya: hi\n", encoding="utf-8")
    result = runner.invoke(app, ["parse", str(path), "--summary"])
    assert result.exit_code == 0, result.output
    assert "[red]chat.txt" in result.stdout
    assert "[b]Maya" in result.stdout
