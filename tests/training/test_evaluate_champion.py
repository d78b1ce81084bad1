"""The champion/challenger rule on literal numbers: promote, or refuse with every reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from training.evaluate import ChampionRule, Contender, decide

CHAMPION = Contender(style_score=0.30, persona_share=0.80, copy_rate=0.10, capability=0.80)
REAL = Contender(style_score=0.06, persona_share=0.99, copy_rate=0.15)


def test_a_clearly_better_clean_challenger_is_promoted() -> None:
    challenger = Contender(style_score=0.25, persona_share=0.82, copy_rate=0.12, capability=0.78)
    decision = decide(challenger, CHAMPION, real=REAL)
    assert decision.promote
    assert any("beats 0.300 by 0.050" in reason for reason in decision.reasons)


def test_a_gain_smaller_than_the_minimum_improvement_is_refused() -> None:
    challenger = Contender(style_score=0.295, persona_share=0.80)
    decision = decide(challenger, CHAMPION, ChampionRule(min_improvement=0.01))
    assert not decision.promote
    assert decision.reasons == [
        "style score 0.295 does not beat the champion's 0.300 by 0.010 (gain 0.005)"
    ]


def test_every_failed_check_is_a_reason() -> None:
    challenger = Contender(
        style_score=0.20,
        persona_share=0.60,
        copy_rate=0.40,
        runaway_rate=0.10,
        empty_rate=0.20,
        capability=0.50,
        base_capability=0.85,
    )
    decision = decide(challenger, CHAMPION, real=REAL)
    assert not decision.promote
    assert decision.reasons == [
        "persona share fell by 0.20 to 0.60 (allowed 0.05)",
        "copy rate 0.40 over the limit 0.25: it repeats training replies",
        "runaway replies 0.10 over 0.05",
        "empty or failed replies 0.20 over 0.05",
        "capability 0.50 lost 0.30 against the champion's 0.80 (allowed 0.10)",
        "capability 0.50 lost 0.35 against its base model's 0.85 (allowed 0.10)",
    ]


def test_copying_is_judged_against_the_persona_own_rate_when_known() -> None:
    challenger = Contender(style_score=0.10, copy_rate=0.28)
    assert decide(challenger, None, real=Contender(style_score=0.0, copy_rate=0.20)).promote
    assert not decide(challenger, None, real=Contender(style_score=0.0, copy_rate=0.10)).promote
    assert decide(challenger, None).promote  # the absolute limit, 0.30
    assert not decide(challenger, None, ChampionRule(max_copy_rate=0.25)).promote


def test_without_a_champion_only_the_limits_apply() -> None:
    decision = decide(Contender(style_score=0.9), None)
    assert decision.promote and decision.reasons[0] == "no active version to beat"


def test_unmeasured_capability_and_share_are_not_held_against_it() -> None:
    challenger = Contender(style_score=0.2)
    decision = decide(challenger, CHAMPION)
    assert decision.promote
    assert not [r for r in decision.reasons if "capability" in r or "share" in r]


def test_the_rule_reads_from_registry_metrics() -> None:
    metrics = {"style_score": 0.2, "persona_share": 0.9, "copy_rate": 0.05, "capability": 0.7}
    contender = Contender.from_metrics(metrics)
    assert contender == Contender(
        style_score=0.2, persona_share=0.9, copy_rate=0.05, capability=0.7
    )


def test_rule_limits_are_validated() -> None:
    with pytest.raises(ValidationError):
        ChampionRule(min_improvement=-0.1)
    with pytest.raises(ValidationError):
        ChampionRule(max_empty=2)
    with pytest.raises(ValidationError):
        ChampionRule(unknown=1)
