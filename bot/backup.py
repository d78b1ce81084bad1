"""`wa-persona backup` / `restore`: the whole install in one private, checksummed archive.

    manifest.json         format, wa-persona version, time, the data dir it came from, and
                          every file's path, size and sha256
    database.sqlite       the database, copied with SQLite's online backup API: a consistent
                          snapshot even while the service writes
    data/...              everything else under the data dir: personas (profiles, datasets,
                          indexes), training runs and adapters, uploads, the pseudonym salt;
                          other SQLite files there (the scheduler's job store) are copied with
                          the online backup API too

Hidden entries (build folders of a persona being rebuilt, caches), SQLite's `-wal`/`-shm`
sidecars and the service heartbeat are left out. The archive holds private chats: it is
written 0600 and should be stored like the chats themselves.

`restore_backup` checks every file against the manifest before anything is touched, unpacks
into a hidden folder inside the data dir, migrates the database there (so one written by a
newer wa-persona is refused up front), points registry versions at the new data dir, and only
then swaps the entries in; a failed swap puts the old ones back. The checksums catch damage
and edits, not someone who rewrites the manifest too: keep archives where only you can write.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from bot.doctor import HEARTBEAT_FILE, HEARTBEAT_MAX_AGE_S, heartbeat_age, known_migrations
from bot.errors import BotError
from bot.settings import Settings

__all__ = [
    "BACKUP_FORMAT",
    "MANIFEST_NAME",
    "BackupError",
    "BackupFile",
    "BackupManifest",
    "BackupResult",
    "RestoreResult",
    "ServiceRunningError",
    "TamperedArchiveError",
    "TargetNotEmptyError",
    "create_backup",
    "read_manifest",
    "restore_backup",
]

BACKUP_FORMAT = 1
MANIFEST_NAME = "manifest.json"
DATABASE_NAME = "database.sqlite"
DATA_PREFIX = "data"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SIDECARS = ("-wal", "-shm", "-journal")
_CHUNK = 1 << 20


class BackupError(BotError):
    """A backup cannot be written or restored as asked."""


class TamperedArchiveError(BackupError):
    """The archive does not match its manifest: damaged, edited, or not a wa-persona backup."""


class TargetNotEmptyError(BackupError):
    """The data dir already holds an install; restoring would replace it."""


class ServiceRunningError(BackupError):
    """The service is running on the data dir that a restore would replace."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One archived file: its path in the archive, size and sha256."""

    path: str
    size: int
    sha256: str
    sqlite: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "sqlite": self.sqlite}


@dataclass(frozen=True, slots=True)
class BackupManifest:
    """What an archive holds and where it came from."""

    format: int
    version: str
    created_at: datetime
    data_dir: str
    database_in_data_dir: str | None
    """The database's path relative to the source data dir, when it was inside it."""
    components: dict[str, int]
    files: tuple[BackupFile, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "format": self.format,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "data_dir": self.data_dir,
            "database_in_data_dir": self.database_in_data_dir,
            "components": dict(self.components),
            "files": [item.to_dict() for item in self.files],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupManifest:
        """Read what `to_dict` wrote; `TamperedArchiveError` when it is not that."""
        try:
            return cls(
                format=int(data["format"]),
                version=str(data["version"]),
                created_at=datetime.fromisoformat(data["created_at"]),
                data_dir=str(data["data_dir"]),
                database_in_data_dir=data.get("database_in_data_dir"),
                components={str(k): int(v) for k, v in data.get("components", {}).items()},
                files=tuple(
                    BackupFile(str(f["path"]), int(f["size"]), str(f["sha256"]), bool(f["sqlite"]))
                    for f in data["files"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TamperedArchiveError(
                f"the manifest is not a wa-persona manifest ({exc})"
            ) from exc


@dataclass(frozen=True, slots=True)
class BackupResult:
    """A written archive."""

    path: Path
    manifest: BackupManifest
    bytes: int
    skipped: tuple[str, ...] = ()
    """Links and special files under the data dir, which are not archived."""


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """A restored install."""

    data_dir: Path
    database: Path
    files: int
    components: dict[str, int]
    moved_paths: int
    """Registry versions whose folder moved from the old data dir to the new one."""
    replaced: bool


# --- backup ----------------------------------------------------------------------------------


def create_backup(
    settings: Settings, out: Path, *, include_runs: bool = True, overwrite: bool = False
) -> BackupResult:
    """Write the database and the data dir into `out` (a .tar.gz readable only by you).

    Args:
        include_runs: also archive training runs (adapters, merged models: can be large).
        overwrite: replace an existing `out`.
    """
    out = out.expanduser().absolute()
    data_dir = settings.data_dir.expanduser().absolute()
    database = settings.database_path().expanduser().absolute()
    if out.exists() and not overwrite:
        raise BackupError(f"{out} exists; choose another name or pass --force to replace it")
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent} does not exist; create it first")
    if not data_dir.is_dir() and not database.is_file():
        raise BackupError(f"nothing to back up: {data_dir} does not exist")

    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.partial")
    runs = settings.runs_dir().expanduser().absolute()
    skip = {out, partial}
    entries: list[BackupFile] = []
    components: dict[str, int] = {}
    skipped: list[str] = []
    staging = Path(tempfile.mkdtemp(prefix=".wa-persona-backup-", dir=out.parent))
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(
                fileobj=raw, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT
            ) as tar,
        ):
            if database.is_file():
                copy = staging / DATABASE_NAME
                components = _snapshot(database, copy)
                entries.append(_add_file(tar, copy, DATABASE_NAME, sqlite=True))
            for path in _data_files(data_dir, skip | {database}, skipped):
                if not include_runs and path.is_relative_to(runs):
                    continue
                name = f"{DATA_PREFIX}/{path.relative_to(data_dir).as_posix()}"
                if _is_sqlite(path):
                    copy = staging / f"file-{len(entries)}.sqlite"
                    _snapshot(path, copy)
                    entries.append(_add_file(tar, copy, name, sqlite=True))
                else:
                    entries.append(_add_file(tar, path, name))
            manifest = BackupManifest(
                format=BACKUP_FORMAT,
                version=_version(),
                created_at=datetime.now(UTC),
                data_dir=str(data_dir),
                database_in_data_dir=(
                    database.relative_to(data_dir).as_posix()
                    if database.is_relative_to(data_dir)
                    else None
                ),
                components=components,
                files=tuple(entries),
            )
            _add_bytes(tar, MANIFEST_NAME, json.dumps(manifest.to_dict(), indent=2).encode())
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BackupResult(out, manifest, out.stat().st_size, tuple(skipped))


def _data_files(data_dir: Path, skip: set[Path], skipped: list[str]) -> Iterator[Path]:
    """Every file to archive under `data_dir`, in a stable order.

    Links and special files go to `skipped` (a link may point anywhere on the machine).
    """
    if not data_dir.is_dir():
        return
    for root, dirs, files in os.walk(data_dir):
        folder = Path(root)
        skipped.extend(str(folder / d) for d in dirs if (folder / d).is_symlink())
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (folder / d).is_symlink())
        for name in sorted(files):
            path = folder / name
            if name.startswith(".") or path in skip or _is_sidecar(path, skip):
                continue
            if folder == data_dir and name == HEARTBEAT_FILE:
                continue
            if path.is_symlink() or not path.is_file():
                skipped.append(str(path))
                continue
            yield path


def _is_sidecar(path: Path, skip: set[Path]) -> bool:
    """Whether `path` is the -wal/-shm/-journal file of a SQLite database beside it."""
    for suffix in _SIDECARS:
        if path.name.endswith(suffix):
            main = path.with_name(path.name.removesuffix(suffix))
            return main in skip or _is_sqlite(main)
    return False


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _snapshot(source: Path, target: Path) -> dict[str, int]:
    """Copy a live SQLite database with the online backup API; its schema versions.

    One step (`pages=-1`) reads the whole database in one read transaction, so the copy is
    exactly one committed state however busy the writers are (WAL keeps them unblocked).
    """
    try:
        src = sqlite3.connect(source, timeout=30)
        dst = sqlite3.connect(target)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{source} is damaged ({check}); nothing was written")
            try:
                rows = dst.execute(
                    "SELECT component, MAX(version) FROM schema_migrations GROUP BY component"
                ).fetchall()
            except sqlite3.OperationalError:
                rows = []
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: cannot copy the database ({exc})") from exc
    return {str(name): int(version) for name, version in rows}


class _HashingReader:
    """Reads a stream for tarfile and hashes exactly the bytes that went into the archive."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size)
        self.digest.update(chunk)
        return chunk


def _add_file(tar: tarfile.TarFile, path: Path, name: str, *, sqlite: bool = False) -> BackupFile:
    try:
        with path.open("rb") as stream:
            stat = os.fstat(stream.fileno())
            info = _tarinfo(name, stat.st_size, stat.st_mtime)
            reader = _HashingReader(stream)
            tar.addfile(info, reader)  # type: ignore[arg-type]
    except OSError as exc:
        raise BackupError(
            f"{path} changed or vanished while it was archived ({exc}); run the backup again"
        ) from exc
    return BackupFile(name, info.size, reader.digest.hexdigest(), sqlite)


def _add_bytes(tar: tarfile.TarFile, name: str, content: bytes) -> None:
    tar.addfile(_tarinfo(name, len(content), time.time()), io.BytesIO(content))


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    """A member that says nothing about this machine's users."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _version() -> str:
    try:
        return metadata.version("wa-persona")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- restore ---------------------------------------------------------------------------------


def read_manifest(archive: Path) -> BackupManifest:
    """The manifest of `archive` (nothing is unpacked)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            return _manifest(tar)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TamperedArchiveError(f"{archive} is not a readable .tar.gz ({exc})") from exc


def restore_backup(settings: Settings, archive: Path, *, force: bool = False) -> RestoreResult:
    """Restore `archive` into the settings' data dir (and database path), all or nothing.

    Refused when the data dir holds an install and `force` is not given, when the service's
    heartbeat there is fresh, and when any file does not match the manifest.
    """
    data_dir = settings.data_dir.expanduser().absolute()
    database = settings.database_path().expanduser().absolute()
    age = heartbeat_age(settings)
    if age is not None and age < HEARTBEAT_MAX_AGE_S:
        raise ServiceRunningError(
            f"the service is running on {data_dir} (heartbeat {age:.0f} s ago); stop it first"
        )
    current = _install_entries(data_dir, database)
    occupied = sorted(p.name for p in current if p.name != HEARTBEAT_FILE)
    if occupied and not force:
        raise TargetNotEmptyError(
            f"{data_dir} already holds data ({', '.join(occupied[:5])}); restore into an "
            "empty data dir, or pass --force to replace it"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=data_dir))
    try:
        manifest = _unpack(archive, staging)
        components, moved = _prepare_database(
            staging / DATABASE_NAME, Path(manifest.data_dir), data_dir
        )
        new_data = staging / DATA_PREFIX
        new_data.mkdir(exist_ok=True)
        external_db: Path | None = None
        if (staging / DATABASE_NAME).is_file():
            if database.is_relative_to(data_dir):
                target = new_data / database.relative_to(data_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                (staging / DATABASE_NAME).rename(target)
            else:
                external_db = staging / DATABASE_NAME
        _swap(new_data, data_dir, current, external_db, database, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RestoreResult(
        data_dir=data_dir,
        database=database,
        files=len(manifest.files),
        components=components,
        moved_paths=moved,
        replaced=bool(occupied),
    )


def _install_entries(data_dir: Path, database: Path) -> list[Path]:
    """What a restore replaces: the data dir's visible entries, and the database's files."""
    found = []
    if data_dir.is_dir():
        found = [p for p in data_dir.iterdir() if not p.name.startswith(".")]
    if not database.is_relative_to(data_dir):
        found += [
            p
            for p in (database, *(database.with_name(database.name + s) for s in _SIDECARS))
            if p.exists()
        ]
    return found


def _manifest(tar: tarfile.TarFile) -> BackupManifest:
    try:
        member = tar.getmember(MANIFEST_NAME)
    except KeyError as exc:
        raise TamperedArchiveError("no manifest.json: not a wa-persona backup") from exc
    stream = tar.extractfile(member)
    if stream is None:
        raise TamperedArchiveError("manifest.json is not a file")
    try:
        manifest = BackupManifest.from_dict(json.loads(stream.read()))
    except ValueError as exc:
        raise TamperedArchiveError(f"manifest.json is not JSON ({exc})") from exc
    if manifest.format > BACKUP_FORMAT:
        raise BackupError(
            f"this backup has format {manifest.format}, newer than this wa-persona reads "
            f"({BACKUP_FORMAT}); upgrade wa-persona"
        )
    return manifest


def _unpack(archive: Path, staging: Path) -> BackupManifest:
    """Unpack into `staging`, checking each file's size and sha256 against the manifest."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = _manifest(tar)
            expected = {item.path: item for item in manifest.files}
            seen: set[str] = set()
            for member in tar:
                if member.name == MANIFEST_NAME:
                    continue
                item = expected.get(member.name)
                if item is None or not member.isfile() or member.name in seen:
                    raise TamperedArchiveError(
                        f"{member.name} is not in the manifest (or not a plain file)"
                    )
                seen.add(member.name)
                _extract(tar, member, item, staging)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TamperedArchiveError(f"{archive} cannot be read ({exc})") from exc
    missing = sorted(set(expected) - seen)
    if missing:
        raise TamperedArchiveError(f"files listed in the manifest are missing: {missing[:5]}")
    return manifest


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, item: BackupFile, to: Path) -> None:
    relative = PurePosixPath(member.name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise TamperedArchiveError(f"{member.name} points outside the data dir")
    if relative.parts[0] not in (DATA_PREFIX, DATABASE_NAME):
        raise TamperedArchiveError(f"{member.name} is not a database or data file")
    target = to.joinpath(*relative.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    if source is None:
        raise TamperedArchiveError(f"{member.name} cannot be read")
    digest = hashlib.sha256()
    size = 0
    with source, target.open("xb") as sink:
        os.chmod(target, 0o600)
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    if size != item.size or digest.hexdigest() != item.sha256:
        raise TamperedArchiveError(
            f"{member.name} does not match the manifest (damaged or edited); nothing was restored"
        )


def _prepare_database(path: Path, old_data: Path, new_data: Path) -> tuple[dict[str, int], int]:
    """Migrate the unpacked database and move registry paths to the new data dir.

    Done before the swap, so a database from a newer wa-persona is refused with the old
    install untouched.
    """
    if not path.is_file():
        return {}, 0
    from training.db import DatabaseError, connect, migrate
    from training.errors import TrainingError
    from training.registry import Registry

    try:
        db = connect(path)
    except DatabaseError as exc:
        raise BackupError(f"the archived database cannot be opened ({exc})") from exc
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise TamperedArchiveError("the archived database is damaged")
        components = {
            name: migrate(db, name, scripts) for name, scripts in known_migrations().items()
        }
        moved = 0
        if old_data != new_data:
            registry = Registry(db)
            for version in registry.list():
                if version.path and Path(version.path).is_relative_to(old_data):
                    moved_to = new_data / Path(version.path).relative_to(old_data)
                    registry.update(version.version, path=moved_to)
                    moved += 1
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except TrainingError as exc:
        raise BackupError(f"cannot restore this database: {exc}") from exc
    finally:
        db.close()
    for suffix in _SIDECARS:
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return components, moved


def _swap(
    new_data: Path,
    data_dir: Path,
    current: list[Path],
    external_db: Path | None,
    database: Path,
    staging: Path,
) -> None:
    """Move the current entries aside, the new ones in; on any failure, undo every move.

    Entries of the data dir are parked inside `staging` (removed with it); the database's
    files outside the data dir are parked beside themselves, on their own filesystem.
    """
    aside = staging / "replaced"
    aside.mkdir()
    moves: list[tuple[Path, Path]] = []  # (from, to), undone in reverse order
    parked_outside: list[Path] = []
    try:
        for entry in current:
            if entry.is_relative_to(data_dir):
                parked = aside / entry.name
            else:
                parked = entry.with_name(f".{entry.name}.replaced-{staging.name}")
                parked_outside.append(parked)
            entry.rename(parked)
            moves.append((entry, parked))
        for entry in sorted(new_data.iterdir()):
            target = data_dir / entry.name
            entry.rename(target)
            moves.append((entry, target))
        if external_db is not None:
            database.parent.mkdir(parents=True, exist_ok=True)
            landing = database.with_name(f".{database.name}.restoring-{staging.name}")
            shutil.copyfile(external_db, landing)
            landing.rename(database)
            moves.append((landing, database))
    except OSError as exc:
        for origin, moved_to in reversed(moves):
            moved_to.rename(origin)
        raise BackupError(
            f"cannot put the restored files in place ({exc}); nothing changed"
        ) from exc
    for parked in parked_outside:
        parked.unlink(missing_ok=True)
