"""All configuration, in one place: environment variables (prefix `WA_PERSONA_`) or `.env`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from style.parse import ExportLimits


class Settings(BaseSettings):
    """Built once by the CLI or the service and passed down; library code never reads env."""

    model_config = SettingsConfigDict(
        env_prefix="WA_PERSONA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(
        default=Path.home() / ".local" / "share" / "wa-persona",
        description="Where the database, profiles, datasets and adapters live.",
    )
    log_level: str = Field(default="INFO", description="Message text is only logged at DEBUG.")
    max_export_mb: int = Field(default=512, ge=1, description="Largest chat file accepted.")
    max_archive_mb: int = Field(
        default=4096, ge=1, description="Largest total uncompressed size of a zip export."
    )

    def export_limits(self) -> ExportLimits:
        """The parser limits these settings ask for."""
        return ExportLimits(
            max_bytes=self.max_export_mb * 2**20, max_archive_bytes=self.max_archive_mb * 2**20
        )
