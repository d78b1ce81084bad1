"""Each package's `__all__` names exactly what it offers, and every name exists (as httpx)."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "style",
    "style.parse",
    "style.profile",
    "style.scrub",
    "training",
    "training.dataset",
    "training.evaluate",
    "training.openai_ft",
    "bot",
    "bot.backends",
    "bot.whatsapp",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    missing = [item for item in module.__all__ if not hasattr(module, item)]
    assert missing == []


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_unique(name: str) -> None:
    exported = importlib.import_module(name).__all__
    assert list(exported) == sorted(set(exported))


def test_style_does_not_import_bot_or_training() -> None:
    import subprocess
    import sys

    code = "import sys, style, style.parse; print(sorted(m for m in sys.modules if m.split('.')[0] in ('bot', 'training')))"  # noqa: E501
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_training_never_imports_bot() -> None:
    import pkgutil
    import subprocess
    import sys

    import training

    modules = [m.name for m in pkgutil.walk_packages(training.__path__, "training.")]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'bot'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_does_not_import_the_ml_stack() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from bot.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl', 'anthropic') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
