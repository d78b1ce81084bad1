"""A persona's assets on disk: everything the bot needs to answer as one person.

    <data_dir>/personas/<slug>/
        persona.json    name, sources (sha256 and size only), counts, style strength, times
        profile.json    the style profile (of the scrubbed messages)
        report.html     the profile's charts (optional)
        card.txt        the persona card: the system prompt the dataset was built with
        dataset/        what `wa-persona dataset` writes (scrubbed per the settings)
        exchanges.npz   the retrieval index of the dataset's training split

`prepare_persona` (from export files) and `prepare_persona_from_chats` (from parsed chats,
such as the bot's stored uploads) build every asset into a hidden folder beside the
persona's and swap it in only when all of them are written, so a failed rebuild (a corrupt
export, a crash) never loses the assets that were there. `ensure_persona` reuses them while
the exports and the settings that shaped them are unchanged. `delete_persona` removes the
files, the persona's model versions (and the run folders under the data dir they point at)
and its conversations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import BotError
from bot.scrubbing import training_scrubber_factory
from bot.settings import Settings
from style.errors import StyleError
from training.errors import TrainingError
from training.registry import persona_slug

if TYPE_CHECKING:
    from sqlite_utils import Database

    from bot.exchanges import ExchangeIndex
    from style.messages import Chat
    from style.profile import Profile
    from style.scrub import Scrubber

__all__ = [
    "CARD_FILE",
    "CLAUDE_CARD_FILE",
    "DATASET_DIR",
    "INDEX_FILE",
    "INFO_FILE",
    "PERSONA_FORMAT",
    "PREPARE_STEPS",
    "PROFILE_FILE",
    "REPORT_FILE",
    "PersonaAssets",
    "PersonaDeletion",
    "PersonaError",
    "PersonaInfo",
    "SourceFile",
    "UnknownPersonaError",
    "delete_persona",
    "ensure_persona",
    "list_personas",
    "load_persona",
    "personas_dir",
    "prepare_persona",
    "prepare_persona_from_chats",
    "save_style_strength",
]

logger = logging.getLogger(__name__)

PERSONA_FORMAT = 1
"""Bumped when the assets change shape; older folders are rebuilt by `ensure_persona`."""
INFO_FILE = "persona.json"
PROFILE_FILE = "profile.json"
REPORT_FILE = "report.html"
CARD_FILE = "card.txt"
DATASET_DIR = "dataset"
CLAUDE_CARD_FILE = "claude_card.txt"
"""Claude's own style card (`wa-persona analyze --save`); kept when the assets are rebuilt."""
INDEX_FILE = "exchanges.npz"

PREPARE_STEPS = ("read", "scrub", "profile", "dataset", "index", "save")
"""The steps of `prepare_persona`, in order; `on_progress` gets each name as it starts."""

_STALE_S = 3600.0
"""A hidden build folder older than this was left by a crash and is removed."""
_CHUNK = 1 << 20


class PersonaError(BotError):
    """A persona's assets cannot be built, found or read."""


class UnknownPersonaError(PersonaError):
    """No persona of this name has been prepared."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One export a persona was built from, by content: never its name or path."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class PersonaInfo:
    """`persona.json`: what a persona is built from and its settings; no message text."""

    name: str
    slug: str
    sources: tuple[SourceFile, ...]
    build_key: str
    """A hash of the settings that shaped the assets (scrubbing, conversation gap, format)."""
    created_at: datetime
    updated_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    """messages, persona_messages, train_samples, eval_samples, exchanges."""
    style_strength: float = 1.0
    """0 ("inspired by") .. 1 ("exact replication"); the engine's default for this persona."""
    notes: tuple[str, ...] = ()
    format: int = PERSONA_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (times as ISO 8601)."""
        return {
            "format": self.format,
            "name": self.name,
            "slug": self.slug,
            "sources": [{"sha256": s.sha256, "size": s.size} for s in self.sources],
            "build_key": self.build_key,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "counts": dict(self.counts),
            "style_strength": self.style_strength,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PersonaInfo:
        """Read what `to_dict` wrote."""
        return cls(
            name=data["name"],
            slug=data["slug"],
            sources=tuple(SourceFile(s["sha256"], int(s["size"])) for s in data["sources"]),
            build_key=data["build_key"],
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            style_strength=float(data.get("style_strength", 1.0)),
            notes=tuple(data.get("notes", ())),
            format=int(data.get("format", 0)),
        )


class PersonaAssets:
    """A prepared persona: its info, profile and card in memory, the index loaded on first use."""

    def __init__(self, folder: Path, info: PersonaInfo, profile: Profile, card: str) -> None:
        self.folder = folder
        self.info = info
        self.profile = profile
        self.card = card
        self._index: ExchangeIndex | None = None

    @property
    def name(self) -> str:
        """The persona's name, exactly as the exports write it."""
        return self.info.name

    @property
    def dataset_dir(self) -> Path:
        """The `wa-persona dataset` folder (train.jsonl, openai_train.jsonl, the card...)."""
        return self.folder / DATASET_DIR

    @property
    def index_path(self) -> Path:
        """The retrieval index file."""
        return self.folder / INDEX_FILE

    @property
    def report_path(self) -> Path | None:
        """The profile's HTML report, when one was written."""
        path = self.folder / REPORT_FILE
        return path if path.is_file() else None

    @property
    def index(self) -> ExchangeIndex:
        """The persona's past exchanges, read from disk the first time they are needed."""
        return self._index if self._index is not None else self.load_index()

    def load_index(self) -> ExchangeIndex:
        """Read the retrieval index from disk (again); `ExchangeIndexError` when unreadable."""
        from bot.exchanges import ExchangeIndex

        self._index = ExchangeIndex.load(self.index_path)
        return self._index

    def __repr__(self) -> str:
        return f"PersonaAssets({self.name!r}, {str(self.folder)!r})"


@dataclass(frozen=True, slots=True)
class PersonaDeletion:
    """What `delete_persona` removed, and model folders it left because they are not ours."""

    name: str
    files: bool
    versions: tuple[str, ...]
    turns: int
    kept_paths: tuple[str, ...] = ()


ProgressCallback = Callable[[str], None]


def personas_dir(settings: Settings) -> Path:
    """The folder holding one folder per persona."""
    return settings.data_dir / "personas"


def prepare_persona(
    settings: Settings,
    name: str,
    exports: Sequence[str | os.PathLike[str]],
    *,
    on_progress: ProgressCallback | None = None,
    report: bool = False,
) -> PersonaAssets:
    """Build every asset of `name` from `exports`, replacing the persona's assets atomically.

    Args:
        name: the author to answer as, exactly as the exports write it.
        exports: WhatsApp .txt/.zip exports or Telegram result.json files.
        on_progress: called with each of `PREPARE_STEPS` as it starts.
        report: also write `report.html` (charts; needs matplotlib, takes a few seconds).

    Raises:
        PersonaError: the exports cannot be read, the name is not an author in them, or
            nothing is left to learn from; whatever was prepared before is kept.
    """
    if not exports:
        raise PersonaError(f"give at least one export to build {name} from")
    paths = [Path(p) for p in exports]

    def read() -> tuple[list[Chat], tuple[SourceFile, ...]]:
        from style.parse import load_chats

        sources = _hash_sources(paths)
        limits = settings.export_limits()
        return [chat for path in paths for chat in load_chats(path, limits=limits)], sources

    return _prepare(settings, name, read, on_progress, report)


def prepare_persona_from_chats(
    settings: Settings,
    name: str,
    chats: Sequence[Chat],
    sources: Sequence[SourceFile],
    *,
    on_progress: ProgressCallback | None = None,
    report: bool = False,
) -> PersonaAssets:
    """Build every asset of `name` from chats already parsed (the bot's stored messages).

    The same pipeline and the same atomic swap as `prepare_persona`; `sources` names what the
    chats came from (the uploaded files' hashes and sizes) for `persona.json`.
    """
    if not chats:
        raise PersonaError(f"there are no messages to build {name} from; send a chat export first")
    return _prepare(settings, name, lambda: (list(chats), tuple(sources)), on_progress, report)


def _prepare(
    settings: Settings,
    name: str,
    read: Callable[[], tuple[list[Chat], tuple[SourceFile, ...]]],
    on_progress: ProgressCallback | None,
    report: bool,
) -> PersonaAssets:
    """Build the assets into a hidden folder and swap it in; `read` gives the chats."""
    if not name.strip():
        raise PersonaError("a persona needs a name: the author's name as the export writes it")
    slug = persona_slug(name)
    target = personas_dir(settings) / slug
    previous = _previous_info(target)
    if previous is not None and previous.name != name:
        raise PersonaError(
            f"the persona folder {target} belongs to {previous.name!r}; remove it first "
            f"(wa-persona persona remove {previous.name!r}) or choose another name"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(target.parent)
    building = target.parent / f".{slug}.build-{secrets.token_hex(4)}"
    building.mkdir()
    try:
        info = _build(settings, name, read, building, previous, on_progress)
        if report:
            from style.report import write_report

            write_report(_read_profile(building), building)
        _keep_written_by_hand(target, building)
        _swap(building, target)
    except (StyleError, TrainingError, BotError, OSError, ValueError) as exc:
        shutil.rmtree(building, ignore_errors=True)
        kept = "; the previous assets are kept" if previous is not None else ""
        raise PersonaError(f"cannot prepare persona {name!r}: {exc}{kept}") from exc
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    logger.info(
        "prepared persona %s: %d training samples, %d exchanges",
        slug,
        info.counts.get("train_samples", 0),
        info.counts.get("exchanges", 0),
    )
    return load_persona(settings, name)


def ensure_persona(
    settings: Settings,
    name: str,
    exports: Sequence[str | os.PathLike[str]],
    *,
    on_progress: ProgressCallback | None = None,
) -> PersonaAssets:
    """The persona's assets, rebuilt only when the exports or the relevant settings changed."""
    info = _previous_info(personas_dir(settings) / persona_slug(name))
    if info is not None:
        sources = _hash_sources([Path(p) for p in exports])
        if info.name == name and info.sources == sources and info.build_key == _build_key(settings):
            try:
                return load_persona(settings, name, load_index=True)
            except BotError as exc:
                logger.info("persona %s is unreadable (%s); preparing it again", info.slug, exc)
    return prepare_persona(settings, name, exports, on_progress=on_progress)


def load_persona(settings: Settings, name: str, *, load_index: bool = False) -> PersonaAssets:
    """The prepared persona `name` (matched by its slug, so case does not matter).

    The retrieval index is read on first use, or now with `load_index` (so a damaged or
    outdated one fails here rather than mid-chat).
    """
    folder = personas_dir(settings) / persona_slug(name)
    if not (folder / INFO_FILE).is_file():
        known = [info.name for info in list_personas(settings)]
        listed = f"known personas: {', '.join(known)}" if known else "no persona is prepared yet"
        raise UnknownPersonaError(
            f"no persona named {name!r} ({listed}); create one with "
            f"`wa-persona persona add {name!r} EXPORT...`"
        )
    info = _read_info(folder)
    try:
        card = (folder / CARD_FILE).read_text(encoding="utf-8")
        profile = _read_profile(folder)
    except (OSError, StyleError) as exc:
        raise _broken(folder, info.name, exc) from exc
    if not (folder / INDEX_FILE).is_file():
        raise _broken(folder, info.name, FileNotFoundError(INDEX_FILE))
    assets = PersonaAssets(folder, info, profile, card)
    if load_index:
        assets.load_index()
    return assets


def list_personas(settings: Settings) -> list[PersonaInfo]:
    """Every prepared persona's info, by name."""
    root = personas_dir(settings)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / INFO_FILE).is_file():
            continue
        try:
            found.append(_read_info(folder))
        except PersonaError as exc:
            logger.warning("%s", exc)
    return sorted(found, key=lambda info: info.name.casefold())


def save_style_strength(settings: Settings, name: str, strength: float) -> PersonaInfo:
    """Store the persona's default style strength (0 "inspired by" .. 1 "exact") in persona.json."""
    if not 0.0 <= strength <= 1.0:
        raise PersonaError(f"style strength runs from 0 to 1, not {strength}")
    folder = personas_dir(settings) / persona_slug(name)
    if not (folder / INFO_FILE).is_file():
        load_persona(settings, name)  # raises the helpful unknown-persona error
    current = _read_info(folder)
    updated = replace(current, style_strength=strength, updated_at=datetime.now(UTC))
    _write_json(folder / INFO_FILE, updated.to_dict())
    return updated


def delete_persona(settings: Settings, name: str, *, db: Database | None = None) -> PersonaDeletion:
    """Delete the persona for good: files, model versions (and our run folders), conversations.

    Model folders outside the data dir (imported with `wa-persona models import`) are left
    where they are and listed in `kept_paths`. Rows are deleted with SQLite's `secure_delete`
    on, so their text is overwritten rather than left in free pages; pass `db` to delete
    through an open connection (the service's), else the settings' database is opened.
    """
    from bot.store import Store
    from training.db import connect
    from training.registry import Registry

    folder = personas_dir(settings) / persona_slug(name)
    has_files = folder.is_dir()
    if has_files and (folder / INFO_FILE).is_file():
        name = _read_info(folder).name
    own = db is None
    conn = connect(settings.database_path()) if db is None else db
    try:
        conn.execute("PRAGMA secure_delete = ON")
        removed = Registry(conn).delete_persona(name)
        turns = Store(conn).delete_persona(name)
    finally:
        if own:
            conn.close()
    if not has_files and not removed and not turns:
        load_persona(settings, name)  # raises the helpful unknown-persona error
    kept = [p for version in removed if (p := _remove_model_files(settings, version.path))]
    if has_files:
        shutil.rmtree(folder)
    logger.info("deleted persona %s: %d model versions", persona_slug(name), len(removed))
    return PersonaDeletion(
        name=name,
        files=has_files,
        versions=tuple(version.version for version in removed),
        turns=turns,
        kept_paths=tuple(kept),
    )


# --- building -----------------------------------------------------------------------------


def _build(
    settings: Settings,
    name: str,
    read: Callable[[], tuple[list[Chat], tuple[SourceFile, ...]]],
    out: Path,
    previous: PersonaInfo | None,
    on_progress: ProgressCallback | None,
) -> PersonaInfo:
    """Write every asset into `out`; return the info written."""
    from bot.exchanges import ExchangeIndex
    from style.profile import build_profile
    from training.dataset import (
        DatasetConfig,
        build_dataset,
        load_token_counter,
        write_card,
        write_dataset,
    )

    step = on_progress or (lambda _: None)
    step("read")
    chats, sources = read()
    messages = [m for chat in chats for m in chat.messages]

    step("scrub")
    make_scrubber = training_scrubber_factory(settings, name)
    # The profile is measured on the scrubbed chats, as `build_dataset` would; the dataset
    # gets its own scrubber so its card counts one pass and hashes the chats as given.
    profiled = chats if make_scrubber is None else _scrubbed(chats, make_scrubber(messages))

    step("profile")
    gap = settings.conversation_gap_minutes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profile = build_profile(
            profiled, name, gap_minutes=gap, min_messages=settings.profile_min_messages
        )
        del profiled

        step("dataset")
        counter = load_token_counter(_dataset_tokenizer(settings))
        build = build_dataset(
            chats,
            name,
            DatasetConfig(gap_minutes=gap),
            profile=profile,
            scrubber=make_scrubber(messages) if make_scrubber is not None else None,
            token_counter=counter,
        )
    notes = [*(str(w.message) for w in caught), *build.notes]
    del chats, messages
    files = write_dataset(build, out / DATASET_DIR, token_counter=counter)
    write_card(build, out / DATASET_DIR, files, token_counter=counter)

    step("index")
    index = ExchangeIndex.from_samples(build.train)
    index.save(out / INDEX_FILE)

    step("save")
    (out / PROFILE_FILE).write_text(profile.to_json() + "\n", encoding="utf-8")
    (out / CARD_FILE).write_text(build.card, encoding="utf-8")
    now = datetime.now(UTC)
    info = PersonaInfo(
        name=name,
        slug=persona_slug(name),
        sources=sources,
        build_key=_build_key(settings),
        created_at=previous.created_at if previous is not None else now,
        updated_at=now,
        counts={
            "messages": sum(source.messages for source in build.sources),
            "persona_messages": sum(source.persona_messages for source in build.sources),
            "train_samples": len(build.train),
            "eval_samples": len(build.eval),
            "exchanges": len(index),
        },
        style_strength=previous.style_strength if previous is not None else 1.0,
        notes=tuple(notes),
    )
    _write_json(out / INFO_FILE, info.to_dict())
    return info


def _scrubbed(chats: list[Chat], scrubber: Scrubber) -> list[Chat]:
    from style.messages import Chat

    return [
        Chat(
            source=chat.source,
            dialect=chat.dialect,
            messages=list(scrubber.scrub_messages(chat.messages)),
            participants=list(chat.participants),
            unparsed_lines=chat.unparsed_lines,
        )
        for chat in chats
    ]


def _build_key(settings: Settings) -> str:
    """A hash of everything besides the exports that changes the assets."""
    from bot.exchanges import INDEX_VERSION

    shaping = {
        "format": PERSONA_FORMAT,
        "index": INDEX_VERSION,
        "gap_minutes": settings.conversation_gap_minutes,
        "min_messages": settings.profile_min_messages,
        "scrub_training": settings.scrub_training,
        "scrub_mode": str(settings.scrub_mode),
        "scrub_names": sorted(settings.scrub_names),
        "scrub_blocklist": sorted(settings.scrub_blocklist),
        "scrub_region": settings.scrub_region,
        "scrub_authors": settings.scrub_authors,
        "tokenizer": settings.dataset_tokenizer,
    }
    raw = json.dumps(shaping, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _dataset_tokenizer(settings: Settings) -> str | None:
    """`dataset_tokenizer` as transformers loads it (a fetched model's name becomes its
    folder); an unfetched catalogue name is refused, as training would refuse it."""
    name = settings.dataset_tokenizer
    if not name:
        return None
    from training.pretrained import PretrainedError, resolve_model_name

    try:
        return resolve_model_name(name, settings.models_dir())
    except PretrainedError as exc:
        raise PersonaError(f"WA_PERSONA_DATASET_TOKENIZER: {exc}") from exc


def _hash_sources(paths: Sequence[Path]) -> tuple[SourceFile, ...]:
    found = []
    for path in paths:
        digest = hashlib.sha256()
        size = 0
        try:
            with path.open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except IsADirectoryError as exc:
            raise PersonaError(f"{path} is a folder; give the export file itself") from exc
        except OSError as exc:
            raise PersonaError(f"{path}: cannot read the export ({exc.strerror})") from exc
        found.append(SourceFile(digest.hexdigest(), size))
    return tuple(found)


# --- files --------------------------------------------------------------------------------


def _keep_written_by_hand(target: Path, building: Path) -> None:
    """Carry Claude's card (not derived from the exports, and paid for) into the new build."""
    card = target / CLAUDE_CARD_FILE
    if card.is_file():
        shutil.copy2(card, building / CLAUDE_CARD_FILE)


def _swap(built: Path, target: Path) -> None:
    """Put `built` where `target` is; the old folder goes only once the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        target.rename(old)
    try:
        built.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_builds(root: Path) -> None:
    """Remove hidden build folders a crashed run left behind (older than `_STALE_S`)."""
    cutoff = time.time() - _STALE_S
    for folder in root.glob(".*"):
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def _remove_model_files(settings: Settings, path: str | None) -> str | None:
    """Remove a model version's folder when it is ours (under the data dir); else return it.

    A folder in a training run (`<runs>/<run>/adapter`) takes its whole run folder with it.
    """
    if not path:
        return None
    folder = Path(path).expanduser().resolve()
    data = settings.data_dir.expanduser().resolve()
    runs = settings.runs_dir().expanduser().resolve()
    if not folder.is_relative_to(data):
        return str(folder)
    if folder.parent.parent == runs:
        folder = folder.parent
    if folder.is_dir():
        shutil.rmtree(folder)
    return None


def _read_info(folder: Path) -> PersonaInfo:
    path = folder / INFO_FILE
    try:
        return PersonaInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _broken(folder, folder.name, exc) from exc


def _previous_info(folder: Path) -> PersonaInfo | None:
    """The info of what is prepared in `folder`; None when nothing (readable) is there."""
    if not (folder / INFO_FILE).is_file():
        return None
    try:
        return _read_info(folder)
    except PersonaError as exc:
        logger.warning("%s; it will be replaced", exc)
        return None


def _read_profile(folder: Path) -> Profile:
    from style.profile import Profile

    return Profile.from_json((folder / PROFILE_FILE).read_text(encoding="utf-8"))


def _broken(folder: Path, name: str, exc: BaseException) -> PersonaError:
    return PersonaError(
        f"{folder} is incomplete or damaged ({type(exc).__name__}: {exc}); prepare it again "
        f"with `wa-persona persona add {name!r} EXPORT...`"
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as JSON, replacing `path` in one step."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    partial.replace(path)
