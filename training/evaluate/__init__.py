"""Evaluation metrics: how much generated replies write like the real persona.

    distances = style_distances(generated, reference, signature_phrases=signature_phrases(p))
    judge = Discriminator.fit(persona_train_turns, other_train_turns, seed=0)
    judge.accuracy, judge.persona_share(generated)
    measure_degeneration(generated, training_replies=train_reply_texts, reference=reference)

Pure numpy, no model, no network; see docs/evaluation.md for every number.
"""

from training.evaluate.degeneration import Degeneration, measure_degeneration
from training.evaluate.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    DiscriminatorError,
    HeldOut,
)
from training.evaluate.style_distance import (
    PUNCTUATION_FEATURES,
    SCORE_WEIGHTS,
    EmptyReplySetError,
    StyleDistances,
    jensen_shannon,
    ks_statistic,
    signature_phrases,
    style_distances,
    wasserstein_1,
)

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "Degeneration",
    "Discriminator",
    "DiscriminatorConfig",
    "DiscriminatorError",
    "EmptyReplySetError",
    "HeldOut",
    "PUNCTUATION_FEATURES",
    "SCORE_WEIGHTS",
    "StyleDistances",
    "jensen_shannon",
    "ks_statistic",
    "measure_degeneration",
    "signature_phrases",
    "style_distances",
    "wasserstein_1",
]
