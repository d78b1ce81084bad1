"""All configuration, in one place: environment variables (prefix `WA_PERSONA_`) or `.env`."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from style.parse import ExportLimits
from style.scrub import ScrubMode


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

    conversation_gap_minutes: float | None = Field(
        default=None,
        description="Silence that starts a new conversation; unset, chosen from the data.",
    )
    profile_min_messages: int = Field(
        default=50, ge=1, description="Warn when a persona has fewer messages than this."
    )
    dataset_tokenizer: str | None = Field(
        default=None,
        description=(
            "Tokenizer that sizes a persona's training samples: a model folder, a Hub id "
            "already in the local cache, or a fetched model (smollm2-135m); unset, estimated."
        ),
    )
    openai_training_usd_per_1m_tokens: float = Field(
        default=5.0,
        ge=0,
        description="OpenAI's fine-tuning price, for `dataset --estimate` (check the price list).",
    )
    scrub_mode: ScrubMode = Field(
        default=ScrubMode.REDACT,
        description="redact ([PHONE]), pseudonymize (consistent stand-ins) or drop the message.",
    )
    scrub_training: bool = Field(
        default=True, description="Scrub messages before training data is written."
    )
    scrub_names: list[str] = Field(
        default_factory=list,
        description="Extra names to treat as third parties (JSON list in the environment).",
    )
    scrub_blocklist: list[str] = Field(
        default_factory=list, description="Words or phrases always removed (JSON list)."
    )
    scrub_region: str | None = Field(
        default=None,
        description="Phone region hint such as GB; guessed from the export when unset.",
    )
    scrub_authors: bool = Field(
        default=False, description="Also replace third-party authors' names."
    )
    scrub_salt: SecretStr | None = Field(
        default=None,
        description="Secret that picks pseudonyms; unset, one is created in data_dir.",
    )

    database: Path | None = Field(
        default=None, description="The SQLite database; unset, `wa-persona.db` in data_dir."
    )
    openai_api_key: SecretStr | None = Field(
        default=None, description="OpenAI key (fine-tuning jobs, OpenAI models)."
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI API base URL; unset, api.openai.com (or a proxy)."
    )
    openai_fine_tuning: bool = Field(
        default=False,
        description=(
            "Allow uploading scrubbed training data to OpenAI for fine-tuning (legacy: OpenAI "
            "has closed self-serve fine-tuning to new users and is retiring it)."
        ),
    )
    openai_poll_seconds: float = Field(
        default=30.0, gt=0, description="How often a running OpenAI job is polled."
    )

    allow_remote_backends: bool = Field(
        default=False,
        description=(
            "Allow sending (scrubbed) conversation text to remote services: Claude, or an "
            "OpenAI-compatible server that is not on this machine."
        ),
    )
    anthropic_api_key: SecretStr | None = Field(default=None, description="Claude API key.")
    anthropic_base_url: str | None = Field(
        default=None, description="Anthropic API base URL; unset, api.anthropic.com."
    )
    claude_model: str = Field(
        default="claude-sonnet-5-5", description="Model id for the Claude few-shot backend."
    )
    claude_examples: int = Field(
        default=8, ge=0, le=50, description="Real exchanges shown to Claude per reply."
    )
    backends: list[str] = Field(
        default_factory=lambda: ["local", "claude", "retrieval"],
        description=(
            "The fallback chain, tried in order (JSON list); backends that are not set up "
            "(no model, no key) are skipped."
        ),
    )
    backend_deadline_s: float = Field(
        default=30.0, gt=0, description="How long one backend may take before the next is tried."
    )
    breaker_failures: int = Field(
        default=3, ge=1, description="Failures in a row that open a backend's circuit breaker."
    )
    breaker_reset_s: float = Field(
        default=60.0, gt=0, description="How long an open breaker skips its backend."
    )
    openai_compatible_api_key: SecretStr | None = Field(
        default=None,
        description=(
            "Key for OpenAI-compatible servers (vLLM --api-key); never the OpenAI key, which "
            "only goes to OpenAI."
        ),
    )
    local_load_in_4bit: bool = Field(
        default=False, description="Load local models in 4-bit (needs CUDA and bitsandbytes)."
    )
    allow_model_downloads: bool = Field(
        default=False,
        description="Let the local backend download a base model named by hub id.",
    )
    local_temperature: float = Field(
        default=0.8, ge=0, description="Local sampling temperature (0 = greedy)."
    )
    local_top_p: float = Field(default=0.95, gt=0, le=1, description="Local nucleus sampling.")
    local_max_new_tokens: int = Field(
        default=200, ge=1, description="Longest local reply, in tokens."
    )
    train_config: str = Field(
        default="smollm2-135m-cpu-lora",
        description="Preset or YAML file the bot's retrain jobs train with.",
    )
    max_concurrent_jobs: int = Field(
        default=1,
        ge=1,
        description=(
            "Retrain/evaluate jobs of different personas running at once; training "
            "saturates the machine."
        ),
    )
    retrain_min_new_messages: int = Field(
        default=200,
        ge=0,
        description=(
            "A scheduled retrain runs only when this many messages arrived since the last "
            "trained version."
        ),
    )
    typing_speed: float = Field(
        default=1.0, gt=0, description="Typing simulation speed factor (2 = twice as fast)."
    )
    typing_max_wait_s: float = Field(
        default=90.0, ge=0, description="Longest a whole reply may take to arrive, in seconds."
    )

    admin_ids: list[str] = Field(
        default_factory=list,
        description=(
            'Who may run admin commands, as "channel:user_id" (JSON list), e.g. '
            '["telegram:123456789", "whatsapp:4915112345678"].'
        ),
    )
    uploads_from_anyone: bool = Field(
        default=False,
        description=(
            "Let anyone who can message the bot send chat exports (and so create personas); "
            "off, only admin_ids may."
        ),
    )
    max_upload_mb: int = Field(
        default=20, ge=1, description="Largest export accepted from a chat upload."
    )

    chat_rate_per_minute: float = Field(
        default=20.0,
        ge=0,
        description=(
            "Messages a chat may send a minute after its burst (0: no limit; admins are "
            "never limited)."
        ),
    )
    chat_rate_burst: int = Field(
        default=10, ge=1, description="Messages a chat may send in a quick row."
    )
    max_text_chars: int = Field(
        default=4000, ge=1, description="Longest text answered; longer ones get a refusal."
    )

    telegram_token: SecretStr | None = Field(default=None, description="Telegram bot token.")
    telegram_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Bot API base URL; point it at a self-hosted Bot API server for big files.",
    )
    telegram_base_file_url: str = Field(
        default="https://api.telegram.org/file/bot", description="Bot API file download URL."
    )
    telegram_local_mode: bool = Field(
        default=False,
        description="The Bot API server is self-hosted (--local): files up to 2 GB.",
    )
    telegram_webhook_url: str | None = Field(
        default=None, description="Public HTTPS URL for webhook mode; unset, polling."
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, description="Secret token Telegram sends with every webhook call."
    )
    telegram_webhook_port: int = Field(default=8443, description="Local port of the webhook.")

    whatsapp_token: SecretStr | None = Field(
        default=None, description="WhatsApp Cloud API access token."
    )
    whatsapp_phone_number_id: str | None = Field(
        default=None, description="The sending phone number's id in the Cloud API."
    )
    whatsapp_app_secret: SecretStr | None = Field(
        default=None, description="App secret: checks X-Hub-Signature-256 on webhook calls."
    )
    whatsapp_verify_token: SecretStr | None = Field(
        default=None, description="The verify token entered in the webhook settings."
    )
    whatsapp_graph_url: str = Field(
        default="https://graph.facebook.com",
        description="Graph API base URL (a proxy or business solution provider's).",
    )
    whatsapp_api_version: str = Field(default="v23.0", description="Graph API version.")
    http_host: str = Field(default="0.0.0.0", description="Where the webhook server listens.")
    http_port: int = Field(default=8080, description="Webhook server port (WhatsApp, health).")

    def database_path(self) -> Path:
        """The database file these settings point at."""
        return self.database or self.data_dir / "wa-persona.db"

    def models_dir(self) -> Path:
        """Where fetched base models live (`wa-persona models fetch`)."""
        return self.data_dir / "models"

    def runs_dir(self) -> Path:
        """Where training runs write their outputs (one folder per run)."""
        return self.data_dir / "runs"

    def pseudonym_salt(self) -> str:
        """The configured salt, or this install's own (made once, readable only by us)."""
        if self.scrub_salt is not None:
            return self.scrub_salt.get_secret_value()
        path = self.data_dir / "scrub.salt"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_hex(16), encoding="utf-8")
        return path.read_text(encoding="utf-8").strip()

    def export_limits(self) -> ExportLimits:
        """The parser limits these settings ask for."""
        return ExportLimits(
            max_bytes=self.max_export_mb * 2**20, max_archive_bytes=self.max_archive_mb * 2**20
        )
