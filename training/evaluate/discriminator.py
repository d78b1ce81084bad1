"""A classifier that tells the persona's messages from everyone else's, to judge generated ones.

If a model writes like the persona, a classifier trained on real messages should attribute
its replies to the persona about as often as it does her real held-out replies.

Design (numpy only, deterministic):

- One decision per reply turn, its bubbles joined by `BUBBLE_SEPARATOR` (the dataset's text
  form). A turn is what a model generates, so `persona_share` is a share of replies; a lone
  bubble ("ok", "haha") says little about its author, a turn says more; how a reply is split
  into bubbles is part of the style and stays visible in the joined text.
- Features: character 1-4-grams of the text as written (case and punctuation kept, with a
  start and an end mark) and lowercase word unigrams and bigrams (the profile's tokeniser),
  hashed into `2**bits` columns by a fixed multiplicative hash (no Python `hash`, so results
  do not depend on PYTHONHASHSEED). Counts are dampened (log1p) and each row scaled to unit
  length, so long replies do not dominate.
- Model: L2-regularised logistic regression, classes weighted to count equally, fitted by
  Nesterov-accelerated full-batch gradient descent with a step of 1/L (L, the gradient's
  Lipschitz constant, from a few power iterations), a fixed number of iterations.
- Honesty: texts are deduplicated per class, then a stratified share (by `seed`) is held
  out; `accuracy` is the balanced accuracy on it (chance = 0.5 whatever the class sizes),
  and the model kept is the one that was scored. Fit it on training-time messages only,
  never on the conversations being evaluated.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from style.profile.lexicon import WORD_RE, clean
from training.dataset.samples import BUBBLE_SEPARATOR
from training.errors import TrainingError

Reply = str | Sequence[str]
"""A reply as one text, or as its bubbles (joined with `BUBBLE_SEPARATOR`)."""
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CHAR_NGRAMS = (1, 2, 3, 4)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: multiply, keep the high bits
_BASE = np.uint64(0x100000001B3)
_WORD_SALT = np.uint64(0xA0761D6478BD642F)
_PAIR_SALT = np.uint64(0xE7037ED1A0B428DB)
_START, _END = "\x02", "\x03"
STEP_MARGIN = 1.1
"""Power iteration underestimates the largest eigenvalue; a step 10% shorter stays stable."""


class DiscriminatorError(TrainingError):
    """The discriminator cannot be fitted on the texts given."""


@dataclass(frozen=True, slots=True)
class HeldOut:
    """How well the fitted discriminator labels texts it did not see (one per class)."""

    persona: int
    """Held-out persona texts."""
    other: int
    """Held-out texts by the other participants."""
    persona_recall: float
    """Share of held-out persona texts attributed to the persona."""
    other_recall: float
    """Share of held-out other texts attributed to the others."""

    @property
    def accuracy(self) -> float:
        """Balanced accuracy: the mean of the two recalls, 0.5 = chance, 1 = perfect."""
        return (self.persona_recall + self.other_recall) / 2


@dataclass(frozen=True, slots=True)
class DiscriminatorConfig:
    """Feature space and optimiser settings; the defaults suit a few thousand chat turns."""

    bits: int = 18
    """Hashed feature columns: 2**bits."""
    l2: float = 1e-4
    """L2 penalty on the weights (the intercept is not penalised)."""
    iterations: int = 200
    held_out_share: float = 0.2
    """Share of each class's distinct texts kept back to measure `accuracy`."""

    def validate(self) -> None:
        """Raise `DiscriminatorError` when a setting is out of range."""
        if not 1 <= self.bits <= 32:
            raise DiscriminatorError(f"bits must be between 1 and 32, not {self.bits}")
        if not 0 < self.held_out_share < 1:
            raise DiscriminatorError(
                f"held_out_share must be between 0 and 1, not {self.held_out_share}"
            )
        if self.iterations < 1 or self.l2 < 0:
            raise DiscriminatorError("iterations must be positive and l2 not negative")


class Discriminator:
    """Persona-versus-others logistic regression over hashed n-gram features."""

    def __init__(
        self,
        columns: IntArray,
        weights: FloatArray,
        bias: float,
        config: DiscriminatorConfig,
        held_out: HeldOut | None = None,
    ) -> None:
        self.columns = columns
        """The hashed feature columns seen in training, sorted; `weights` follow them."""
        self.weights = weights
        self.bias = bias
        self.config = config
        self.held_out = held_out
        """How it did on texts it did not see; None when built by hand."""

    @classmethod
    def fit(
        cls,
        persona_texts: Sequence[Reply],
        other_texts: Sequence[Reply],
        *,
        seed: int = 0,
        config: DiscriminatorConfig | None = None,
    ) -> Discriminator:
        """Train on the persona's and the others' messages; score on a held-out share.

        Texts are deduplicated per class first, so a common reply ("ok") cannot sit on both
        sides of the held-out split. Give the others' texts without speaker prefixes
        ("Sam: ...") and leave out `CONVERSATION_START` turns: generated replies never carry
        them, so a classifier that keyed on them would say nothing about style.
        """
        config = config or DiscriminatorConfig()
        config.validate()
        persona = sorted(set(map(as_text, persona_texts)))
        other = sorted(set(map(as_text, other_texts)))
        if min(len(persona), len(other)) < 2:
            raise DiscriminatorError(
                f"need at least 2 distinct texts on each side, got {len(persona)} by the "
                f"persona and {len(other)} by the others; give more training messages"
            )
        rng = np.random.default_rng(seed)
        fit_p, test_p = _split(len(persona), config.held_out_share, rng)
        fit_o, test_o = _split(len(other), config.held_out_share, rng)
        texts = [persona[i] for i in fit_p] + [other[i] for i in fit_o]
        labels = np.r_[np.ones(fit_p.size), np.zeros(fit_o.size)]
        matrix = _Matrix(_features(texts, config.bits))
        weights, bias = _train(matrix, labels, config)
        model = cls(matrix.columns, weights, bias, config)
        persona_hits = model.predict_proba([persona[i] for i in test_p]) >= 0.5
        other_hits = model.predict_proba([other[i] for i in test_o]) < 0.5
        model.held_out = HeldOut(
            persona=int(test_p.size),
            other=int(test_o.size),
            persona_recall=float(persona_hits.mean()),
            other_recall=float(other_hits.mean()),
        )
        return model

    @property
    def accuracy(self) -> float:
        """Balanced accuracy on the held-out texts (0.5 = chance); NaN if never scored."""
        return self.held_out.accuracy if self.held_out is not None else float("nan")

    def predict_proba(self, texts: Sequence[Reply]) -> FloatArray:
        """The probability that each text is the persona's, 0..1."""
        if not texts:
            return np.zeros(0, dtype=np.float64)
        features = _features(list(map(as_text, texts)), self.config.bits)
        index = np.searchsorted(self.columns, features.cols)
        index[index == self.columns.size] = 0
        known = self.columns[index] == features.cols  # columns unseen in training weigh 0
        logits = np.bincount(
            features.rows[known],
            weights=features.values[known] * self.weights[index[known]],
            minlength=features.texts,
        )
        return _sigmoid(logits + self.bias)

    def persona_share(self, texts: Sequence[Reply], threshold: float = 0.5) -> float:
        """The share of `texts` attributed to the persona (probability >= threshold)."""
        if not texts:
            raise DiscriminatorError("no texts to judge; give at least one reply")
        return float((self.predict_proba(texts) >= threshold).mean())


def as_text(reply: Reply) -> str:
    """A reply as one text: bubbles joined by `BUBBLE_SEPARATOR`, a string as it is."""
    return reply if isinstance(reply, str) else BUBBLE_SEPARATOR.join(reply)


# --- features ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Features:
    """Sparse features as (row, hashed column, value) triples sorted by row, then column."""

    rows: IntArray
    cols: IntArray
    values: FloatArray
    texts: int


def _features(texts: list[str], bits: int) -> _Features:
    """Hashed character n-gram and word features of `texts`, log-scaled, rows unit length.

    Every row has features: the start and end marks are character n-grams of any text.
    """
    rows_c, hashes_c = _char_hashes(texts)
    rows_w, hashes_w = _word_hashes(texts)
    rows = np.concatenate([rows_c, rows_w])
    cols = (np.concatenate([hashes_c, hashes_w]) * _MIX) >> np.uint64(64 - bits)
    size = np.int64(1) << bits
    keys, counts = np.unique(rows * size + cols.astype(np.int64), return_counts=True)
    rows, cols = keys // size, keys % size
    values = np.log1p(counts.astype(np.float64))
    norms = np.sqrt(np.bincount(rows, weights=values**2, minlength=len(texts)))
    return _Features(rows, cols, values / norms[rows], len(texts))


class _Matrix:
    """The training features with only the columns in use, stored by row and by column.

    Both products are one gather and one `np.add.reduceat` over contiguous runs, the fastest
    sparse products plain numpy offers.
    """

    def __init__(self, features: _Features) -> None:
        self.columns, column = np.unique(features.cols, return_inverse=True)
        self.values = features.values
        self.column = column
        self.row_starts = np.flatnonzero(np.r_[True, np.diff(features.rows) != 0])
        order = np.argsort(column, kind="stable")
        self.by_column_values = features.values[order]
        self.by_column_rows = features.rows[order]
        self.column_starts = np.flatnonzero(np.r_[True, np.diff(column[order]) != 0])

    def dot(self, vector: FloatArray) -> FloatArray:
        """Matrix @ vector."""
        return np.add.reduceat(self.values * vector[self.column], self.row_starts)

    def tdot(self, vector: FloatArray) -> FloatArray:
        """Matrix.T @ vector."""
        return np.add.reduceat(
            self.by_column_values * vector[self.by_column_rows], self.column_starts
        )


def _char_hashes(texts: list[str]) -> tuple[IntArray, npt.NDArray[np.uint64]]:
    """Row and polynomial hash of every character n-gram (`CHAR_NGRAMS`) inside one text."""
    padded = [f"{_START}{text}{_END}" for text in texts]
    lengths = np.fromiter(map(len, padded), np.int64, len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    codes = codes.astype(np.uint64)
    row = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    rows: list[IntArray] = []
    hashes: list[npt.NDArray[np.uint64]] = []
    rolling = np.zeros(codes.size, dtype=np.uint64)
    for n in range(1, max(CHAR_NGRAMS) + 1):
        count = codes.size - n + 1
        rolling = rolling[:count] * _BASE + codes[n - 1 :]
        if n in CHAR_NGRAMS:
            inside = row[:count] == row[n - 1 :]
            rows.append(row[:count][inside])
            hashes.append(rolling[inside] + np.uint64(n))
    return np.concatenate(rows), np.concatenate(hashes)


def _word_hashes(texts: list[str]) -> tuple[IntArray, npt.NDArray[np.uint64]]:
    """Row and hash of every word and adjacent word pair (numbers break a pair)."""
    ids: dict[str, int] = {"": 0}
    sequences = [
        [ids.setdefault(clean(token), len(ids)) for token in WORD_RE.findall(text.lower())]
        for text in texts
    ]
    word_hash = (
        np.fromiter(
            (zlib.crc32(word.encode("utf-8", "surrogatepass")) for word in ids), np.uint64, len(ids)
        )
        ^ _WORD_SALT
    )
    lengths = np.fromiter(map(len, sequences), np.int64, len(sequences))
    tokens = np.fromiter((i for seq in sequences for i in seq), np.int64, int(lengths.sum()))
    row = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    words = tokens != 0
    pairs = (row[:-1] == row[1:]) & words[:-1] & words[1:]
    pair_hash = (word_hash[tokens[:-1]] * _BASE + word_hash[tokens[1:]]) ^ _PAIR_SALT
    return (
        np.concatenate([row[words], row[:-1][pairs]]),
        np.concatenate([word_hash[tokens[words]], pair_hash[pairs]]),
    )


# --- training ------------------------------------------------------------------------------


def _split(size: int, share: float, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """(fit, held-out) indices: `share` of `size` held out, at least one of each."""
    order = rng.permutation(size)
    held = min(size - 1, max(1, round(size * share)))
    return np.sort(order[held:]), np.sort(order[:held])


def _train(
    matrix: _Matrix, labels: FloatArray, config: DiscriminatorConfig
) -> tuple[FloatArray, float]:
    """Weights and intercept of the class-balanced, L2-regularised logistic regression.

    Nesterov's accelerated gradient on the mean weighted log-loss; each class's weights sum
    to 1/2. The step is 1/L with L = 1/4 of the largest eigenvalue of the weighted Gram
    matrix (with a margin, as power iteration approaches it from below) plus the penalty.
    """
    positives = labels.sum()
    sample = np.where(labels == 1, 0.5 / positives, 0.5 / (labels.size - positives))
    lipschitz = 0.25 * STEP_MARGIN * _largest_eigenvalue(matrix, sample) + config.l2
    step = 1.0 / lipschitz
    theta = np.zeros(matrix.columns.size + 1)  # the last entry is the intercept
    previous = theta
    for k in range(1, config.iterations + 1):
        look = theta + (k - 1) / (k + 2) * (theta - previous)
        residual = (_sigmoid(matrix.dot(look[:-1]) + look[-1]) - labels) * sample
        gradient = np.append(matrix.tdot(residual) + config.l2 * look[:-1], residual.sum())
        previous, theta = theta, look - step * gradient
    return theta[:-1], float(theta[-1])


def _largest_eigenvalue(matrix: _Matrix, sample: FloatArray, steps: int = 20) -> float:
    """Largest eigenvalue of [X 1]^T diag(sample) [X 1], by power iteration from ones."""
    vector = np.ones(matrix.columns.size + 1)
    value = 1.0
    for _ in range(steps):
        projected = (matrix.dot(vector[:-1]) + vector[-1]) * sample
        image = np.append(matrix.tdot(projected), projected.sum())
        value = float(np.linalg.norm(image))
        vector = image / value
    return value


def _sigmoid(z: FloatArray) -> FloatArray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
