"""The labelled PII set: in sync with its generator, big enough, and scored well enough.

`benchmarks/scrub_eval.py` builds the set and scores the detector on it; a regression in
any detector shows up here as a drop in precision or recall.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from style.scrub import PiiKind

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scrub_eval.py"


@pytest.fixture(scope="module")
def scrub_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scrub_eval", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scrub_eval"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_labelled_set_matches_its_generator(scrub_eval: ModuleType) -> None:
    expected = "".join(line.to_json() + "\n" for line in scrub_eval.build_lines())
    assert scrub_eval.FIXTURE.read_text(encoding="utf-8") == expected, (
        "run python benchmarks/scrub_eval.py --write-fixture"
    )


def test_labelled_set_covers_every_kind_with_hard_negatives(scrub_eval: ModuleType) -> None:
    lines = scrub_eval.load_fixture()
    kinds = Counter(kind for line in lines for _, _, kind in line["spans"])
    assert sum(kinds.values()) >= 200
    assert set(kinds) == {kind.value for kind in PiiKind}
    assert sum(not line["spans"] for line in lines) >= 80


def test_labels_point_at_the_text_they_name(scrub_eval: ModuleType) -> None:
    for line in scrub_eval.load_fixture():
        for start, end, _kind in line["spans"]:
            value = line["text"][start:end]
            assert value == value.strip() and value, line


def test_recall_and_precision_on_labelled_set(scrub_eval: ModuleType) -> None:
    overall = scrub_eval.evaluate().overall
    assert (overall.recall >= 0.95, overall.precision >= 0.9) == (True, True), overall


def test_shaped_phone_policy_beats_valid_and_possible(scrub_eval: ModuleType) -> None:
    f1 = {policy: scrub_eval.evaluate(policy).per_kind["phone"].f1 for policy in
          ("shaped", "valid", "possible")}  # fmt: skip
    assert f1["shaped"] > max(f1["valid"], f1["possible"]), f1
