"""Evaluation: how much generated replies write like the real persona, and which model wins.

    distances = style_distances(generated, reference, signature_phrases=signature_phrases(p))
    judge = Discriminator.fit(persona_train_turns, other_train_turns, seed=0)
    judge.accuracy, judge.persona_share(generated)
    measure_degeneration(generated, training_replies=train_reply_texts, reference=reference)

    run = EvaluationRun.from_dataset(dataset_dir, persona="Maya", signature_phrases=phrases)
    run.add("maya-v3", await generate_all(run.heldout, reply), kind="model")
    write_report(run, out_dir)  # report.json (numbers) + report.html (private)
    decide(Contender.from_result(challenger), Contender.from_result(champion))

Pure numpy, no model, no network (generation is the caller's); see docs/evaluation.md.
"""

from training.evaluate.abtest import (
    ABItem,
    ABResult,
    ABTestError,
    ABTestFiles,
    score_abtest,
    write_abtest,
)
from training.evaluate.capability import (
    CapabilityError,
    CapabilityPrompt,
    capability_prompts,
    check_capability,
    score_capability,
)
from training.evaluate.champion import ChampionRule, Contender, Decision, decide
from training.evaluate.degeneration import Degeneration, measure_degeneration
from training.evaluate.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    DiscriminatorError,
    HeldOut,
)
from training.evaluate.heldout import (
    HeldOutTurn,
    TrainingTexts,
    load_heldout,
    load_training_texts,
    training_replies,
)
from training.evaluate.report import ReportFiles, summary_table, write_report
from training.evaluate.run import (
    REAL,
    EvaluationError,
    EvaluationRun,
    Generation,
    SystemResult,
    evaluate_system,
    generate_all,
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
    "ABItem",
    "ABResult",
    "ABTestError",
    "ABTestFiles",
    "CapabilityError",
    "CapabilityPrompt",
    "ChampionRule",
    "Contender",
    "Decision",
    "Degeneration",
    "Discriminator",
    "DiscriminatorConfig",
    "DiscriminatorError",
    "EmptyReplySetError",
    "EvaluationError",
    "EvaluationRun",
    "Generation",
    "HeldOut",
    "HeldOutTurn",
    "PUNCTUATION_FEATURES",
    "REAL",
    "ReportFiles",
    "SCORE_WEIGHTS",
    "StyleDistances",
    "SystemResult",
    "TrainingTexts",
    "capability_prompts",
    "check_capability",
    "decide",
    "evaluate_system",
    "generate_all",
    "jensen_shannon",
    "ks_statistic",
    "load_heldout",
    "load_training_texts",
    "measure_degeneration",
    "score_abtest",
    "score_capability",
    "signature_phrases",
    "style_distances",
    "summary_table",
    "training_replies",
    "wasserstein_1",
    "write_abtest",
    "write_report",
]
