"""The written formats: HF chat JSONL, OpenAI fine-tuning JSONL (and its validator), ShareGPT
with LLaMA-Factory's dataset_info.json, and the Axolotl snippet."""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from training.dataset.formats import split_samples, validate_openai_jsonl, write_dataset
from training.dataset.samples import Sample, Turn
from training.errors import DatasetError

SYSTEM = "You are Ana. Write like Ana."


def reply_sample(n: int, split: str = "train") -> Sample:
    """A two-exchange sample: the first reply is context only, the last one is learned."""
    return Sample(
        system=SYSTEM,
        turns=(
            Turn("user", (f"hey {n}", "u there?"), datetime(2024, 3, 1, 9, n)),
            Turn("assistant", ("yesss 😂",), datetime(2024, 3, 1, 9, n, 10), train=False),
            Turn("user", ("Bob: dinner at café?",), datetime(2024, 3, 1, 9, n, 20)),
            Turn("assistant", ("omg yes", "pizza 🍕"), datetime(2024, 3, 1, 9, n, 30)),
        ),
        conversation=f"conv{n:02d}",
        chat="chat-a",
        split=split,  # type: ignore[arg-type]
    )


SHORT = Sample(
    system=SYSTEM,
    turns=(Turn("user", ("ok?",)), Turn("assistant", ("k",))),
    conversation="conv-short",
    chat="chat-b",
    split="train",
)
NO_SYSTEM = Sample(
    system="",
    turns=(Turn("user", ("hi",)), Turn("assistant", ("hiii",))),
    conversation="conv-nosys",
    chat="chat-b",
    split="train",
)


@dataclass
class Build:
    train: list[Sample]
    eval: list[Sample]


@pytest.fixture
def build() -> Build:
    return Build(
        train=[reply_sample(n) for n in range(10)] + [SHORT, NO_SYSTEM],
        eval=[reply_sample(20, "eval"), reply_sample(21, "eval")],
    )


@pytest.fixture
def files(build: Build, tmp_path: Path) -> dict[str, Path]:
    return write_dataset(build, tmp_path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- all formats -------------------------------------------------------------------------


def test_write_dataset_returns_every_file_by_role(files: dict[str, Path]) -> None:
    assert {key: path.name for key, path in files.items()} == {
        "hf_train": "train.jsonl",
        "hf_eval": "eval.jsonl",
        "openai_train": "openai_train.jsonl",
        "openai_eval": "openai_eval.jsonl",
        "sharegpt_train": "sharegpt_train.json",
        "sharegpt_eval": "sharegpt_eval.json",
        "axolotl": "axolotl.yaml",
        "dataset_info": "dataset_info.json",
    }
    assert all(path.is_file() for path in files.values())


def test_line_n_is_the_same_sample_in_every_format(files: dict[str, Path]) -> None:
    hf_rows = read_jsonl(files["hf_train"])
    openai_rows = read_jsonl(files["openai_train"])
    sharegpt_rows = json.loads(files["sharegpt_train"].read_text(encoding="utf-8"))
    assert len(hf_rows) == len(openai_rows) == len(sharegpt_rows) == 12
    for hf_row, openai_row, sharegpt_row in zip(hf_rows, openai_rows, sharegpt_rows, strict=True):
        hf_texts = [m["content"] for m in hf_row["messages"] if m["role"] != "system"]
        assert hf_texts == [m["content"] for m in openai_row["messages"][-len(hf_texts) :]]
        assert hf_texts == [m["value"] for m in sharegpt_row["conversations"]]


def test_text_is_written_as_utf8_not_escaped(files: dict[str, Path]) -> None:
    raw = files["hf_train"].read_text(encoding="utf-8")
    assert "😂" in raw and "café" in raw and "\\u" not in raw


def test_only_the_chosen_formats_are_written(build: Build, tmp_path: Path) -> None:
    files = write_dataset(build, tmp_path, formats=("sharegpt",))
    assert sorted(files) == ["dataset_info", "sharegpt_eval", "sharegpt_train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dataset_info.json",
        "sharegpt_eval.json",
        "sharegpt_train.json",
    ]


def test_loose_samples_are_split_by_their_split_field(build: Build, tmp_path: Path) -> None:
    files = write_dataset([*build.eval, *build.train], tmp_path, formats=("hf",))
    assert len(read_jsonl(files["hf_train"])) == 12
    assert len(read_jsonl(files["hf_eval"])) == 2


def test_split_samples_reads_a_build_object(build: Build) -> None:
    assert split_samples(build) == (build.train, build.eval)


def test_empty_eval_split_writes_no_eval_files(build: Build, tmp_path: Path) -> None:
    files = write_dataset(Build(train=build.train, eval=[]), tmp_path)
    assert not any(key.endswith("_eval") for key in files)
    assert "test_datasets" not in files["axolotl"].read_text(encoding="utf-8")
    info = json.loads(files["dataset_info"].read_text(encoding="utf-8"))
    assert list(info) == ["wa_persona_train"]


def test_empty_eval_split_removes_eval_files_of_an_earlier_build(
    build: Build, tmp_path: Path
) -> None:
    write_dataset(build, tmp_path, formats=("hf",))
    write_dataset(Build(train=build.train, eval=[]), tmp_path, formats=("hf",))
    assert not (tmp_path / "eval.jsonl").exists()


def test_unknown_format_is_refused(build: Build, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown format 'alpaca'"):
        write_dataset(build, tmp_path, formats=("hf", "alpaca"))


def test_no_format_is_refused(build: Build, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown format none"):
        write_dataset(build, tmp_path, formats=())


def test_one_format_may_be_given_as_a_string(build: Build, tmp_path: Path) -> None:
    assert sorted(write_dataset(build, tmp_path, formats="hf")) == [
        "axolotl",
        "hf_eval",
        "hf_train",
    ]


def test_no_training_samples_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no training samples"):
        write_dataset(Build(train=[], eval=[]), tmp_path)


@pytest.mark.parametrize(
    "turns",
    [
        (Turn("assistant", ("hi",)), Turn("user", ("yo",)), Turn("assistant", ("k",))),
        (Turn("user", ("hi",)), Turn("user", ("again",)), Turn("assistant", ("k",))),
        (Turn("user", ("hi",)), Turn("assistant", ("k",)), Turn("user", ("bye",))),
        (Turn("user", ("hi",)), Turn("assistant", ("k",), train=False)),
        (),
    ],
    ids=["starts-with-assistant", "two-user-turns", "ends-with-user", "last-not-trained", "empty"],
)
def test_malformed_sample_is_refused(turns: tuple[Turn, ...], tmp_path: Path) -> None:
    bad = Sample(system=SYSTEM, turns=turns, conversation="bad", chat="c", split="train")
    with pytest.raises(DatasetError, match="conversation bad"):
        write_dataset([bad], tmp_path, formats=("hf",))


# --- HF chat JSONL -----------------------------------------------------------------------


def test_hf_line_is_the_samples_messages(build: Build, files: dict[str, Path]) -> None:
    rows = read_jsonl(files["hf_train"])
    assert rows == [{"messages": sample.messages()} for sample in build.train[:11]] + [
        {"messages": NO_SYSTEM.messages()[1:]}
    ]


def test_hf_roles_alternate_from_user_after_system_and_end_with_assistant(
    files: dict[str, Path],
) -> None:
    for key in ("hf_train", "hf_eval"):
        for row in read_jsonl(files[key]):
            roles = [m["role"] for m in row["messages"]]
            if roles[0] == "system":
                roles = roles[1:]
            assert roles == ["user", "assistant"] * (len(roles) // 2)
            assert all(set(m) == {"role", "content"} for m in row["messages"])


def test_hf_puts_the_system_prompt_first(files: dict[str, Path]) -> None:
    first = read_jsonl(files["hf_train"])[0]["messages"][0]
    assert first == {"role": "system", "content": SYSTEM}


def test_hf_leaves_out_an_empty_system_prompt(files: dict[str, Path]) -> None:
    last = read_jsonl(files["hf_train"])[-1]
    assert last == {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hiii"}]
    }


def test_hf_joins_bubbles_with_the_separator(files: dict[str, Path]) -> None:
    messages = read_jsonl(files["hf_train"])[0]["messages"]
    assert messages[1]["content"] == "hey 0\n\nu there?"
    assert messages[4]["content"] == "omg yes\n\npizza 🍕"


# --- Axolotl -------------------------------------------------------------------------------


def test_axolotl_points_at_the_hf_files_and_trains_assistant_turns(
    files: dict[str, Path],
) -> None:
    text = files["axolotl"].read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "datasets:" in lines and "test_datasets:" in lines
    assert text.index("datasets:") < text.index("test_datasets:")
    paths = [json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("  - path:")]
    assert paths == [str(files["hf_train"].resolve()), str(files["hf_eval"].resolve())]
    for setting in (
        "    ds_type: json",
        "    type: chat_template",
        '    field_messages: "messages"',
        '      role: "role"',
        '      content: "content"',
        '    roles_to_train: ["assistant"]',
        '    train_on_eos: "turn"',
    ):
        assert lines.count(setting) == 2, setting
    assert lines.count('    split: "train"') == 1  # only the eval entry needs it


def test_axolotl_counts_context_only_turns_in_a_comment(files: dict[str, Path]) -> None:
    text = files["axolotl"].read_text(encoding="utf-8")
    assert "# 10 assistant turns in train.jsonl are context only" in text
    assert "message_field_training: weight" in text


def test_axolotl_yaml_has_no_tabs_and_consistent_indentation(files: dict[str, Path]) -> None:
    for line in files["axolotl"].read_text(encoding="utf-8").splitlines():
        assert "\t" not in line
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, line


# --- OpenAI --------------------------------------------------------------------------------


def test_openai_weights_sit_exactly_on_assistant_messages(
    build: Build, files: dict[str, Path]
) -> None:
    for sample, row in zip(build.train, read_jsonl(files["openai_train"]), strict=True):
        messages = row["messages"]
        assert all(("weight" in m) == (m["role"] == "assistant") for m in messages)
        turns_weights = [m["weight"] for m in messages if m["role"] == "assistant"]
        assert turns_weights == [int(t.train) for t in sample.turns if t.role == "assistant"]


def test_openai_context_reply_has_weight_0_and_learned_reply_weight_1(
    files: dict[str, Path],
) -> None:
    messages = read_jsonl(files["openai_train"])[0]["messages"]
    assert messages[2] == {"role": "assistant", "content": "yesss 😂", "weight": 0}
    assert messages[4] == {"role": "assistant", "content": "omg yes\n\npizza 🍕", "weight": 1}


def test_openai_files_pass_the_validator(files: dict[str, Path]) -> None:
    assert validate_openai_jsonl(files["openai_train"]) == []
    assert validate_openai_jsonl(files["openai_eval"], min_examples=1) == []


def test_rejected_openai_files_raise_and_are_removed(build: Build, tmp_path: Path) -> None:
    small = Build(train=build.train[:9], eval=build.eval)
    with pytest.raises(DatasetError, match=r"9 examples.*too_few_examples"):
        write_dataset(small, tmp_path)
    assert not (tmp_path / "openai_train.jsonl").exists()
    assert not (tmp_path / "openai_eval.jsonl").exists()
    assert (tmp_path / "train.jsonl").exists()


def test_openai_token_limit_is_configurable(build: Build, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="example_too_long"):
        write_dataset(build, tmp_path, formats=("openai",), max_tokens_per_example=20)


GOOD = {
    "messages": [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a", "weight": 1},
    ]
}


def message(**fields: object) -> dict:
    return {"messages": [{"role": "user", "content": "u"}, fields]}


BAD_LINES = {
    "invalid_json": b'{"messages": [',
    "invalid_encoding": b'{"messages": "\xff"}',
    "data_type": b"[1, 2]",
    "example_unrecognized_key": json.dumps({**GOOD, "meta": {}}).encode(),
    "missing_messages_list": b'{"conversations": []}',
    "message_data_type": json.dumps({"messages": ["hi", GOOD["messages"][2]]}).encode(),
    "message_missing_key": json.dumps(message(content="a")).encode(),
    "message_unrecognized_key": json.dumps(message(role="assistant", content="a", x=1)).encode(),
    "unrecognized_role": json.dumps(message(role="persona", content="a")).encode(),
    "missing_content": json.dumps(message(role="assistant", content="")).encode(),
    "weight": json.dumps(
        {"messages": [{"role": "user", "content": "u", "weight": 1}, GOOD["messages"][2]]}
    ).encode(),
    "example_missing_assistant_message": json.dumps(
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    ).encode(),
    "example_too_long": json.dumps(message(role="assistant", content="word " * 200)).encode(),
}


@pytest.mark.parametrize("code", sorted(BAD_LINES))
def test_validator_catches_each_rule(code: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(GOOD).encode()
    path.write_bytes(b"\n".join([good] * 5 + [BAD_LINES[code]] + [good] * 5) + b"\n")
    problems = validate_openai_jsonl(path, max_tokens_per_example=100)
    assert problems, code
    assert all(p.startswith("line 6: ") for p in problems), problems
    assert any(p.endswith(f"[{code}]") for p in problems), problems


@pytest.mark.parametrize("weight", [2, -1, 0.5, True, "1", None])
def test_validator_accepts_only_weight_0_or_1(weight: object, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    bad = message(role="assistant", content="a", weight=weight)
    path.write_text("\n".join(json.dumps(x) for x in [GOOD] * 9 + [bad]) + "\n")
    assert validate_openai_jsonl(path) == [
        f"line 10: message 1: `weight` must be 0 or 1, not {weight!r} [weight]"
    ]


def test_validator_needs_ten_examples(tmp_path: Path) -> None:
    path = tmp_path / "few.jsonl"
    path.write_text(json.dumps(GOOD) + "\n")
    assert validate_openai_jsonl(path) == [
        "file: 1 examples; OpenAI needs at least 10 [too_few_examples]"
    ]


def test_validator_accepts_a_blank_trailing_newline_but_not_a_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    good = json.dumps(GOOD)
    path.write_text("\n".join([good] * 10) + "\n")
    assert validate_openai_jsonl(path) == []
    path.write_text("\n".join([good] * 5 + [""] + [good] * 5) + "\n")
    problems = validate_openai_jsonl(path)
    assert problems == ["line 6: not valid JSON (Expecting value) [invalid_json]"]


def test_validator_uses_the_given_token_counter(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join([json.dumps(GOOD)] * 10) + "\n")
    # 3 messages of one character: 3 tokens of text + 3 x 3 of overhead = 12
    assert validate_openai_jsonl(path, max_tokens_per_example=12, token_counter=len) == []
    problems = validate_openai_jsonl(path, max_tokens_per_example=11, token_counter=len)
    assert len(problems) == 10 and "about 12 tokens" in problems[0]


# --- ShareGPT / LLaMA-Factory --------------------------------------------------------------


def test_sharegpt_alternates_human_and_gpt_with_the_system_prompt(
    build: Build, files: dict[str, Path]
) -> None:
    records = json.loads(files["sharegpt_train"].read_text(encoding="utf-8"))
    assert isinstance(records, list) and len(records) == 12
    for sample, record in zip(build.train, records, strict=True):
        assert set(record) == {"conversations", "system"}
        assert record["system"] == sample.system
        sources = [m["from"] for m in record["conversations"]]
        assert sources == ["human", "gpt"] * (len(sources) // 2)
        assert [m["value"] for m in record["conversations"]] == [t.content for t in sample.turns]


def test_sharegpt_writes_one_record_a_line(files: dict[str, Path]) -> None:
    lines = files["sharegpt_eval"].read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4
    assert [json.loads(line.rstrip(",")) for line in lines[1:-1]]


def test_a_one_sample_sharegpt_file_is_a_one_record_array(build: Build, tmp_path: Path) -> None:
    files = write_dataset(build.train[:1], tmp_path, formats=("sharegpt",))
    records = json.loads(files["sharegpt_train"].read_text(encoding="utf-8"))
    assert len(records) == 1 and records[0]["system"] == SYSTEM


def test_dataset_info_entries_match_the_files(files: dict[str, Path]) -> None:
    info = json.loads(files["dataset_info"].read_text(encoding="utf-8"))
    assert sorted(info) == ["wa_persona_eval", "wa_persona_train"]
    for key, entry in info.items():
        assert entry["formatting"] == "sharegpt"
        data_file = files["dataset_info"].parent / entry["file_name"]
        assert data_file == files[f"sharegpt_{key.rsplit('_', 1)[1]}"]
        records = json.loads(data_file.read_text(encoding="utf-8"))
        columns, tags = entry["columns"], entry["tags"]
        for record in records:
            assert set(record) == {columns["messages"], columns["system"]}
            for position, turn in enumerate(record[columns["messages"]]):
                assert set(turn) == {tags["role_tag"], tags["content_tag"]}
                expected = tags["user_tag"] if position % 2 == 0 else tags["assistant_tag"]
                assert turn[tags["role_tag"]] == expected


def test_dataset_info_uses_the_given_name(build: Build, tmp_path: Path) -> None:
    files = write_dataset(build, tmp_path, formats=("sharegpt",), name="ana")
    info = json.loads(files["dataset_info"].read_text(encoding="utf-8"))
    assert sorted(info) == ["ana_eval", "ana_train"]


def test_validator_counts_exactly_when_the_quick_bound_is_over_the_limit(tmp_path: Path) -> None:
    # ensure_ascii writes each "é" as a 6-byte escape: the line is far longer than the text.
    example = {"messages": [{"role": "user", "content": "é" * 64}, GOOD["messages"][2]]}
    path = tmp_path / "escaped.jsonl"
    path.write_text("\n".join([json.dumps(example, ensure_ascii=True)] * 10) + "\n")
    exact = 40 + 1 + 2 * 3  # 128 bytes / 3.2, "a", two messages of overhead
    assert validate_openai_jsonl(path, max_tokens_per_example=exact) == []
    problems = validate_openai_jsonl(path, max_tokens_per_example=exact - 1)
    assert len(problems) == 10 and f"about {exact} tokens" in problems[0]


@pytest.mark.parametrize(
    "module", ["training.dataset.formats", "training.dataset.card", "training.dataset.estimate"]
)
def test_public_names_exist_and_are_sorted(module: str) -> None:
    exported = importlib.import_module(module).__all__
    assert list(exported) == sorted(set(exported))
    assert [name for name in exported if not hasattr(importlib.import_module(module), name)] == []


def test_validator_counts_only_lines_that_could_be_over_the_limit(tmp_path: Path) -> None:
    counted: list[str] = []

    def counter(text: str) -> int:
        counted.append(text)
        return len(text)

    path = tmp_path / "ok.jsonl"
    path.write_text("\n".join([json.dumps(GOOD)] * 10) + "\n")
    assert validate_openai_jsonl(path, token_counter=counter) == []
    assert counted == []  # ~100-byte lines cannot hold 65,536 tokens
    assert validate_openai_jsonl(path, token_counter=counter, max_tokens_per_example=30) == []
    assert counted == ["s", "u", "a"] * 10
