"""What a job may cost: the OpenAI files' tokens × the epochs OpenAI will run × the price."""

from __future__ import annotations

from dataclasses import dataclass

from training.dataset.estimate import (
    Estimate,
    SplitTokens,
    Target,
    TokenCounts,
    count_openai_file,
    estimate,
)
from training.dataset.formats.openai import (
    TOKENS_PER_MESSAGE,
    TokenCounter,
    counter_name,
    per_message_tokens,
    rough_token_count,
)
from training.openai_ft.config import OpenAIJobConfig
from training.openai_ft.dataset import OpenAIDataset

__all__ = ["CostEstimate", "auto_epochs", "estimate_cost"]

# OpenAI's default epochs for `n_epochs="auto"`, as its cookbook "Data preparation and
# analysis for chat model fine-tuning" computes it: 3, raised for small files so that
# examples × epochs reaches 100 (at most 25 epochs), lowered for large ones so it stays
# under 25,000 (at least 1).
AUTO_TARGET_EPOCHS = 3
AUTO_MIN_TARGET_EXAMPLES = 100
AUTO_MAX_TARGET_EXAMPLES = 25_000
AUTO_MIN_EPOCHS = 1
AUTO_MAX_EPOCHS = 25


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A rough price of one job, not a quote: training tokens × epochs × price."""

    model: str
    epochs: int
    epochs_note: str
    """Where `epochs` comes from: the setting, or OpenAI's "auto" rule."""
    estimate: Estimate
    """The figures (`training.dataset.estimate`): tokens per split, billed tokens, USD."""

    @property
    def train_tokens(self) -> int:
        """Tokens of the training file, one epoch."""
        return self.estimate.tokens.train.total

    @property
    def eval_tokens(self) -> int:
        """Tokens of the validation file (scored during training, not billed)."""
        return self.estimate.tokens.eval.total

    @property
    def billed_tokens(self) -> int:
        """Training tokens × epochs: what OpenAI bills."""
        return self.estimate.processed_tokens

    @property
    def usd(self) -> float:
        """The estimated price in US dollars."""
        return self.estimate.cost_usd or 0.0


def auto_epochs(examples: int) -> int:
    """The epochs OpenAI picks for `n_epochs="auto"` (its cookbook's rule, see above)."""
    if examples < 1:
        return AUTO_TARGET_EPOCHS
    if examples * AUTO_TARGET_EPOCHS < AUTO_MIN_TARGET_EXAMPLES:
        return min(AUTO_MAX_EPOCHS, AUTO_MIN_TARGET_EXAMPLES // examples)
    if examples * AUTO_TARGET_EPOCHS > AUTO_MAX_TARGET_EXAMPLES:
        return max(AUTO_MIN_EPOCHS, AUTO_MAX_TARGET_EXAMPLES // examples)
    return AUTO_TARGET_EPOCHS


def estimate_cost(
    dataset: OpenAIDataset,
    config: OpenAIJobConfig,
    *,
    usd_per_1m_tokens: float,
    token_counter: TokenCounter = rough_token_count,
) -> CostEstimate:
    """Count the OpenAI files' tokens and price `config`'s epochs at `usd_per_1m_tokens`.

    Tokens are counted as OpenAI's cookbook does (contents plus 3 per message) with
    `token_counter`, by default the builder's UTF-8 estimate, which leans high.
    """
    per_message = per_message_tokens(token_counter, TOKENS_PER_MESSAGE)
    train = count_openai_file(
        "train", dataset.train, token_counter=token_counter, tokens_per_message=per_message
    )
    eval_ = (
        count_openai_file(
            "eval", dataset.eval, token_counter=token_counter, tokens_per_message=per_message
        )
        if dataset.eval
        else SplitTokens("eval", 0, 0, 0, 0, 0, 0, 0, 0)
    )
    counts = TokenCounts(
        train=train, eval=eval_, counter=counter_name(token_counter), tokens_per_message=per_message
    )
    if config.n_epochs == "auto":
        epochs = auto_epochs(train.samples)
        note = (
            f"auto: OpenAI picks {epochs} for {train.samples:,} examples (3, raised so that "
            "examples × epochs ≥ 100, lowered so that it stays ≤ 25,000)"
        )
    else:
        epochs, note = config.n_epochs, "as set"
    target = Target(config.model, "openai", usd_per_1m_tokens=usd_per_1m_tokens)
    (figures,) = estimate((), token_counter=token_counter, targets=[target], epochs=epochs,
                          counts=counts)  # fmt: skip
    return CostEstimate(model=config.model, epochs=epochs, epochs_note=note, estimate=figures)
