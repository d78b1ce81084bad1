"""The champion/challenger rule: when a newly trained version may replace the active one.

A challenger is promoted only when it writes clearly more like the persona (a lower style
score by `min_improvement`), the discriminator does not find it clearly less like her, it
does not degenerate (copying beyond the person's own rate, runaway or empty replies), and
it has not lost general ability (capability retention). Both sides must be measured on the
same held-out turns, i.e. in the same `EvaluationRun`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from training.evaluate.run import SystemResult

__all__ = ["ChampionRule", "Contender", "Decision", "decide"]


class ChampionRule(BaseModel):
    """The limits a challenger must meet; every limit is a share or score in 0..1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_improvement: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="The challenger's style score must be lower than the champion's by this.",
    )
    max_share_drop: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Its discriminator persona share may be at most this much lower.",
    )
    max_copy_excess: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="Its copy rate (replies equal to a training reply) may exceed the real "
        "person's own held-out rate by at most this.",
    )
    max_copy_rate: float = Field(
        default=0.30,
        ge=0,
        le=1,
        description="The copy-rate limit when the real person's rate is not known.",
    )
    max_runaway: float = Field(
        default=0.05, ge=0, le=1, description="Share of runaway or looping replies allowed."
    )
    max_empty: float = Field(
        default=0.05, ge=0, le=1, description="Share of empty (or failed) replies allowed."
    )
    max_capability_drop: float = Field(
        default=0.10,
        ge=0,
        le=1,
        description="General-ability score (capability prompts) it may lose against the "
        "champion or its own base model.",
    )


@dataclass(frozen=True, slots=True)
class Contender:
    """The numbers the rule reads about one system."""

    style_score: float
    persona_share: float | None = None
    copy_rate: float = 0.0
    runaway_rate: float = 0.0
    empty_rate: float = 0.0
    capability: float | None = None
    """Share of the capability prompts answered correctly (None: not measured)."""
    base_capability: float | None = None
    """The same for its base model (local adapters; None: not measured)."""

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, float]) -> Contender:
        """From a registry version's metrics (`SystemResult.metrics()` names, `capability`)."""
        return cls(
            style_score=metrics["style_score"],
            persona_share=metrics.get("persona_share"),
            copy_rate=metrics.get("copy_rate", 0.0),
            runaway_rate=metrics.get("runaway_rate", 0.0),
            empty_rate=metrics.get("empty_rate", 0.0),
            capability=metrics.get("capability"),
            base_capability=metrics.get("capability_base"),
        )

    @classmethod
    def from_result(
        cls,
        result: SystemResult,
        *,
        capability: float | None = None,
        base_capability: float | None = None,
    ) -> Contender:
        """From an evaluation row, with capability scores measured separately."""
        d = result.degeneration
        return cls(
            style_score=result.distances.score,
            persona_share=result.persona_share,
            copy_rate=d.copied_replies,
            runaway_rate=d.runaway,
            empty_rate=d.empty,
            capability=capability,
            base_capability=base_capability,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to promote the challenger, and every check's outcome in words."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    """Why not, one line per failed check; when promoting, what it passed."""


def decide(
    challenger: Contender,
    champion: Contender | None,
    rule: ChampionRule | None = None,
    *,
    real: Contender | None = None,
) -> Decision:
    """Apply `rule` to a challenger and the champion (None: no active version yet).

    `real` is the persona's own held-out replies (the evaluation's ceiling row): its copy
    rate is what a person repeats herself, so copying is judged against it.
    """
    rule = rule or ChampionRule()
    failed: list[str] = []
    passed: list[str] = []

    def check(ok: bool, good: str, bad: str) -> None:
        (passed if ok else failed).append(good if ok else bad)

    if champion is None:
        passed.append("no active version to beat")
    else:
        gain = champion.style_score - challenger.style_score
        check(
            gain >= rule.min_improvement,
            f"style score {challenger.style_score:.3f} beats {champion.style_score:.3f} "
            f"by {gain:.3f}",
            f"style score {challenger.style_score:.3f} does not beat the champion's "
            f"{champion.style_score:.3f} by {rule.min_improvement:.3f} (gain {gain:.3f})",
        )
        if challenger.persona_share is not None and champion.persona_share is not None:
            drop = champion.persona_share - challenger.persona_share
            check(
                drop <= rule.max_share_drop,
                f"persona share {challenger.persona_share:.2f} "
                f"(champion {champion.persona_share:.2f})",
                f"persona share fell by {drop:.2f} to {challenger.persona_share:.2f} "
                f"(allowed {rule.max_share_drop:.2f})",
            )
    copy_limit = rule.max_copy_rate if real is None else real.copy_rate + rule.max_copy_excess
    check(
        challenger.copy_rate <= copy_limit,
        f"copy rate {challenger.copy_rate:.2f} within {copy_limit:.2f}",
        f"copy rate {challenger.copy_rate:.2f} over the limit {copy_limit:.2f}: it repeats "
        "training replies",
    )
    check(
        challenger.runaway_rate <= rule.max_runaway,
        f"runaway replies {challenger.runaway_rate:.2f}",
        f"runaway replies {challenger.runaway_rate:.2f} over {rule.max_runaway:.2f}",
    )
    check(
        challenger.empty_rate <= rule.max_empty,
        f"empty replies {challenger.empty_rate:.2f}",
        f"empty or failed replies {challenger.empty_rate:.2f} over {rule.max_empty:.2f}",
    )
    for other, whose in (
        (champion.capability if champion else None, "the champion's"),
        (challenger.base_capability, "its base model's"),
    ):
        if challenger.capability is not None and other is not None:
            loss = other - challenger.capability
            check(
                loss <= rule.max_capability_drop,
                f"capability {challenger.capability:.2f} against {whose} {other:.2f}",
                f"capability {challenger.capability:.2f} lost {loss:.2f} against {whose} "
                f"{other:.2f} (allowed {rule.max_capability_drop:.2f})",
            )
    return Decision(promote=not failed, reasons=failed or passed)
