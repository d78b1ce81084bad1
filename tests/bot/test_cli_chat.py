"""`wa-persona chat` on piped input, and `wa-persona persona add/list/remove`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.personas import load_persona, prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from training.registry import BackendKind, ModelStatus, Registry

ROOT = Path(__file__).resolve().parents[2]
REPLY = re.compile(r"^Maya: (.*)  \((\w+)\)$")

runner = CliRunner()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir where Maya is already prepared from the bundled sample."""
    folder = tmp_path_factory.mktemp("data")
    prepare_persona(Settings(_env_file=None, data_dir=folder), "Maya", sample_paths())  # type: ignore[call-arg]
    return folder


def env_for(data_dir: Path) -> dict[str, str]:
    """Offline settings: no remote backends, the chain the README documents."""
    return {
        "WA_PERSONA_DATA_DIR": str(data_dir),
        "WA_PERSONA_BACKENDS": '["claude", "retrieval"]',
        "WA_PERSONA_ALLOW_REMOTE_BACKENDS": "false",
        "COLUMNS": "200",
    }


def real_replies(data_dir: Path) -> set[str]:
    """Every bubble Maya really sent in the training split (what retrieval may answer)."""
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    index = load_persona(settings, "Maya").index
    return {bubble for exchange in index.exchanges for bubble in exchange.reply}


def test_piped_chat_prints_mayas_real_replies_and_exits_at_the_end_of_input(
    data_dir: Path,
) -> None:
    """The README's main job, run as a real process with a real pipe."""
    env = {**os.environ, **env_for(data_dir)}
    done = subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", "chat", "--no-typing"],
        input="hey\nhow are u\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "you: hey"
    second = lines.index("you: how are u")
    first_reply = [REPLY.match(line) for line in lines[1:second]]
    second_reply = [REPLY.match(line) for line in lines[second + 1 :]]
    assert first_reply and second_reply
    assert all(match is not None for match in first_reply + second_reply), done.stdout
    known = real_replies(data_dir)
    for match in first_reply + second_reply:
        assert match is not None
        assert match.group(2) == "retrieval"
        assert match.group(1) in known


def test_chat_commands_reset_strength_and_quit(data_dir: Path, tmp_path: Path) -> None:
    own = tmp_path / "data"
    shutil.copytree(data_dir / "personas", own / "personas")
    result = runner.invoke(
        app,
        ["chat", "--no-typing"],
        input="hey\n/strength 0.5\n/strength lots\n/reset\n/quit\nnever read\n",
        env=env_for(own),
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "(style strength 0.5)" in out
    assert "/strength takes a number from 0 to 1" in out
    assert "(conversation forgotten)" in out
    assert "never read" not in out
    settings = Settings(_env_file=None, data_dir=own)  # type: ignore[call-arg]
    assert load_persona(settings, "Maya").info.style_strength == 0.5


def test_chat_with_only_unset_backends_says_what_to_do(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["chat", "--backend", "claude"], input="hey\n", env=env_for(data_dir)
    )
    assert result.exit_code == 2
    assert "none of the backends claude is set up" in result.stderr


def test_chat_with_an_unknown_backend_lists_the_valid_ones(data_dir: Path) -> None:
    result = runner.invoke(app, ["chat", "--backend", "gpt9"], input="", env=env_for(data_dir))
    assert result.exit_code == 2
    assert (
        "unknown backend 'gpt9'; choose from base, claude, local, openai, retrieval"
        in result.stderr
    )


def test_chat_with_an_unknown_persona_says_how_to_add_it(data_dir: Path) -> None:
    result = runner.invoke(app, ["chat", "--persona", "Sam"], input="", env=env_for(data_dir))
    assert result.exit_code == 2
    assert "known personas: Maya" in result.stderr
    assert "wa-persona persona add" in result.stderr


def test_persona_add_list_and_remove(tmp_path: Path) -> None:
    env = env_for(tmp_path / "data")
    sam, group = (str(path) for path in sample_paths())

    added = runner.invoke(app, ["persona", "add", "Maya", sam, group], env=env)
    assert added.exit_code == 0, added.output
    assert "Maya:" in added.stdout and "training samples" in added.stdout

    listed = runner.invoke(app, ["persona", "list", "--json"], env=env)
    assert listed.exit_code == 0
    [info] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert info["name"] == "Maya" and info["counts"]["exchanges"] > 0
    table = runner.invoke(app, ["persona", "list"], env=env)
    assert "Maya" in table.stdout

    registry = Registry.open(tmp_path / "data" / "wa-persona.db")
    registry.create("Maya", BackendKind.OPENAI, status=ModelStatus.READY, remote_id="ft:maya")
    removed = runner.invoke(app, ["persona", "remove", "Maya", "--yes"], env=env)
    assert removed.exit_code == 0, removed.output
    assert "model versions maya-v1" in removed.stdout
    assert registry.list() == []
    empty = runner.invoke(app, ["persona", "list"], env=env)
    assert "no personas yet" in empty.stdout


def test_persona_add_with_a_wrong_name_fails_cleanly(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["persona", "add", "Zed", str(sample_paths()[0])], env=env_for(tmp_path / "data")
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: cannot prepare persona 'Zed'")


def test_persona_remove_asks_before_deleting(data_dir: Path) -> None:
    result = runner.invoke(app, ["persona", "remove", "Maya"], input="n\n", env=env_for(data_dir))
    assert result.exit_code == 1
    assert (data_dir / "personas" / "maya" / "persona.json").is_file()
