"""Style distances: literal cases with known values, and the right order on the sample."""

from __future__ import annotations

from collections import Counter

import pytest

from style.parse import load_chats
from style.profile import build_profile
from style.sample import sample_paths
from training.dataset import CONVERSATION_START, DatasetConfig, build_dataset
from training.evaluate import (
    PUNCTUATION_FEATURES,
    EmptyReplySetError,
    jensen_shannon,
    ks_statistic,
    signature_phrases,
    style_distances,
    wasserstein_1,
)

pytestmark = pytest.mark.filterwarnings("ignore::style.profile.ProfileWarning")

MAYA_LIKE = [
    ["omg sooo good 😂", "im crying"],
    ["wait what", "no bc thats hilarious"],
    ["ok ok ok"],
    ["u coming tonight?? 🥹"],
]

FORMAL = [
    ["Good afternoon. I hope this message finds you well."],
    ["Thank you for your email; I will reply tomorrow."],
    ["The meeting has been moved to Thursday at ten o'clock.", "Please confirm it suits you."],
    ["I am afraid I cannot attend the dinner on Friday."],
    ["Could you send me the report before the end of the week?"],
    ["Certainly. I shall look into the matter and respond shortly."],
    ["Kind regards, and thank you again for your patience."],
    ["The train departs at half past seven from platform four."],
    ["Please find the documents attached to this message."],
    ["I would be grateful if you could confirm the arrangements."],
]


# --- literal values ------------------------------------------------------------------------


def test_wasserstein_of_lengths_shifted_by_one_is_one() -> None:
    assert wasserstein_1([1, 2, 3], [2, 3, 4]) == pytest.approx(1.0)


def test_wasserstein_compares_samples_of_different_sizes() -> None:
    assert wasserstein_1([0, 0], [0, 4, 4, 4]) == pytest.approx(3.0)


def test_ks_statistic_of_shifted_and_of_disjoint_samples() -> None:
    assert ks_statistic([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)
    assert ks_statistic([1, 2], [5, 6]) == pytest.approx(1.0)
    assert ks_statistic([1, 2, 3], [3, 2, 1]) == 0.0


def test_jensen_shannon_is_zero_for_same_one_for_disjoint_and_known_in_between() -> None:
    assert jensen_shannon(Counter(a=2, b=1), Counter(a=4, b=2)) == pytest.approx(0.0, abs=1e-9)
    assert jensen_shannon(Counter(a=2), Counter(b=3)) == pytest.approx(1.0, abs=1e-5)
    # P = (1, 0), Q = (1/2, 1/2): 0.5 log2(4/3) + 0.25 log2(2/3) + 0.25 log2(2)
    assert jensen_shannon(Counter(a=2), Counter(a=1, b=1)) == pytest.approx(0.31128, abs=1e-4)


def test_identical_reply_sets_are_at_distance_zero() -> None:
    d = style_distances(MAYA_LIKE, MAYA_LIKE, signature_phrases=["ok", "no bc"])
    assert d.length_w1_chars == 0.0
    assert d.length_ks == 0.0
    assert d.bubbles_mean_diff == 0.0
    assert d.bubbles_w1 == 0.0
    assert d.emoji_rate_diff == 0.0
    assert d.emoji_top_distance == 0.0
    assert d.punctuation_l1 == 0.0
    assert d.signature_rate_diff == 0.0
    assert d.signature_relative == 0.0
    assert d.vocabulary_jsd == pytest.approx(0.0, abs=1e-9)
    assert d.char_ngram_similarity == pytest.approx(1.0)
    assert d.score == pytest.approx(0.0, abs=1e-9)


def test_bubble_lengths_give_w1_relative_w1_and_ks() -> None:
    d = style_distances([["a"], ["ab"], ["abc"]], [["ab"], ["abc"], ["abcd"]])
    assert d.length_w1_chars == pytest.approx(1.0)
    assert d.length_w1_relative == pytest.approx(1 / 3)  # the reference's mean length is 3
    assert d.length_ks == pytest.approx(1 / 3)


def test_bubbles_per_turn_mean_difference_and_w1() -> None:
    d = style_distances([["ok"], ["ok"]], [["ok", "ok"], ["ok", "ok", "ok"]])
    assert d.bubbles_mean_diff == pytest.approx(1.5)
    assert d.bubbles_w1 == pytest.approx(1.5)
    assert (d.generated_bubbles, d.reference_bubbles) == (2, 5)


def test_emoji_rate_difference_and_top_emoji_overlap() -> None:
    d = style_distances([["hi 😂"], ["ok"]], [["😂😂"], ["❤ x"]])
    assert (d.generated_emoji_rate, d.reference_emoji_rate) == (0.5, 1.5)
    assert d.emoji_rate_diff == pytest.approx(1.0)
    assert d.emoji_top_distance == pytest.approx(0.5)  # {😂} against {😂, ❤️}


def test_punctuation_profile_counts_each_habit_per_bubble() -> None:
    generated = [["Hello there.", "WHAT!!", "ok, fine?", "wait..."]]
    reference = [["im sooo tired", "hello there"]]
    gap = style_distances(generated, reference).punctuation_gap
    assert list(gap) == list(PUNCTUATION_FEATURES)
    assert gap == pytest.approx(
        {
            "ends_period": 0.25,
            "ends_exclamation": 0.25,
            "ends_question": 0.25,
            "ends_ellipsis": 0.25,
            "multi_exclamation": 0.25,
            "multi_question": 0.0,
            "all_lowercase": 0.5 - 1.0,  # "ok, fine?" and "wait..." against both
            "lowercase_start": 0.5 - 1.0,
            "all_caps": 0.25,
            "comma": 0.25,
            "apostrophe_omitted": -0.5,  # "im"
            "elongated": -0.5,  # "sooo"
        }
    )


def test_punctuation_l1_sums_the_share_differences() -> None:
    d = style_distances([["Hello there."]], [["hello there"]])
    # ends with a period (+1), not all lowercase (-1), no lowercase start (-1)
    assert d.punctuation_l1 == pytest.approx(3.0)


def test_signature_phrases_compare_uses_per_bubble() -> None:
    d = style_distances(
        [["no bc u r right"]], [["u u"], ["no bc"]], signature_phrases=["u", "no bc"]
    )
    # generated: u 1, "no bc" 1 per bubble; reference: u 1, "no bc" 0.5 per bubble
    assert d.signature_rate_diff == pytest.approx(0.25)
    assert d.signature_relative == pytest.approx(0.5 / 3.5)


def test_signature_phrases_neither_side_uses_are_agreement() -> None:
    d = style_distances([["hello"]], [["hi"]], signature_phrases=["no bc"])
    assert (d.signature_rate_diff, d.signature_relative) == (0.0, 0.0)


def test_without_signature_phrases_the_score_leaves_them_out() -> None:
    d = style_distances(MAYA_LIKE, FORMAL)
    assert d.signature_rate_diff is None and d.signature_relative is None
    assert "signature" not in d.parts()
    assert d.score == pytest.approx(sum(d.parts().values()) / len(d.parts()))


def test_texts_sharing_no_character_are_far_apart_in_n_grams_and_words() -> None:
    d = style_distances([["aaa"]], [["bbb"]])
    assert d.char_ngram_distance > 0.9  # only the start and end marks agree
    assert d.vocabulary_jsd == pytest.approx(1.0, abs=1e-5)


def test_silent_replies_score_worst_instead_of_failing() -> None:
    d = style_distances([[], []], MAYA_LIKE)
    assert d.generated_bubbles == 0
    assert d.score > style_distances(FORMAL, MAYA_LIKE).score


def test_an_empty_reply_set_is_an_error_that_says_which() -> None:
    with pytest.raises(EmptyReplySetError, match="generated"):
        style_distances([], MAYA_LIKE)
    with pytest.raises(EmptyReplySetError, match="reference"):
        style_distances(MAYA_LIKE, [])


def test_to_dict_holds_every_field_and_the_parts() -> None:
    data = style_distances(MAYA_LIKE, FORMAL).to_dict()
    assert {"length_w1_chars", "vocabulary_jsd", "score", "punctuation_gap"} <= data.keys()
    assert set(data["parts"]) == {  # type: ignore[arg-type]
        "length",
        "bubbles",
        "emoji",
        "punctuation",
        "vocabulary",
        "char_ngrams",
    }


# --- the bundled sample --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> dict[str, object]:
    """Maya's held-out replies in two halves, Sam's held-out messages, her signature."""
    chats = [chat for path in sample_paths() for chat in load_chats(path)]
    config = DatasetConfig(eval_share=0.2, speaker_names="always")
    build = build_dataset(chats, "Maya", config)
    maya = [
        list(turn.bubbles)
        for sample in build.eval
        for turn in sample.turns
        if turn.role == "assistant" and turn.train
    ]
    sam = [
        [bubble.removeprefix("Sam: ") for bubble in turn.bubbles]
        for sample in build.eval
        for turn in sample.turns
        if turn.role == "user"
        and turn.bubbles != (CONVERSATION_START,)
        and all(bubble.startswith("Sam: ") for bubble in turn.bubbles)
    ]
    phrases = signature_phrases(build_profile(chats, "Maya"))
    return {"a": maya[::2], "b": maya[1::2], "sam": sam, "phrases": phrases}


def test_maya_is_closer_to_maya_than_to_sam_or_formal_english(sample) -> None:
    phrases = sample["phrases"]
    maya = style_distances(sample["b"], sample["a"], signature_phrases=phrases)
    sam = style_distances(sample["sam"], sample["a"], signature_phrases=phrases)
    formal = style_distances(FORMAL, sample["a"], signature_phrases=phrases)
    assert maya.score < 0.15 < 0.4 < sam.score < formal.score
    for part, value in maya.parts().items():
        assert value < sam.parts()[part], part
        assert value < formal.parts()[part], part


def test_signature_phrases_come_from_the_profile(sample) -> None:
    assert {"u", "sooo", "no bc", "im crying"} <= set(sample["phrases"])
