"""The dataset settings: defaults, help texts, validation and loading from a mapping."""

from __future__ import annotations

from dataclasses import fields

import pytest

from training.dataset.config import DatasetConfig
from training.errors import DatasetError


def test_every_setting_has_help():
    missing = [f.name for f in fields(DatasetConfig) if not f.metadata.get("help")]
    assert missing == []


def test_defaults_are_valid():
    DatasetConfig().validate()


def test_from_dict_reads_lists_as_tuples():
    config = DatasetConfig.from_dict({"augment_contexts": [1, 3], "max_tokens": 512})
    assert config.augment_contexts == (1, 3)
    assert config.max_tokens == 512


def test_round_trip_through_a_dict():
    config = DatasetConfig(augment_contexts=(2,), time_of_day=True)
    assert DatasetConfig.from_dict(config.to_dict()) == config


def test_unknown_setting_is_a_dataset_error():
    with pytest.raises(DatasetError, match="unknown dataset setting"):
        DatasetConfig.from_dict({"max_token": 5})


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("media", "keep", "media must be one of"),
        ("eval_share", 1.0, "eval_share"),
        ("max_tokens", 8, "max_tokens"),
        ("gap_minutes", 0, "gap_minutes"),
        ("max_chat_share", 0.0, "max_chat_share"),
        ("augment_contexts", (0,), "augment_contexts"),
        ("scrub_mode", "hide", "scrub_mode"),
    ],
)
def test_invalid_settings_are_refused(setting, value, message):
    with pytest.raises(DatasetError, match=message):
        DatasetConfig(**{setting: value}).validate()
