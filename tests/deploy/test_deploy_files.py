"""The deployment files: images, compose, systemd units; and the commands they run exist.

The lints that need real tools (hadolint, docker compose, systemd-analyze) run through
deploy/check.sh and are skipped when the tool is not installed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from bot.cli import app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"


def _command(*argv: str) -> Any:
    """The command `wa-persona argv...` resolves to (groups followed)."""
    command = typer.main.get_command(app)
    for word in argv:
        commands = getattr(command, "commands", None)
        assert commands is not None, f"{word}: `{command.name}` has no subcommands"
        assert word in commands, f"`wa-persona {' '.join(argv)}`: no command {word!r}"
        command = commands[word]
    return command


def _check_invocation(argv: list[str]) -> None:
    """`wa-persona argv` names a real command, and every --option it passes is one of its own."""
    path = []
    command = _command()
    while getattr(command, "commands", None) is not None:
        path.append(argv[len(path)])
        command = _command(*path)
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    used = [word.split("=")[0] for word in argv[len(path) :] if word.startswith("--")]
    assert set(used) <= options, f"{argv}: unknown options {set(used) - options}"


# --- Dockerfiles ---------------------------------------------------------------------------


def _stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """Instructions per build stage, as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_image_runs_as_a_user_with_a_healthcheck_and_the_serve_command(name: str) -> None:
    stages = _stages(DEPLOY / name)
    final = dict(stages[-1])

    assert len(stages) == 2  # build stage + runtime
    assert final["USER"].split(":")[0] not in ("root", "0")
    assert json.loads(final["ENTRYPOINT"]) == ["wa-persona"]
    assert json.loads(final["CMD"]) == ["serve"]
    _check_invocation(json.loads(final["CMD"]))
    assert final["VOLUME"] == '["/data"]' and "WA_PERSONA_DATA_DIR=/data" in final["ENV"]
    assert final["EXPOSE"] == "8080"
    health = final["HEALTHCHECK"]
    assert "--interval=" in health and "--timeout=" in health
    argv = json.loads(health.partition("CMD ")[2])
    assert argv[0] == "wa-persona"
    _check_invocation(argv[1:])


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_the_compiler_stays_in_the_build_stage(name: str) -> None:
    build, final = _stages(DEPLOY / name)

    assert any("gcc" in args for word, args in build if word == "RUN")
    assert not any("gcc" in args for word, args in final if word == "RUN")
    assert any("--from=build" in args for word, args in final if word == "COPY")


def test_gpu_image_installs_cuda_torch_first_then_the_gpu_extra() -> None:
    build, _ = _stages(DEPLOY / "Dockerfile.gpu")
    runs = [args for word, args in build if word == "RUN"]
    torch = next(i for i, args in enumerate(runs) if "torch==" in args)
    extra = next(i for i, args in enumerate(runs) if '".[gpu]"' in args)
    pinned = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    train = pinned["project"]["optional-dependencies"]["train"]

    assert torch < extra
    assert "--index-url" in runs[torch]
    assert re.search(r"torch==[\d.]+", runs[torch]).group(0) in train  # type: ignore[union-attr]


def test_the_image_command_is_the_declared_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert project["scripts"]["wa-persona"] == "bot.cli:main"
    import bot.cli

    assert callable(bot.cli.main)
    _command("serve")


def test_the_build_context_leaves_out_private_files() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    assert lines[0] == "*"  # everything is excluded unless named
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert included == {"pyproject.toml", "setup.py", "README.md", "style", "training", "bot"}


# --- compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, object]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def test_compose_bot_service(compose: dict) -> None:  # type: ignore[type-arg]
    bot = compose["services"]["bot"]

    assert "profiles" not in bot  # always on
    assert bot["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert bot["env_file"] == ".env"
    assert "data:/data" in bot["volumes"]
    assert bot["restart"] == "unless-stopped"
    assert any(str(port).endswith(":8080") and "127.0.0.1:" in port for port in bot["ports"])
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]
    assert bot["healthcheck"]["test"][:2] == ["CMD", "wa-persona"]
    _check_invocation(bot["healthcheck"]["test"][2:])
    _check_invocation(bot["command"])
    assert set(compose["volumes"]) >= {"data"}


def test_compose_vllm_serves_the_adapters_read_only_on_a_gpu(compose: dict) -> None:  # type: ignore[type-arg]
    vllm = compose["services"]["vllm"]
    argv = shlex.split(vllm["command"])

    assert vllm["profiles"] == ["gpu"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    for flag in ("--enable-lora", "--max-loras", "--max-lora-rank", "--lora-modules"):
        assert flag in argv
    assert argv[argv.index("--port") + 1] == "8000"
    assert any(volume.endswith(":/adapters:ro") for volume in vllm["volumes"])
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "VLLM_API_KEY" in vllm["environment"]


def test_compose_train_service_runs_a_real_train_command(compose: dict) -> None:  # type: ignore[type-arg]
    train = compose["services"]["train"]

    assert train["profiles"] == ["train"]
    assert train["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    assert "data:/data" in train["volumes"]
    _check_invocation(train["command"])
    header = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    example = re.search(r"run --rm train \\\n#\s+(train .*)", header)
    assert example is not None
    _check_invocation(shlex.split(example.group(1)))


def test_compose_names_the_backend_endpoint_as_the_docs_do(compose: dict) -> None:  # type: ignore[type-arg]
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    line = re.search(r"wa-persona models import .*\n.*--activate", text)

    assert line is not None and "--endpoint http://vllm:8000/v1" in line.group(0)
    argv = shlex.split(re.sub(r"\\\n#\s+", " ", line.group(0)))
    _check_invocation(argv[argv.index("models") :])


# --- systemd -------------------------------------------------------------------------------


def _unit(name: str) -> dict[str, list[str]]:
    """key -> every value it is given (units repeat keys), continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (UNITS / name).read_text(encoding="utf-8"))
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "UMask": "0077",
}


@pytest.mark.parametrize("name", ["wa-persona.service", "wa-persona-train@.service"])
def test_units_are_hardened(name: str) -> None:
    unit = _unit(name)

    for key, value in HARDENING.items():
        assert unit.get(key) == [value], key
    assert unit["User"] == ["wa-persona"]
    assert unit["StateDirectory"] == ["wa-persona"]
    assert "WA_PERSONA_DATA_DIR=/var/lib/wa-persona" in unit["Environment"]
    assert "/var/lib/wa-persona" in unit["ReadWritePaths"][0].split()
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["RestrictAddressFamilies"][0].startswith("AF_INET AF_INET6 AF_UNIX")
    assert "/etc/wa-persona/env" in unit["EnvironmentFile"]


def test_service_unit_runs_serve_and_restarts_on_failure() -> None:
    unit = _unit("wa-persona.service")
    (exec_start,) = unit["ExecStart"]
    argv = shlex.split(exec_start)

    assert argv[0] == "/opt/wa-persona/.venv/bin/wa-persona"
    assert argv[1:] == ["serve"]
    _check_invocation(argv[1:])
    assert unit["Restart"] == ["on-failure"]
    assert unit["PrivateDevices"] == ["yes"]
    assert unit["WantedBy"] == ["multi-user.target"]


def test_train_template_runs_the_real_train_command_for_the_instance() -> None:
    unit = _unit("wa-persona-train@.service")
    (exec_start,) = unit["ExecStart"]
    argv = shlex.split(exec_start)

    assert argv[0] == "/opt/wa-persona/.venv/bin/wa-persona"
    _check_invocation(argv[1:])
    assert argv[argv.index("--dataset") + 1] == "/var/lib/wa-persona/personas/%i/dataset"
    assert argv[argv.index("--config") + 1] == "${TRAIN_CONFIG}"
    assert unit["Type"] == ["oneshot"]
    default = next(v for v in unit["Environment"] if v.startswith("TRAIN_CONFIG="))
    from training.config import list_presets

    assert default.partition("=")[2] in list_presets()


def test_train_timer_is_scheduled_and_persistent() -> None:
    timer = _unit("wa-persona-train@.timer")

    assert timer["OnCalendar"] and timer["Persistent"] == ["true"]
    assert timer["WantedBy"] == ["timers.target"]


# --- the real linters ----------------------------------------------------------------------


@pytest.mark.parametrize("section", ["hadolint", "compose", "systemd"])
def test_deploy_check(section: str) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    result = subprocess.run(
        ["bash", str(DEPLOY / "check.sh"), section],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    skipped = [line for line in output.splitlines() if line.startswith("skip:")]
    if skipped:
        pytest.skip(skipped[0])
    assert result.returncode == 0, output
    assert "ok:" in output
