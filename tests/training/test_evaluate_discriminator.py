"""The persona discriminator: good on the sample, fair to held-out text, and deterministic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from style.parse import load_chats
from style.sample import sample_paths
from training.dataset import CONVERSATION_START, DatasetConfig, Sample, build_dataset
from training.evaluate import Discriminator, DiscriminatorConfig, DiscriminatorError

pytestmark = pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")

PERSONA = [
    "omg sooo good haha",
    "lol u coming tonight??",
    "im crying 😭",
    "wait what no way",
    "ngl thats so funny haha",
    "yesss omg",
    "idk tbh lol",
    "hahaha stoppp",
    "ur so right omg",
    "ok ok ok",
]
OTHERS = [
    "Good morning. I will be there at seven.",
    "Thank you, that sounds lovely.",
    "Are you free on Saturday afternoon?",
    "I have a meeting until five.",
    "See you at the station.",
    "That is a good idea. Let me check.",
    "The train was late again.",
    "I finished the report yesterday.",
    "Could you send me the address?",
    "Sounds good. Have a nice evening.",
]


def test_it_learns_chatty_from_tidy_on_literal_texts() -> None:
    judge = Discriminator.fit(PERSONA, OTHERS, seed=0)
    chatty, tidy = judge.predict_proba(["haha omg u r so funny", "I will check the schedule."])
    assert chatty > 0.5 > tidy


def test_a_turn_as_bubbles_is_judged_as_its_joined_text() -> None:
    judge = Discriminator.fit(PERSONA, OTHERS, seed=0)
    as_bubbles, as_text = judge.predict_proba([("omg", "u coming??"), "omg\n\nu coming??"])
    assert as_bubbles == as_text


def test_persona_share_counts_texts_over_the_threshold() -> None:
    judge = Discriminator.fit(PERSONA, OTHERS, seed=0)
    texts = ["hahaha omg yesss", "lol idk", "Good morning. Thank you."]
    assert judge.persona_share(texts) == pytest.approx(2 / 3)
    assert judge.persona_share(texts, threshold=0.0) == 1.0
    assert judge.persona_share(texts, threshold=1.0) == 0.0


def test_held_out_share_is_set_aside_per_class() -> None:
    judge = Discriminator.fit(PERSONA, OTHERS, seed=0)
    assert judge.held_out is not None
    assert (judge.held_out.persona, judge.held_out.other) == (2, 2)  # 20% of 10 distinct
    assert judge.accuracy == (judge.held_out.persona_recall + judge.held_out.other_recall) / 2


def test_same_seed_gives_the_same_model_and_another_seed_another_split() -> None:
    first = Discriminator.fit(PERSONA, OTHERS, seed=3)
    again = Discriminator.fit(PERSONA, OTHERS, seed=3)
    other = Discriminator.fit(PERSONA, OTHERS, seed=4)
    texts = ["omg haha", "See you tomorrow."]
    assert np.array_equal(first.predict_proba(texts), again.predict_proba(texts))
    assert np.array_equal(first.weights, again.weights)
    assert not np.array_equal(first.columns, other.columns)


def test_results_do_not_depend_on_the_string_hash_seed() -> None:
    code = (
        "import json; from training.evaluate import Discriminator; "
        f"j = Discriminator.fit({PERSONA!r}, {OTHERS!r}, seed=0); "
        "print(json.dumps(j.predict_proba(['omg haha u', 'See you at seven.']).tolist()))"
    )
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(json.loads(run.stdout))
    assert outputs[0] == outputs[1]


def test_too_few_texts_is_an_error_that_says_what_to_do() -> None:
    with pytest.raises(DiscriminatorError, match="at least 2 distinct texts"):
        Discriminator.fit(["haha", "haha"], OTHERS, seed=0)


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(DiscriminatorError, match="held_out_share"):
        Discriminator.fit(PERSONA, OTHERS, config=DiscriminatorConfig(held_out_share=0.0))


def test_judging_no_texts_is_an_error() -> None:
    judge = Discriminator.fit(PERSONA, OTHERS, seed=0)
    assert judge.predict_proba([]).shape == (0,)
    with pytest.raises(DiscriminatorError, match="no texts"):
        judge.persona_share([])


# --- the bundled sample --------------------------------------------------------------------


def _turns(samples: list[Sample]) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(Maya's trained turns, other people's turns without their name prefix)."""
    maya = [t.bubbles for s in samples for t in s.turns if t.role == "assistant" and t.train]
    others = [
        tuple(bubble.split(": ", 1)[1] for bubble in t.bubbles)
        for s in samples
        for t in s.turns
        if t.role == "user" and t.bubbles != (CONVERSATION_START,)
    ]
    return maya, others


@pytest.fixture(scope="module")
def sample() -> dict[str, object]:
    """A discriminator fitted on the training split, and the held-out split's turns."""
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    build = build_dataset(chats, "Maya", DatasetConfig(eval_share=0.2, speaker_names="always"))
    train_maya, train_others = _turns(build.train)
    eval_maya, _ = _turns(build.eval)
    eval_sam = [
        tuple(bubble.removeprefix("Sam: ") for bubble in t.bubbles)
        for s in build.eval
        for t in s.turns
        if t.role == "user" and all(bubble.startswith("Sam: ") for bubble in t.bubbles)
    ]
    judge = Discriminator.fit(train_maya, train_others, seed=0)
    return {
        "judge": judge,
        "train_maya": train_maya,
        "train_others": train_others,
        "maya": eval_maya,
        "sam": eval_sam,
    }


def test_held_out_accuracy_on_the_sample_is_far_above_chance(sample) -> None:
    judge = sample["judge"]
    assert judge.held_out.persona > 100 and judge.held_out.other > 100
    assert judge.accuracy > 0.9


def test_held_out_maya_is_attributed_to_maya_and_sam_is_not(sample) -> None:
    judge = sample["judge"]
    maya, sam = judge.persona_share(sample["maya"]), judge.persona_share(sample["sam"])
    assert maya > 0.9
    assert sam < 0.1


def test_a_smaller_feature_space_and_fewer_iterations_still_beat_chance(sample) -> None:
    config = DiscriminatorConfig(bits=12, iterations=50)
    quick = Discriminator.fit(
        sample["train_maya"][:300], sample["train_others"][:300], seed=0, config=config
    )
    assert quick.columns.max() < 2**12 <= sample["judge"].columns.max()
    assert quick.accuracy > 0.75
