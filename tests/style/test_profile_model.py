"""The profile's data model: exact JSON round trip, versioning, distribution helpers."""

from __future__ import annotations

import importlib
import json
import random
from datetime import datetime, timedelta

import pytest

from style.messages import Chat, Message
from style.profile import (
    PROFILE_VERSION,
    Distribution,
    Profile,
    ProfileFormatError,
    build_profile,
)
from style.profile.distributions import histogram_of, summarise

TOP_LEVEL = [
    "version",
    "persona",
    "options",
    "sources",
    "counts",
    "conversations",
    "length",
    "timing",
    "lexicon",
    "emoji",
    "typography",
    "flow",
    "warnings",
]


@pytest.fixture(scope="module")
def profile() -> Profile:
    start = datetime(2024, 5, 6, 19, 0, 0)
    messages = []
    for day in range(12):
        t = start + timedelta(days=day, minutes=day)
        messages += [
            Message(t, "Sam", "Are you coming tonight?"),
            Message(t + timedelta(seconds=40), "Maya", "yesss omg 😂😂"),
            Message(t + timedelta(seconds=47), "Maya", "wait for meee 👍🏽"),
            Message(t + timedelta(seconds=400), "Sam", "Great, see you at eight."),
            Message(t + timedelta(seconds=460), "Maya", "byeee ✨"),
        ]
    chat = Chat("x", "test", messages, ["Sam", "Maya"])
    return build_profile(chat, "Maya", min_messages=10)


def test_json_round_trip_is_exact(profile):
    assert Profile.from_json(profile.to_json()) == profile
    assert Profile.from_dict(json.loads(profile.to_json(indent=None))) == profile


def test_top_level_keys_start_with_the_version(profile):
    data = json.loads(profile.to_json())
    assert list(data) == TOP_LEVEL
    assert data["version"] == PROFILE_VERSION == 1


def test_json_holds_no_message_text(profile):
    text = profile.to_json()
    for sentence in ("Are you coming tonight", "wait for meee", "see you at eight"):
        assert sentence not in text


def test_emoji_stay_characters_in_json(profile):
    assert "😂" in profile.to_json()


def test_other_versions_are_refused(profile):
    data = profile.to_dict()
    data["version"] = 2
    with pytest.raises(ProfileFormatError, match="version 2 is not supported"):
        Profile.from_dict(data)


def test_missing_and_mistyped_fields_name_their_path(profile):
    data = profile.to_dict()
    del data["timing"]["typing"]["pairs"]
    with pytest.raises(ProfileFormatError, match=r"profile\.timing\.typing: missing field 'pairs'"):
        Profile.from_dict(data)
    data = profile.to_dict()
    data["length"]["chars"]["count"] = "many"
    with pytest.raises(ProfileFormatError, match=r"profile\.length\.chars\.count"):
        Profile.from_dict(data)


def test_invalid_json_is_a_format_error():
    with pytest.raises(ProfileFormatError, match="not valid JSON"):
        Profile.from_json("{not json")
    with pytest.raises(ProfileFormatError, match="object"):
        Profile.from_json("[1, 2]")


def test_summarise_gives_quantiles_and_histogram():
    dist = summarise(list(range(1, 11)), [0.0, 5.0, 10.0])
    assert (dist.count, dist.mean, dist.min, dist.median, dist.max) == (10, 5.5, 1.0, 5.5, 10.0)
    assert (dist.p10, dist.p25, dist.p75, dist.p90) == (1.9, 3.25, 7.75, 9.1)
    assert dist.histogram.counts == [4, 6]


def test_summarise_of_nothing_is_empty():
    dist = summarise([])
    assert dist.count == 0 and dist.median is None and dist.histogram is None


def test_histogram_clips_into_the_end_bins():
    assert histogram_of([-5, 0.5, 99], [0.0, 1.0, 2.0]).counts == [2, 1]


def test_quantile_interpolates_between_knots():
    dist = Distribution(10, 5.0, 0.0, 1.0, 2.5, 5.0, 7.5, 9.0, 10.0)
    assert dist.quantile(0.5) == 5.0
    assert dist.quantile(0.375) == pytest.approx(3.75)
    assert dist.quantile(0.0) == 0.0 and dist.quantile(1.0) == 10.0
    with pytest.raises(ValueError):
        dist.quantile(1.5)


def test_sample_follows_the_quantiles():
    dist = summarise([float(x) for x in range(1001)])
    rng = random.Random(3)
    draws = sorted(dist.sample(rng) for _ in range(4000))
    assert draws[2000] == pytest.approx(500, abs=30)
    assert draws[0] >= 0 and draws[-1] <= 1000


def test_sampling_an_empty_distribution_raises():
    with pytest.raises(ValueError, match="empty"):
        Distribution(0).sample(random.Random(1))


def test_all_is_sorted_and_complete():
    module = importlib.import_module("style.profile")
    assert list(module.__all__) == sorted(set(module.__all__))
    assert all(hasattr(module, name) for name in module.__all__)
