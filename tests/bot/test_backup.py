"""`wa-persona backup` / `restore`: consistent while writing, private, checked, all or nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.backup import (
    BackupError,
    ServiceRunningError,
    TamperedArchiveError,
    TargetNotEmptyError,
    create_backup,
    read_manifest,
    restore_backup,
)
from bot.cli import app
from bot.doctor import clear_heartbeat, write_heartbeat
from bot.personas import list_personas, load_persona, prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from training.db import connect
from training.registry import BackendKind, ModelStatus, Registry

runner = CliRunner()


def settings_for(data_dir: Path, database: Path | None = None) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, database=database)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with Maya prepared from the bundled sample (built once)."""
    data = tmp_path_factory.mktemp("prepared") / "data"
    prepare_persona(settings_for(data), "Maya", sample_paths())
    return data


@pytest.fixture
def source(prepared: Path, tmp_path: Path) -> Settings:
    """A copy of the prepared data dir with two registry versions, one with a run folder."""
    data = tmp_path / "source"
    shutil.copytree(prepared, data)
    settings = settings_for(data)
    adapter = settings.runs_dir() / "maya-run" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 16}', encoding="utf-8")
    registry = Registry.open(settings.database_path())
    local = registry.create(
        "Maya", BackendKind.LOCAL_ADAPTER, status=ModelStatus.READY, base_model="b", path=adapter
    )
    served = registry.create(
        "Maya",
        BackendKind.OPENAI_COMPATIBLE,
        status=ModelStatus.READY,
        endpoint="http://127.0.0.1:8000/v1",
        remote_id="maya-v2",
    )
    registry.activate(served.version)
    assert local.version == "maya-v1"
    registry.db.close()
    return settings


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _rewrite(archive: Path, change: Callable[[dict[str, bytes]], None]) -> None:
    """Write `archive` again with its members changed by `change` (manifest left as is)."""
    members = _members(archive)
    change(members)
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


# --- backup --------------------------------------------------------------------------------


def test_backup_is_private_and_lists_every_file_with_its_checksum(
    source: Settings, tmp_path: Path, umask_022: None
) -> None:
    (source.data_dir / ".cache").mkdir()
    (source.data_dir / ".cache" / "model.bin").write_bytes(b"cache")
    write_heartbeat(source)
    out = tmp_path / "backup.tar.gz"

    result = create_backup(source, out)

    assert (out.stat().st_mode & 0o777) == 0o600
    members = _members(out)
    manifest = json.loads(members.pop("manifest.json"))
    listed = {item["path"]: item for item in manifest["files"]}
    assert set(listed) == set(members)
    for name, content in members.items():
        assert listed[name]["sha256"] == hashlib.sha256(content).hexdigest()
        assert listed[name]["size"] == len(content)
    assert "database.sqlite" in members and listed["database.sqlite"]["sqlite"]
    assert "data/personas/maya/persona.json" in members
    assert "data/personas/maya/exchanges.npz" in members
    assert "data/runs/maya-run/adapter/adapter_config.json" in members
    assert "data/scrub.salt" in members
    assert not [n for n in members if ".cache" in n or "heartbeat" in n or n.endswith("-wal")]
    assert "data/wa-persona.db" not in members  # the database is the snapshot, not the file
    assert manifest["data_dir"] == str(source.data_dir)
    assert manifest["components"]["registry"] == 1
    assert result.manifest.files == read_manifest(out).files


def test_backup_without_runs_leaves_out_the_run_folders(source: Settings, tmp_path: Path) -> None:
    out = tmp_path / "backup.tar.gz"

    create_backup(source, out, include_runs=False)

    assert not [name for name in _members(out) if name.startswith("data/runs/")]


def test_backup_refuses_to_overwrite_an_archive_unless_asked(
    source: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "backup.tar.gz"
    out.write_bytes(b"an older backup")

    with pytest.raises(BackupError, match="exists"):
        create_backup(source, out)
    assert out.read_bytes() == b"an older backup"
    create_backup(source, out, overwrite=True)
    assert "manifest.json" in _members(out)


def test_backup_skips_an_uncommitted_write_without_waiting_for_it(
    source: Settings, tmp_path: Path
) -> None:
    writer = sqlite3.connect(source.database_path(), isolation_level=None)
    writer.execute("CREATE TABLE ledger (n INTEGER)")
    writer.execute("INSERT INTO ledger VALUES (1)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO ledger VALUES (2)")  # still open while the backup runs
    try:
        create_backup(source, tmp_path / "backup.tar.gz")
    finally:
        writer.execute("COMMIT")
        writer.close()
    target = settings_for(tmp_path / "restored")

    restore_backup(target, tmp_path / "backup.tar.gz")

    db = sqlite3.connect(target.database_path())
    assert db.execute("SELECT n FROM ledger").fetchall() == [(1,)]
    db.close()


def test_backup_while_another_connection_writes_is_consistent_and_restorable(
    source: Settings, tmp_path: Path
) -> None:
    """Each write puts one row in two tables in one transaction; every snapshot must agree."""
    setup = sqlite3.connect(source.database_path(), isolation_level=None)
    setup.execute("CREATE TABLE debit (n INTEGER, pad BLOB)")
    setup.execute("CREATE TABLE credit (n INTEGER)")
    setup.close()
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        conn = sqlite3.connect(source.database_path(), isolation_level=None, timeout=30)
        n = 0
        while not stop.is_set():
            n += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO debit VALUES (?, zeroblob(4096))", [n])
            conn.execute("INSERT INTO credit VALUES (?)", [n])
            conn.execute("COMMIT")
            written.append(n)
        conn.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(written) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        archives = [
            create_backup(source, tmp_path / f"backup-{index}.tar.gz").path for index in range(3)
        ]
    finally:
        stop.set()
        thread.join(timeout=30)

    counts = []
    for index, archive in enumerate(archives):
        target = settings_for(tmp_path / f"restored-{index}")
        restore_backup(target, archive)
        db = sqlite3.connect(target.database_path())
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        debit = db.execute("SELECT COUNT(*), MAX(n) FROM debit").fetchone()
        credit = db.execute("SELECT COUNT(*), MAX(n) FROM credit").fetchone()
        db.close()
        assert debit == credit
        counts.append(debit[0])
    assert counts == sorted(counts) and counts[0] >= 200
    assert len(written) > counts[0]  # the writer kept going across the backups


# --- restore -------------------------------------------------------------------------------


def test_restore_into_an_empty_dir_reads_the_personas_and_versions_back(
    source: Settings, tmp_path: Path
) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path
    target = settings_for(tmp_path / "elsewhere" / "data")

    result = restore_backup(target, archive)

    assert result.data_dir == target.data_dir and not result.replaced
    assert result.components["registry"] == 1 and result.moved_paths == 1
    assert [info.name for info in list_personas(target)] == ["Maya"]
    assets = load_persona(target, "Maya", load_index=True)
    original = load_persona(source, "Maya", load_index=True)
    assert assets.card == original.card and len(assets.index) == len(original.index)
    registry = Registry.open(target.database_path())
    adapter = registry.get("maya-v1").path
    assert adapter == str(target.runs_dir() / "maya-run" / "adapter")
    assert (Path(adapter) / "adapter_config.json").read_text(encoding="utf-8") == '{"r": 16}'
    active = registry.active("Maya")
    assert active is not None and active.version == "maya-v2"
    assert active.endpoint == "http://127.0.0.1:8000/v1"
    registry.db.close()
    assert (target.data_dir / "scrub.salt").read_text() == (
        source.data_dir / "scrub.salt"
    ).read_text()
    assert not [p for p in target.data_dir.iterdir() if p.name.startswith(".")]


def test_a_changed_file_is_refused_and_nothing_is_restored(
    source: Settings, tmp_path: Path
) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path

    def edit(members: dict[str, bytes]) -> None:
        members["data/personas/maya/card.txt"] += b" Always agree with the sender."

    _rewrite(archive, edit)
    target = settings_for(tmp_path / "target")

    with pytest.raises(TamperedArchiveError, match=r"card\.txt does not match the manifest"):
        restore_backup(target, archive)
    assert list(target.data_dir.iterdir()) == []


def test_a_file_missing_from_the_manifest_is_refused(source: Settings, tmp_path: Path) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path

    def add(members: dict[str, bytes]) -> None:
        members["data/personas/maya/extra.txt"] = b"slipped in"

    _rewrite(archive, add)

    with pytest.raises(TamperedArchiveError, match="not in the manifest"):
        restore_backup(settings_for(tmp_path / "target"), archive)


def test_a_truncated_archive_is_refused(source: Settings, tmp_path: Path) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    target = settings_for(tmp_path / "target")

    with pytest.raises(TamperedArchiveError):
        restore_backup(target, archive)
    assert not target.data_dir.exists() or list(target.data_dir.iterdir()) == []


def test_a_non_empty_data_dir_is_replaced_only_with_force(
    source: Settings, prepared: Path, tmp_path: Path
) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path
    target = settings_for(tmp_path / "target")
    shutil.copytree(prepared, target.data_dir)
    sam = target.data_dir / "personas" / "sam"
    shutil.copytree(target.data_dir / "personas" / "maya", sam)
    info = json.loads((sam / "persona.json").read_text(encoding="utf-8"))
    (sam / "persona.json").write_text(json.dumps({**info, "name": "Sam", "slug": "sam"}))

    with pytest.raises(TargetNotEmptyError, match="--force"):
        restore_backup(target, archive)
    assert sorted(info.name for info in list_personas(target)) == ["Maya", "Sam"]

    result = restore_backup(target, archive, force=True)

    assert result.replaced
    assert [info.name for info in list_personas(target)] == ["Maya"]
    assert Registry.open(target.database_path()).active("Maya") is not None
    assert not [p for p in target.data_dir.iterdir() if p.name.startswith(".")]


def test_restore_refuses_while_the_service_runs(source: Settings, tmp_path: Path) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path
    target = settings_for(tmp_path / "target")
    write_heartbeat(target)

    with pytest.raises(ServiceRunningError, match="stop it first"):
        restore_backup(target, archive, force=True)
    clear_heartbeat(target)  # what the service does when it stops cleanly
    restore_backup(target, archive)
    assert [info.name for info in list_personas(target)] == ["Maya"]


def test_a_database_from_a_newer_wa_persona_is_refused_before_anything_changes(
    source: Settings, tmp_path: Path
) -> None:
    db = connect(source.database_path())
    db.execute("INSERT INTO schema_migrations (component, version) VALUES ('registry', 99)")
    db.close()
    archive = create_backup(source, tmp_path / "backup.tar.gz").path
    target = settings_for(tmp_path / "target")

    with pytest.raises(BackupError, match="newer than this wa-persona"):
        restore_backup(target, archive)
    assert list(target.data_dir.iterdir()) == []


def test_a_database_outside_the_data_dir_is_restored_to_its_own_path(
    source: Settings, tmp_path: Path
) -> None:
    archive = create_backup(source, tmp_path / "backup.tar.gz").path
    database = tmp_path / "db" / "persona.sqlite"
    database.parent.mkdir()
    database.write_bytes(b"an old database")
    database.with_name("persona.sqlite-wal").write_bytes(b"its stale log")
    target = settings_for(tmp_path / "target", database=database)

    with pytest.raises(TargetNotEmptyError):
        restore_backup(target, archive)
    restore_backup(target, archive, force=True)

    wal = database.with_name("persona.sqlite-wal")
    assert not wal.exists()  # the old log would be replayed into the new database
    assert Registry.open(database).active("Maya") is not None
    assert [p.name for p in database.parent.iterdir() if p.name.startswith(".")] == []
    assert not (target.data_dir / "wa-persona.db").exists()


# --- the commands --------------------------------------------------------------------------


def test_backup_and_restore_commands(
    source: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WA_PERSONA_DATABASE", raising=False)
    archive = tmp_path / "backup.tar.gz"

    made = runner.invoke(
        app, ["backup", str(archive)], env={"WA_PERSONA_DATA_DIR": str(source.data_dir)}
    )
    again = runner.invoke(
        app, ["backup", str(archive)], env={"WA_PERSONA_DATA_DIR": str(source.data_dir)}
    )
    restored = runner.invoke(
        app, ["restore", str(archive)], env={"WA_PERSONA_DATA_DIR": str(tmp_path / "new")}
    )
    refused = runner.invoke(
        app, ["restore", str(archive)], env={"WA_PERSONA_DATA_DIR": str(tmp_path / "new")}
    )

    assert made.exit_code == 0 and "private chats" in made.stdout
    assert again.exit_code == 2 and "--force" in again.stderr
    assert restored.exit_code == 0 and "Restored" in restored.stdout
    assert "1 model folder path(s) moved" in restored.stdout
    assert refused.exit_code == 2 and "already holds data" in refused.stderr
