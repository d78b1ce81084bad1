"""`wa-persona doctor`: what works on this install, and how each persona is best trained.

Each check is a plain function returning `Check`s: settings (secrets only as set / missing,
never their values), the transports' credentials, the data dir, free disk, the database
(writable, its schema versions), the service's heartbeat, the backends (OpenAI-compatible
endpoints are asked for `GET <endpoint>/models`, which sends no message text), CUDA and
bitsandbytes. `FAIL` means the service cannot work like this, `WARN` that it works but
something is off or unused, `SKIP` that a part is not configured. `recommend` turns a
persona's data volume, the hardware and the keys present into a training approach, with
the time `training.dataset.estimate` predicts.

The service proves it is alive by rewriting `HEARTBEAT_FILE` in the data dir
(`write_heartbeat`, every `HEARTBEAT_INTERVAL_S`) and removes it when it stops cleanly
(`clear_heartbeat`); `doctor --quick` (the container healthcheck) fails when that file exists
but has gone stale, and `restore` refuses to run while it is fresh.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import sqlite3
import tempfile
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError

from bot.settings import Settings

if TYPE_CHECKING:
    from rich.console import RenderableType

    from bot.personas import PersonaInfo
    from training.config import TrainConfig
    from training.dataset.estimate import Estimate, Target, TokenCounts
    from training.hardware import Hardware
    from training.registry import ModelVersion

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "Approach",
    "CPU_PRESET",
    "Check",
    "CheckStatus",
    "DoctorReport",
    "GPU_PRESET",
    "GPU_SMALL_PRESET",
    "HEARTBEAT_FILE",
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_MAX_AGE_S",
    "MIN_FINE_TUNE_SAMPLES",
    "QLORA_7B_GPU_MEMORY_GB",
    "Recommendation",
    "SCHEMAS",
    "backend_checks",
    "check_endpoint",
    "clear_heartbeat",
    "database_check",
    "endpoint_checks",
    "hardware_checks",
    "heartbeat_age",
    "heartbeat_check",
    "heartbeat_path",
    "known_migrations",
    "load_settings",
    "recommend",
    "render_report",
    "run_doctor",
    "secret_checks",
    "settings_check",
    "storage_checks",
    "transport_checks",
    "write_heartbeat",
]

HEARTBEAT_FILE = "service.heartbeat"
HEARTBEAT_INTERVAL_S = 30.0
"""How often the running service should call `write_heartbeat`."""
HEARTBEAT_MAX_AGE_S = 120.0
"""An older heartbeat means the service is stuck or gone (four missed beats)."""

MIN_FREE_MB = 100
"""Below this the database and persona rebuilds start failing."""
LOW_FREE_MB = 2048
"""Below this a training run or a downloaded base model will not fit."""

MIN_FINE_TUNE_SAMPLES = 200
"""Fewer training samples than this: answer few-shot instead. The presets are tuned for "a few
hundred to a few thousand samples" (docs/training.md)."""
CPU_PRESET = "smollm2-135m-cpu-lora"
"""LoRA on SmolLM2-135M on a CPU: the throughput `CPU_SMOLLM2_135M_TOKENS_PER_S` is for it."""
GPU_PRESET = "qwen2.5-7b-qlora"
"""QLoRA on a 7B model: `CONSUMER_GPU_7B_QLORA_TOKENS_PER_S` is for it."""
GPU_SMALL_PRESET = "qwen2.5-0.5b-qlora"
"""QLoRA on a 0.5B model, for GPUs with less memory than the 7B preset needs."""
QLORA_7B_GPU_MEMORY_GB = (16, 24)
"""The GPU memory the 7B QLoRA preset fits in (training/configs/qwen2.5-7b-qlora.yaml)."""
RENT_A_GPU_AFTER_H = 24.0
"""A CPU run longer than this also gets the rented-H100 figure."""

SCHEMAS: tuple[tuple[str, str], ...] = (
    ("registry", "training.registry"),
    ("openai_jobs", "training.openai_ft.store"),
    ("bot", "bot.store"),
    ("seen", "bot.seen"),
    ("uploads", "bot.uploads"),
    ("jobs", "bot.jobs"),
)
"""(component, module) of every table owner whose module lists its `MIGRATIONS`."""

_TRAIN_MODULES = ("torch", "transformers", "peft", "trl")
_LOCAL_KINDS = ("local-adapter", "local-model")


class CheckStatus(StrEnum):
    """How one check came out."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's table. `detail` never holds a secret's value."""

    name: str
    status: CheckStatus
    detail: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready fields."""
        return {"name": self.name, "status": self.status.value, "detail": self.detail}


class Approach(StrEnum):
    """How a persona is best answered for."""

    CLAUDE = "few-shot-claude"
    RETRIEVAL = "retrieval"
    CPU_LORA = "cpu-lora"
    GPU_QLORA = "gpu-qlora"


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The approach for one persona and why, with the expected training time when it trains."""

    persona: str
    approach: Approach
    reason: str
    command: str | None = None
    hours: float | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "persona": self.persona,
            "approach": self.approach.value,
            "reason": self.reason,
            "command": self.command,
            "hours": self.hours,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Every check and every persona's recommendation."""

    checks: tuple[Check, ...]
    recommendations: tuple[Recommendation, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing the service needs has failed (warnings are fine)."""
        return all(check.status is not CheckStatus.FAIL for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "ok": self.ok,
            "checks": [check.to_dict() for check in self.checks],
            "recommendations": [item.to_dict() for item in self.recommendations],
        }


@dataclass(frozen=True, slots=True)
class _Backends:
    """What the backend checks learned that the recommendations use."""

    checks: list[Check] = field(default_factory=list)
    claude_ready: bool = False
    train_extra: bool = False
    versions: list[ModelVersion] = field(default_factory=list)


# --- the whole run ---------------------------------------------------------------------------


def load_settings() -> tuple[Settings | None, Check]:
    """Settings from the environment and `.env`, and the check saying whether they loaded.

    A validation error names the fields and what is wrong, never the values given.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        return None, Check("settings", CheckStatus.FAIL, f"cannot load: {problems}")
    return settings, settings_check(settings)


def run_doctor(
    settings: Settings,
    *,
    quick: bool = False,
    timeout_s: float = 3.0,
    heartbeat_max_age_s: float = HEARTBEAT_MAX_AGE_S,
    settings_row: Check | None = None,
) -> DoctorReport:
    """Run every check (`quick`: only storage, database and heartbeat, for a healthcheck)."""
    checks = [settings_row or settings_check(settings)]
    checks += storage_checks(settings)
    database, components = database_check(settings, quick=quick)
    checks.append(database)
    checks.append(heartbeat_check(settings, heartbeat_max_age_s))
    if quick:
        return DoctorReport(tuple(checks))
    checks += secret_checks(settings)
    checks += transport_checks(settings)
    backends = backend_checks(settings, components, timeout_s=timeout_s)
    checks += backends.checks
    hardware_rows, hardware = hardware_checks()
    checks += hardware_rows
    recommendations = _recommendations(settings, backends, hardware)
    return DoctorReport(tuple(checks), tuple(recommendations))


# --- settings and transports -----------------------------------------------------------------


def settings_check(settings: Settings) -> Check:
    """Loaded, and which settings are set (names only)."""
    names = sorted(settings.model_fields_set)
    shown = ", ".join(names) if names else "none (all defaults)"
    return Check("settings", CheckStatus.OK, f"loaded; set: {shown}")


def secret_checks(settings: Settings) -> list[Check]:
    """Each secret setting as set, empty or missing; never its value."""
    found: dict[str, list[str]] = {"set": [], "empty": [], "missing": []}
    for name, info in Settings.model_fields.items():
        if SecretStr not in typing.get_args(info.annotation) and info.annotation is not SecretStr:
            continue
        value = getattr(settings, name)
        state = "missing" if value is None else "set" if _given(value) else "empty"
        found[state].append(name)
    detail = "; ".join(f"{state}: {', '.join(names) or 'none'}" for state, names in found.items())
    if found["empty"]:
        return [
            Check(
                "secrets",
                CheckStatus.WARN,
                f"{detail} (an empty `NAME=` line counts as given: delete it or fill it in)",
            )
        ]
    return [Check("secrets", CheckStatus.OK, detail)]


def _given(value: object) -> bool:
    """Set and not empty (an empty SecretStr is falsy; its value is never read here)."""
    return value is not None and bool(value)


def transport_checks(settings: Settings) -> list[Check]:
    """Telegram and WhatsApp: which credentials are present; a half-configured one fails."""
    checks = []
    if not _given(settings.telegram_token):
        checks.append(Check("telegram", CheckStatus.SKIP, "no token (WA_PERSONA_TELEGRAM_TOKEN)"))
    elif settings.telegram_webhook_url:
        given = _given(settings.telegram_webhook_secret)
        secret = "set" if given else "missing"
        status = CheckStatus.OK if given else CheckStatus.WARN
        checks.append(
            Check(
                "telegram",
                status,
                f"token set; webhook {_display_url(settings.telegram_webhook_url)} on port "
                f"{settings.telegram_webhook_port}; webhook secret {secret}",
            )
        )
    else:
        checks.append(Check("telegram", CheckStatus.OK, "token set; long polling"))

    needed = {
        "token": settings.whatsapp_token,
        "phone number id": settings.whatsapp_phone_number_id,
        "app secret": settings.whatsapp_app_secret,
        "verify token": settings.whatsapp_verify_token,
    }
    present = [name for name, value in needed.items() if _given(value)]
    absent = [name for name, value in needed.items() if not _given(value)]
    if not present:
        checks.append(Check("whatsapp", CheckStatus.SKIP, "not configured"))
    elif absent:
        checks.append(
            Check(
                "whatsapp",
                CheckStatus.FAIL,
                f"set: {', '.join(present)}; missing: {', '.join(absent)} "
                "(the Cloud API needs all four)",
            )
        )
    else:
        from bot.whatsapp.webhook import WEBHOOK_PATH

        checks.append(
            Check(
                "whatsapp",
                CheckStatus.OK,
                "token, phone number id, app secret and verify token set; webhook "
                f"{settings.http_host}:{settings.http_port}{WEBHOOK_PATH}",
            )
        )
    if not _given(settings.telegram_token) and not present:
        checks.append(
            Check("transports", CheckStatus.WARN, "neither Telegram nor WhatsApp is set up")
        )
    if not settings.admin_ids:
        checks.append(
            Check(
                "admins",
                CheckStatus.WARN,
                "no admin ids (WA_PERSONA_ADMIN_IDS): nobody can retrain",
            )
        )
    else:
        checks.append(Check("admins", CheckStatus.OK, f"{len(settings.admin_ids)} admin id(s)"))
    return checks


# --- storage ---------------------------------------------------------------------------------


def storage_checks(settings: Settings) -> list[Check]:
    """The data dir exists (or can be made) and takes a file; free disk space under it."""
    data = settings.data_dir.expanduser()
    existing = next(path for path in (data, *data.parents) if path.exists())
    if not existing.is_dir():
        return [Check("data dir", CheckStatus.FAIL, f"{data}: {existing} is not a folder")]
    if existing != data:
        detail = f"{data} does not exist yet; it is created on first use under {existing}"
    else:
        detail = f"{data}"
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".doctor-"):
            pass
    except OSError as exc:
        return [Check("data dir", CheckStatus.FAIL, f"{existing} is not writable ({exc.strerror})")]
    checks = [Check("data dir", CheckStatus.OK, f"{detail}; writable")]
    usage = shutil.disk_usage(existing)
    free_mb = usage.free // 2**20
    free = f"{free_mb / 1024:,.1f} GB free of {usage.total / 2**30:,.1f} GB"
    if free_mb < MIN_FREE_MB:
        checks.append(Check("disk", CheckStatus.FAIL, f"{free}: free some space"))
    elif free_mb < LOW_FREE_MB:
        checks.append(Check("disk", CheckStatus.WARN, f"{free}: too little to train or add models"))
    else:
        checks.append(Check("disk", CheckStatus.OK, free))
    return checks


def known_migrations() -> dict[str, Sequence[str]]:
    """Each known component's migration scripts (`SCHEMAS`), by component."""
    return {component: importlib.import_module(module).MIGRATIONS for component, module in SCHEMAS}


def database_check(settings: Settings, *, quick: bool = False) -> tuple[Check, dict[str, int]]:
    """The database opens and takes a write; its components' schema versions.

    `quick` only reads (a healthcheck must not queue behind the service's writes).
    """
    path = settings.database_path()
    if not path.exists():
        return Check("database", CheckStatus.OK, f"{path} not created yet (made on first use)"), {}
    if quick:
        return _read_database(path)
    from training.db import DatabaseError, connect

    try:
        db = connect(path)
    except DatabaseError as exc:
        return Check("database", CheckStatus.FAIL, str(exc)), {}
    try:
        db.execute("PRAGMA busy_timeout = 3000")
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            return Check("database", CheckStatus.FAIL, f"{path} is damaged: {problem}"), {}
        writable = _probe_write(db.conn)
        components = dict(
            db.execute(
                "SELECT component, MAX(version) FROM schema_migrations GROUP BY component"
            ).fetchall()
        )
    except sqlite3.Error as exc:
        return Check("database", CheckStatus.FAIL, f"{path}: {exc}"), {}
    finally:
        db.close()
    known = known_migrations()
    newer = [
        f"{name} {version} > {len(known[name])}"
        for name, version in components.items()
        if name in known and version > len(known[name])
    ]
    versions = ", ".join(f"{name} v{version}" for name, version in sorted(components.items()))
    detail = f"{path}; schema: {versions or 'no tables yet'}"
    if newer:
        return Check(
            "database",
            CheckStatus.FAIL,
            f"{detail}; written by a newer wa-persona ({', '.join(newer)}): upgrade",
        ), components
    behind = [name for name, version in components.items() if version < len(known.get(name, []))]
    if behind:
        detail += f"; upgraded at the next start: {', '.join(sorted(behind))}"
    if writable is not None:
        return Check("database", CheckStatus.WARN, f"{detail}; {writable}"), components
    return Check("database", CheckStatus.OK, f"{detail}; writable"), components


def _read_database(path: Path) -> tuple[Check, dict[str, int]]:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            components = dict(
                conn.execute(
                    "SELECT component, MAX(version) FROM schema_migrations GROUP BY component"
                ).fetchall()
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return Check("database", CheckStatus.FAIL, f"{path}: cannot read ({exc})"), {}
    return Check("database", CheckStatus.OK, f"{path}; readable"), components


def _probe_write(conn: sqlite3.Connection) -> str | None:
    """Take the write lock and create a table, then roll back; None when that worked."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE doctor_probe (x INTEGER)")
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return "busy: another process holds the write lock"
        raise
    return None


# --- heartbeat -------------------------------------------------------------------------------


def heartbeat_path(settings: Settings) -> Path:
    """The file the running service touches."""
    return settings.data_dir / HEARTBEAT_FILE


def write_heartbeat(settings: Settings) -> None:
    """Say "alive" (the service calls this every `HEARTBEAT_INTERVAL_S`)."""
    path = heartbeat_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(
        json.dumps({"pid": os.getpid(), "at": datetime.now(UTC).isoformat()}) + "\n",
        encoding="utf-8",
    )
    partial.replace(path)


def clear_heartbeat(settings: Settings) -> None:
    """Say "stopped cleanly" (the service calls this on shutdown, so a restore need not wait)."""
    heartbeat_path(settings).unlink(missing_ok=True)


def heartbeat_age(settings: Settings) -> float | None:
    """Seconds since the last heartbeat; None when the service never wrote one here."""
    try:
        return max(0.0, time.time() - heartbeat_path(settings).stat().st_mtime)
    except (FileNotFoundError, NotADirectoryError):
        return None


def heartbeat_check(settings: Settings, max_age_s: float = HEARTBEAT_MAX_AGE_S) -> Check:
    """The service's heartbeat is fresh, or there is none (the service is not running here)."""
    age = heartbeat_age(settings)
    if age is None:
        return Check("service", CheckStatus.SKIP, "no heartbeat: `wa-persona serve` not running")
    if age > max_age_s:
        return Check(
            "service",
            CheckStatus.FAIL,
            f"last heartbeat {age:,.0f} s ago (more than {max_age_s:,.0f} s): stuck or stopped",
        )
    return Check("service", CheckStatus.OK, f"running; heartbeat {age:,.0f} s ago")


# --- backends --------------------------------------------------------------------------------


def backend_checks(
    settings: Settings, components: dict[str, int], *, timeout_s: float = 3.0
) -> _Backends:
    """Retrieval, Claude, OpenAI, the OpenAI-compatible endpoints and the local extra."""
    from bot.personas import list_personas

    personas = list_personas(settings)
    checks = [
        Check(
            "backend retrieval",
            CheckStatus.OK,
            f"always available; {len(personas)} persona(s) prepared",
        )
    ]
    remote = settings.allow_remote_backends
    claude_ready = _given(settings.anthropic_api_key) and remote
    if not _given(settings.anthropic_api_key):
        checks.append(
            Check("backend claude", CheckStatus.SKIP, "no key (WA_PERSONA_ANTHROPIC_API_KEY)")
        )
    elif not remote:
        checks.append(
            Check(
                "backend claude",
                CheckStatus.WARN,
                "key set, but remote backends are off (WA_PERSONA_ALLOW_REMOTE_BACKENDS)",
            )
        )
    else:
        listed = "" if "claude" in settings.backends else "; not in WA_PERSONA_BACKENDS"
        checks.append(
            Check(
                "backend claude",
                CheckStatus.OK,
                f"key set, remote allowed; model {settings.claude_model}{listed}",
            )
        )

    known = len(known_migrations()["registry"])
    usable = 0 < components.get("registry", 0) <= known
    versions = _usable_versions(settings) if usable else []
    checks += _openai_checks(settings, versions)
    checks += endpoint_checks(settings, versions, timeout_s=timeout_s)
    train_extra = all(importlib.util.find_spec(name) is not None for name in _TRAIN_MODULES)
    local = [v.version for v in versions if v.kind.value in _LOCAL_KINDS]
    if train_extra:
        checks.append(Check("backend local", CheckStatus.OK, "[train] extra installed"))
    elif local:
        checks.append(
            Check(
                "backend local",
                CheckStatus.WARN,
                f"{', '.join(local)} need the [train] extra: pip install 'wa-persona[train]'",
            )
        )
    else:
        checks.append(
            Check("backend local", CheckStatus.SKIP, "[train] extra not installed (CPU image)")
        )
    return _Backends(checks, claude_ready, train_extra, versions)


def _usable_versions(settings: Settings) -> list[ModelVersion]:
    """Active and ready versions of every persona."""
    from training.registry import ModelStatus, Registry

    registry = Registry.open(settings.database_path())
    try:
        return registry.list(statuses=[ModelStatus.ACTIVE, ModelStatus.READY])
    finally:
        registry.db.close()


def _openai_checks(settings: Settings, versions: Sequence[ModelVersion]) -> list[Check]:
    used = [v.version for v in versions if v.kind.value == "openai"]
    if not used:
        return []
    if not _given(settings.openai_api_key):
        return [Check("backend openai", CheckStatus.WARN, f"{', '.join(used)}: no OpenAI key")]
    if not settings.allow_remote_backends:
        return [
            Check(
                "backend openai",
                CheckStatus.WARN,
                f"{', '.join(used)}: remote backends are off (WA_PERSONA_ALLOW_REMOTE_BACKENDS)",
            )
        ]
    return [Check("backend openai", CheckStatus.OK, f"key set for {', '.join(used)}")]


def endpoint_checks(
    settings: Settings, versions: Sequence[ModelVersion], *, timeout_s: float = 3.0
) -> list[Check]:
    """One check per OpenAI-compatible endpoint that active or ready versions use."""
    by_endpoint: dict[str, list[ModelVersion]] = {}
    for version in versions:
        if version.kind.value == "openai-compatible" and version.endpoint:
            by_endpoint.setdefault(version.endpoint, []).append(version)
    if not by_endpoint:
        return []
    from bot.backends.openai_chat import is_local_endpoint

    key = settings.openai_compatible_api_key
    checks: list[Check] = []
    for endpoint, served in by_endpoint.items():
        check = check_endpoint(
            endpoint,
            [v.remote_id or "" for v in served],
            api_key=key.get_secret_value() if _given(key) and key is not None else None,
            timeout_s=timeout_s,
        )
        if not is_local_endpoint(endpoint) and not settings.allow_remote_backends:
            check = Check(
                check.name,
                CheckStatus.WARN,
                f"{check.detail}; remote, and remote backends are off "
                "(WA_PERSONA_ALLOW_REMOTE_BACKENDS): not used",
            )
        checks.append(check)
    return checks


def check_endpoint(
    endpoint: str, models: Sequence[str], *, api_key: str | None = None, timeout_s: float = 3.0
) -> Check:
    """`GET <endpoint>/models`: reachable, and serving every name in `models`?"""
    name = f"endpoint {_display_url(endpoint)}"
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/models",
        headers={"Authorization": f"Bearer {api_key or 'EMPTY'}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = json.loads(response.read(1 << 20))
    except urllib.error.HTTPError as exc:
        hint = " (check WA_PERSONA_OPENAI_COMPATIBLE_API_KEY)" if exc.code in (401, 403) else ""
        return Check(name, CheckStatus.WARN, f"answered HTTP {exc.code}{hint}")
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check(name, CheckStatus.WARN, f"unreachable ({reason}); the bot falls back")
    except ValueError:
        return Check(name, CheckStatus.WARN, "reachable, but /models is not OpenAI's JSON")
    served = {
        str(item.get("id"))
        for item in (body.get("data") or [] if isinstance(body, dict) else [])
        if isinstance(item, dict)
    }
    missing = [model for model in models if model not in served]
    if missing:
        return Check(
            name,
            CheckStatus.WARN,
            f"reachable; not served: {', '.join(missing)} (add them to vLLM's --lora-modules)",
        )
    return Check(name, CheckStatus.OK, f"reachable; serves {', '.join(sorted(models))}")


def _display_url(url: str) -> str:
    """`url` without a user or password in it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- hardware --------------------------------------------------------------------------------


def hardware_checks() -> tuple[list[Check], Hardware | None]:
    """CUDA and bitsandbytes, probed through torch when it is installed."""
    if importlib.util.find_spec("torch") is None:
        return [
            Check("cuda", CheckStatus.SKIP, "torch not installed (the [train] or [gpu] extra)"),
        ], None
    from training.hardware import detect_hardware

    hardware = detect_hardware()
    if not hardware.cuda:
        checks = [Check("cuda", CheckStatus.SKIP, f"no CUDA GPU; {hardware.cpu_count} CPU cores")]
    else:
        memory = (hardware.gpu_memory_mb or 0) / 1024
        checks = [
            Check(
                "cuda",
                CheckStatus.OK,
                f"{hardware.gpu_count}× {hardware.gpu_name}, {memory:,.0f} GB"
                f"{', bf16' if hardware.bf16 else ''}",
            )
        ]
    if hardware.bitsandbytes:
        checks.append(Check("bitsandbytes", CheckStatus.OK, "usable: QLoRA and 4-bit loading"))
    elif hardware.cuda:
        checks.append(
            Check("bitsandbytes", CheckStatus.WARN, "not installed: pip install 'wa-persona[gpu]'")
        )
    else:
        checks.append(Check("bitsandbytes", CheckStatus.SKIP, "needs CUDA"))
    return checks, hardware


# --- recommendations -------------------------------------------------------------------------


def _recommendations(
    settings: Settings, backends: _Backends, hardware: Hardware | None
) -> list[Recommendation]:
    from bot.personas import list_personas, personas_dir
    from training.dataset.card import CARD_FILE

    active = {v.persona: v for v in backends.versions if v.status.value == "active"}
    found = []
    for info in list_personas(settings):
        dataset = personas_dir(settings) / info.slug / "dataset"
        found.append(
            recommend(
                info,
                _card_tokens(dataset / CARD_FILE),
                hardware,
                claude_ready=backends.claude_ready,
                train_extra=backends.train_extra,
                dataset_dir=dataset,
                active=active.get(info.name),
            )
        )
    return found


def recommend(
    info: PersonaInfo,
    tokens: TokenCounts | None,
    hardware: Hardware | None,
    *,
    claude_ready: bool,
    train_extra: bool,
    dataset_dir: Path,
    active: ModelVersion | None = None,
) -> Recommendation:
    """The approach for one persona from its data, the hardware and the keys present.

    Few training samples: answer few-shot (Claude when it may be used, else retrieval).
    Otherwise fine-tune: QLoRA on a CUDA GPU, else LoRA on a small model on the CPU, with the
    time `training.dataset.estimate` predicts for the persona's dataset.
    """
    from training.dataset.estimate import DEFAULT_EPOCHS

    samples = info.counts.get("train_samples", 0)
    messages = info.counts.get("persona_messages", 0)
    notes = [f"active: {active.version} ({active.kind.value})"] if active is not None else []
    volume = f"{messages:,} messages, {samples:,} training samples"
    if samples < MIN_FINE_TUNE_SAMPLES:
        if claude_ready:
            return Recommendation(
                info.name,
                Approach.CLAUDE,
                f"{volume}: too few to fine-tune; Claude shown her real exchanges (few-shot)",
                notes=tuple(notes),
            )
        notes.append(
            "for Claude: set WA_PERSONA_ANTHROPIC_API_KEY and WA_PERSONA_ALLOW_REMOTE_BACKENDS=true"
        )
        return Recommendation(
            info.name,
            Approach.RETRIEVAL,
            f"{volume}: too few to fine-tune; answer with retrieval (her own past replies)",
            notes=tuple(notes),
        )
    if not train_extra:
        notes.append("install the [train] extra first (the GPU image has it)")
    cpu, consumer_gpu, h100 = _targets()
    if hardware is not None and hardware.cuda:
        memory_gb = (hardware.gpu_memory_mb or 0) / 1024
        low, high = QLORA_7B_GPU_MEMORY_GB
        preset = GPU_PRESET if memory_gb >= low else GPU_SMALL_PRESET
        hours = _hours(_estimate(tokens, consumer_gpu))
        fit = (
            f"the 7B QLoRA preset needs {low}-{high} GB; this GPU has {memory_gb:,.0f} GB"
            if preset == GPU_PRESET
            else f"this GPU has {memory_gb:,.0f} GB, under the {low} GB the 7B preset needs: "
            "a 0.5B model (the time is the 7B figure, an upper bound)"
        )
        if not hardware.bitsandbytes:
            notes.append("QLoRA needs bitsandbytes: pip install 'wa-persona[gpu]'")
        return Recommendation(
            info.name,
            Approach.GPU_QLORA,
            f"{volume}: QLoRA on the GPU ({fit}); about {_duration(hours)}",
            command=_train_command(preset, dataset_dir),
            hours=hours,
            notes=tuple(notes),
        )
    full = _estimate(tokens, cpu)
    hours = _hours(full)
    preset = _preset(CPU_PRESET)
    cap = preset.training.max_steps if preset is not None else None
    if full is not None and preset is not None and cap is not None:
        training = preset.training
        capped = cap * training.batch_size * training.gradient_accumulation * training.max_length
        if capped < full.processed_tokens and cpu.tokens_per_s:
            hours = capped / cpu.tokens_per_s / 3600
            notes.append(
                f"the preset stops after {cap} steps of samples up to {training.max_length} "
                f"tokens; {DEFAULT_EPOCHS} full epochs take about {_duration(_hours(full))} "
                "(--set training.max_steps=null --set training.max_length=1024)"
            )
    if preset is not None:
        notes.append(f"first fetch the base model: wa-persona models fetch {preset.model.name}")
    full_hours = _hours(full)
    if full_hours is not None and full_hours > RENT_A_GPU_AFTER_H:
        rented = _estimate(tokens, h100)
        if rented is not None and rented.cost_usd is not None:
            notes.append(
                f"or rent a GPU: {h100.name} about {_duration(_hours(rented))} for "
                f"{DEFAULT_EPOCHS} epochs, ${rented.cost_usd:,.2f}"
            )
    return Recommendation(
        info.name,
        Approach.CPU_LORA,
        f"{volume}: LoRA on a small model on this CPU (no CUDA GPU); about {_duration(hours)}",
        command=_train_command(CPU_PRESET, dataset_dir),
        hours=hours,
        notes=tuple(notes),
    )


def _preset(name: str) -> TrainConfig | None:
    """The shipped preset `name`; None when this install does not ship it."""
    from training.config import ConfigError, load_train_config

    try:
        return load_train_config(name)
    except ConfigError:
        return None


def _targets() -> tuple[Target, Target, Target]:
    """CPU LoRA, consumer-GPU QLoRA and rented-H100 LoRA, with estimate.py's figures."""
    from training.dataset.estimate import (
        CONSUMER_GPU_7B_QLORA_TOKENS_PER_S,
        CPU_SMOLLM2_135M_TOKENS_PER_S,
        H100_7B_LORA_TOKENS_PER_S,
        H100_USD_PER_HOUR,
        Target,
    )

    return (
        Target("SmolLM2-135M LoRA on the CPU", "local", tokens_per_s=CPU_SMOLLM2_135M_TOKENS_PER_S),
        Target("7B QLoRA on one GPU", "local", tokens_per_s=CONSUMER_GPU_7B_QLORA_TOKENS_PER_S),
        Target(
            "1× H100 7B LoRA",
            "local",
            tokens_per_s=H100_7B_LORA_TOKENS_PER_S,
            usd_per_hour=H100_USD_PER_HOUR,
        ),
    )


def _estimate(tokens: TokenCounts | None, target: Target) -> Estimate | None:
    """`training.dataset.estimate.estimate` for one target, from counts already made."""
    if tokens is None:
        return None
    from training.dataset.estimate import DEFAULT_EPOCHS, estimate, rough_token_count

    (result,) = estimate(
        [], token_counter=rough_token_count, targets=[target], epochs=DEFAULT_EPOCHS, counts=tokens
    )
    return result


def _hours(result: Estimate | None) -> float | None:
    return None if result is None or result.seconds is None else result.seconds / 3600


def _card_tokens(card: Path) -> TokenCounts | None:
    """The token counts `dataset_card.json` recorded; None when it has none."""
    from training.dataset.estimate import SplitTokens, TokenCounts

    try:
        section = json.loads(card.read_text(encoding="utf-8")).get("tokens")
        if not section:
            return None
        return TokenCounts(
            train=SplitTokens(**section["train"]),
            eval=SplitTokens(**section["eval"]),
            counter=str(section["counter"]),
            tokens_per_message=int(section["tokens_per_message"]),
            tokens_per_sample=int(section.get("tokens_per_sample", 0)),  # older cards lack it
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _train_command(preset: str, dataset: Path) -> str:
    return f"wa-persona train --config {preset} --dataset {dataset}"


def _duration(hours: float | None) -> str:
    if hours is None:
        return "an unknown time (the dataset card has no token counts)"
    if hours < 1.5:
        return f"{hours * 60:,.0f} min"
    if hours < 48:
        return f"{hours:,.1f} h"
    return f"{hours / 24:,.1f} days"


# --- output ----------------------------------------------------------------------------------

_STYLES = {
    CheckStatus.OK: "[green]ok[/]",
    CheckStatus.WARN: "[yellow]warn[/]",
    CheckStatus.FAIL: "[bold red]FAIL[/]",
    CheckStatus.SKIP: "[dim]skip[/]",
}


def render_report(report: DoctorReport) -> list[RenderableType]:
    """The checks table, the recommendations table and the verdict, for a rich console."""
    from rich.table import Table
    from rich.text import Text

    checks = Table(title="wa-persona doctor")
    checks.add_column("check", no_wrap=True)
    checks.add_column("status", no_wrap=True)
    checks.add_column("detail")
    for check in report.checks:
        checks.add_row(check.name, _STYLES[check.status], Text(check.detail))
    shown: list[RenderableType] = [checks]
    if report.recommendations:
        table = Table(title="How to answer as each persona")
        table.add_column("persona", no_wrap=True)
        table.add_column("approach", no_wrap=True)
        table.add_column("why, and how")
        for item in report.recommendations:
            lines = [item.reason, *item.notes]
            if item.command:
                lines.append(f"$ {item.command}")
            table.add_row(Text(item.persona), item.approach.value, Text("\n".join(lines)))
        shown.append(table)
    verdict = (
        "[green]The essentials work.[/]"
        if report.ok
        else "[bold red]Something the service needs is broken (FAIL above).[/]"
    )
    shown.append(verdict)
    return shown
