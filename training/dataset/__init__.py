"""Turn parsed chats into fine-tuning data that teaches a model to answer as the persona."""

from training.dataset.build import (
    BuildStats,
    DatasetBuild,
    DatasetSource,
    SplitStats,
    TokenStats,
    build_dataset,
    build_from_exports,
)
from training.dataset.card import write_card
from training.dataset.config import DatasetConfig
from training.dataset.estimate import estimate, estimate_table
from training.dataset.filters import FILTERS
from training.dataset.formats import validate_openai_jsonl, write_dataset
from training.dataset.persona_card import persona_card, time_of_day
from training.dataset.samples import BUBBLE_SEPARATOR, CONVERSATION_START, Sample, Turn
from training.dataset.tokens import (
    EstimatedCounter,
    TokenCounter,
    TokenizerCounter,
    load_token_counter,
)

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "BUBBLE_SEPARATOR",
    "BuildStats",
    "CONVERSATION_START",
    "DatasetBuild",
    "DatasetConfig",
    "DatasetSource",
    "EstimatedCounter",
    "FILTERS",
    "Sample",
    "SplitStats",
    "TokenCounter",
    "TokenStats",
    "TokenizerCounter",
    "Turn",
    "build_dataset",
    "build_from_exports",
    "estimate",
    "estimate_table",
    "load_token_counter",
    "persona_card",
    "time_of_day",
    "validate_openai_jsonl",
    "write_card",
    "write_dataset",
]
