"""Settings on a test's own data dir, and personas prepared there from the bundled sample."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bot.personas import prepare_persona
from bot.settings import Settings
from style.sample import sample_paths


def settings_for(data_dir: Path, **values: object) -> Settings:
    """Settings on `data_dir` that read no `.env` and keep the database in it."""
    return Settings(_env_file=None, data_dir=data_dir, database=None, **values)  # type: ignore[call-arg]


def prepare_quarter_sample(folder: Path, names: Sequence[str]) -> Path:
    """`names` prepared in `folder / "data"` from the first quarter of each bundled sample
    export (about a second each); returns the personas folder."""
    exports = []
    for path in sample_paths():
        lines = path.read_text("utf-8").splitlines(keepends=True)
        export = folder / path.name
        export.write_text("".join(lines[: len(lines) // 4]), "utf-8")
        exports.append(export)
    settings = settings_for(folder / "data")
    for name in names:
        prepare_persona(settings, name, exports)
    return folder / "data" / "personas"
