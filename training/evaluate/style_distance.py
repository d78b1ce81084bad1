"""How far a set of generated replies is from the persona's real ones, measure by measure.

Both sides are lists of turns, a turn a list of bubbles (the messages of one reply). Every
measure reads the same things the style profile reads, with the profile's own code: word
tokens (`style.profile.lexicon`), emoji (`style.profile.emoji`), message endings and
all-caps (`style.profile.typography`), stretched words. Every number is a distance: 0 when
the two sides write alike, larger when they differ. `score` averages the normalised ones.

Bubble-level measures pool the bubbles of all turns. A side whose turns hold no bubble at
all is measured as one empty bubble, so a model that says nothing gets poor scores rather
than an error (`degeneration` counts such replies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import numpy.typing as npt

from style.profile.emoji import emoji_profile
from style.profile.lexicon import WORD_RE, clean, is_stretched
from style.profile.model import Profile
from style.profile.typography import ending_of
from training.errors import TrainingError

Turns = Sequence[Sequence[str]]
FloatArray = npt.NDArray[np.float64]

TOP_EMOJI = 10
"""How many favourite emoji each side contributes to the overlap."""
CHAR_NGRAMS = (1, 2, 3)
"""Character n-gram sizes of the stylometric profile."""
JSD_SMOOTHING = 1e-9
"""Pseudo-count added to every word of the shared vocabulary, so an empty side is defined."""

APOSTROPHE_LESS = frozenset(
    str.split(
        """im ive dont cant didnt doesnt isnt wasnt arent werent havent hasnt hadnt wouldnt
        couldnt shouldnt thats whats youre theyre youve theyve youll theyll aint"""
    )
)
"""Contractions written without their apostrophe ("im", "dont"); ambiguous ones ("its", "lets",
"ill", "wont", "were") are left out."""

PUNCTUATION_FEATURES = (
    "ends_period",
    "ends_exclamation",
    "ends_question",
    "ends_ellipsis",
    "multi_exclamation",
    "multi_question",
    "all_lowercase",
    "lowercase_start",
    "all_caps",
    "comma",
    "apostrophe_omitted",
    "elongated",
)
"""The per-bubble habits whose shares make the punctuation/case profile, in vector order."""

SCORE_WEIGHTS = {
    "length": 1.0,
    "bubbles": 1.0,
    "emoji": 1.0,
    "punctuation": 1.0,
    "signature": 1.0,
    "vocabulary": 1.0,
    "char_ngrams": 1.0,
}
"""Equal weights: no measure is known to matter more, and equal weights keep `score` easy to
read. Each part is in [0, 1] (see `StyleDistances.parts`); a part that cannot be measured
(no signature phrases given) is left out and the others are re-weighted."""


class EmptyReplySetError(TrainingError):
    """A set of replies to measure holds no turn at all."""


@dataclass(frozen=True, slots=True)
class StyleDistances:
    """Generated replies against the persona's real ones.

    Every distance reads lower = closer; the counts and emoji rates describe the two sides.
    """

    generated_turns: int
    reference_turns: int
    generated_bubbles: int
    reference_bubbles: int
    length_w1_chars: float
    """Wasserstein-1 between bubble lengths in characters, >= 0."""
    length_w1_relative: float
    """`length_w1_chars` / the reference's mean bubble length, >= 0, comparable across people."""
    length_ks: float
    """Two-sample Kolmogorov-Smirnov statistic of bubble lengths, 0..1."""
    bubbles_mean_diff: float
    """|mean bubbles per turn, generated - reference|, >= 0."""
    bubbles_w1: float
    """Wasserstein-1 between bubbles-per-turn distributions, >= 0."""
    generated_emoji_rate: float
    """Emoji per generated bubble (for reading the next two; not itself a distance)."""
    reference_emoji_rate: float
    """Emoji per reference bubble."""
    emoji_rate_diff: float
    """|emoji per bubble, generated - reference|, >= 0."""
    emoji_top_distance: float
    """1 - Jaccard overlap of the two sides' top-10 emoji, 0..1 (0 when neither uses emoji)."""
    punctuation_l1: float
    """L1 distance between the punctuation/case share vectors, 0..12 (`PUNCTUATION_FEATURES`)."""
    punctuation_gap: dict[str, float]
    """Per habit: share in generated bubbles - share in reference bubbles, -1..1 (signed)."""
    signature_rate_diff: float | None
    """Mean over signature phrases of |uses per bubble, generated - reference|, >= 0 (None: no
    phrases given)."""
    signature_relative: float | None
    """sum |g - r| / sum (g + r) over signature-phrase rates, 0..1 (None: no phrases given)."""
    vocabulary_jsd: float
    """Jensen-Shannon divergence of word-unigram distributions, base 2, 0..1."""
    char_ngram_distance: float
    """1 - cosine similarity of TF-IDF weighted character 1-3-gram profiles, 0..1."""
    score: float
    """Weighted mean of the normalised parts (`SCORE_WEIGHTS`), 0..1."""

    @property
    def char_ngram_similarity(self) -> float:
        """Cosine similarity of the character n-gram profiles, 0..1 (higher = closer)."""
        return 1.0 - self.char_ngram_distance

    def parts(self) -> dict[str, float]:
        """The normalised parts that `score` averages, each 0..1 (0 = alike)."""
        return score_parts(self)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field, plus the normalised parts."""
        return {**asdict(self), "parts": self.parts()}


def style_distances(
    generated: Turns, reference: Turns, *, signature_phrases: Sequence[str] = ()
) -> StyleDistances:
    """Measure how far `generated` turns write from the persona's `reference` turns.

    `signature_phrases` are the persona's words and phrases (`signature_phrases(profile)`);
    without them the signature measures are None and `score` leaves them out.
    """
    if not generated or not reference:
        side = "generated" if not generated else "reference"
        raise EmptyReplySetError(f"the {side} replies are empty; give at least one turn")
    gen_bubbles, ref_bubbles = _bubbles(generated), _bubbles(reference)
    gen_lengths = np.fromiter(map(len, gen_bubbles), np.float64, len(gen_bubbles))
    ref_lengths = np.fromiter(map(len, ref_bubbles), np.float64, len(ref_bubbles))
    gen_sizes = np.fromiter(map(len, generated), np.float64, len(generated))
    ref_sizes = np.fromiter(map(len, reference), np.float64, len(reference))
    length_w1 = wasserstein_1(gen_lengths, ref_lengths)
    ref_mean = float(ref_lengths.mean())
    gen_emoji = emoji_profile(gen_bubbles, top=TOP_EMOJI)
    ref_emoji = emoji_profile(ref_bubbles, top=TOP_EMOJI)
    gen_words = [_words(bubble) for bubble in gen_bubbles]
    ref_words = [_words(bubble) for bubble in ref_bubbles]
    gen_habits = punctuation_profile(gen_bubbles, gen_words)
    ref_habits = punctuation_profile(ref_bubbles, ref_words)
    gap = gen_habits - ref_habits
    signature = _signature(gen_words, ref_words, signature_phrases)
    distances = StyleDistances(
        generated_turns=len(generated),
        reference_turns=len(reference),
        generated_bubbles=int(gen_sizes.sum()),
        reference_bubbles=int(ref_sizes.sum()),
        length_w1_chars=length_w1,
        length_w1_relative=length_w1 / ref_mean if ref_mean else float(length_w1 > 0),
        length_ks=ks_statistic(gen_lengths, ref_lengths),
        bubbles_mean_diff=abs(float(gen_sizes.mean() - ref_sizes.mean())),
        bubbles_w1=wasserstein_1(gen_sizes, ref_sizes),
        generated_emoji_rate=gen_emoji.per_message,
        reference_emoji_rate=ref_emoji.per_message,
        emoji_rate_diff=abs(gen_emoji.per_message - ref_emoji.per_message),
        emoji_top_distance=1.0
        - jaccard({f.form for f in gen_emoji.top}, {f.form for f in ref_emoji.top}),
        punctuation_l1=float(np.abs(gap).sum()),
        punctuation_gap={k: float(v) for k, v in zip(PUNCTUATION_FEATURES, gap, strict=True)},
        signature_rate_diff=signature[0],
        signature_relative=signature[1],
        vocabulary_jsd=jensen_shannon(_unigrams(gen_words), _unigrams(ref_words)),
        char_ngram_distance=1.0 - char_ngram_similarity(gen_bubbles, ref_bubbles),
        score=0.0,
    )
    parts = score_parts(distances)
    score = sum(parts[name] * SCORE_WEIGHTS[name] for name in parts)
    return replace(distances, score=score / sum(SCORE_WEIGHTS[name] for name in parts))


def signature_phrases(profile: Profile) -> list[str]:
    """The persona's signature words and phrases from her profile, words first."""
    lexicon = profile.lexicon
    return [term.term for term in (*lexicon.signature_words, *lexicon.signature_phrases)]


# --- one-dimensional distributions ---------------------------------------------------------


def wasserstein_1(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """Earth mover's distance between two samples: the area between their empirical CDFs."""
    grid, cdf_a, cdf_b = _cdfs(first, second)
    if grid.size < 2:
        return 0.0
    return float(np.sum(np.abs(cdf_a[:-1] - cdf_b[:-1]) * np.diff(grid)))


def ks_statistic(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    _, cdf_a, cdf_b = _cdfs(first, second)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _cdfs(first: npt.ArrayLike, second: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The union of both samples' values, and each sample's empirical CDF on it."""
    a = np.sort(np.asarray(first, dtype=np.float64))
    b = np.sort(np.asarray(second, dtype=np.float64))
    if not a.size or not b.size:
        raise EmptyReplySetError("a distribution to compare is empty; give at least one value")
    grid = np.unique(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return grid, cdf_a, cdf_b


# --- habits, words and characters ----------------------------------------------------------


def punctuation_profile(bubbles: Sequence[str], words: Sequence[Sequence[str]]) -> FloatArray:
    """Per-bubble shares of each habit in `PUNCTUATION_FEATURES`; `words` are the bubbles' tokens.

    Endings follow the profile's rule (`typography.ending_of` on the last visible character,
    a trailing ".." counts as an ellipsis); all-caps needs three letters, as in the profile.
    """
    counts = np.zeros(len(PUNCTUATION_FEATURES), dtype=np.float64)
    for bubble, tokens in zip(bubbles, words, strict=True):
        text = bubble.rstrip()
        ending = "ellipsis" if text.endswith("..") else ending_of(text[-1:])
        counts += (
            ending == "period",
            ending == "exclamation",
            ending == "question",
            ending == "ellipsis",
            "!!" in text,
            "??" in text,
            text.islower(),
            text[:1].islower(),
            text.isupper() and sum(map(str.isalpha, text)) >= 3,
            "," in text,
            any(token in APOSTROPHE_LESS for token in tokens),
            any(map(is_stretched, tokens)),
        )
    return counts / max(1, len(bubbles))


def jensen_shannon(first: Counter[str], second: Counter[str]) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) of two count tables over their shared words."""
    vocabulary = sorted(first.keys() | second.keys())
    if not vocabulary:
        return 0.0
    p = _distribution([first[w] for w in vocabulary])
    q = _distribution([second[w] for w in vocabulary])
    m = (p + q) / 2
    divergence = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(min(1.0, max(0.0, divergence)))


def char_ngram_similarity(first: Sequence[str], second: Sequence[str]) -> float:
    """Cosine similarity (0..1) of the two sides' TF-IDF weighted character n-gram profiles.

    Each side's profile is its n-gram relative frequencies (Burrows-style: how often, not how
    many), weighted by the smoothed inverse bubble frequency over both sides, so n-grams in
    nearly every bubble (spaces, "e") count less than telling ones ("u ", "!!", "lol").
    Bubbles are padded with a start and an end mark, so openings and endings are n-grams too.
    """
    counts_a, docs_a = _char_ngrams(first)
    counts_b, docs_b = _char_ngrams(second)
    keys = sorted(counts_a.keys() | counts_b.keys())
    if not keys:
        return 1.0
    bubbles = len(first) + len(second)
    df = np.array([docs_a[k] + docs_b[k] for k in keys], dtype=np.float64)
    idf = np.log((1 + bubbles) / (1 + df)) + 1
    a = _distribution([counts_a[k] for k in keys], smoothing=0.0) * idf
    b = _distribution([counts_b[k] for k in keys], smoothing=0.0) * idf
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.clip(a @ b / norms, 0.0, 1.0)) if norms else 0.0


def jaccard(first: set[str], second: set[str]) -> float:
    """|A ∩ B| / |A ∪ B|, and 1 when both are empty (nothing to disagree on)."""
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def _char_ngrams(bubbles: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """N-gram counts, and in how many bubbles each n-gram occurs."""
    counts: Counter[str] = Counter()
    docs: Counter[str] = Counter()
    for bubble in bubbles:
        padded = f"\x02{bubble}\x03"
        grams = [padded[i : i + n] for n in CHAR_NGRAMS for i in range(len(padded) - n + 1)]
        counts.update(grams)
        docs.update(set(grams))
    return counts, docs


def _distribution(counts: Sequence[int], *, smoothing: float = JSD_SMOOTHING) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64) + smoothing
    total = values.sum()
    return values / total if total else values


def _words(bubble: str) -> list[str]:
    """The profile's word keys of one bubble, in order; "" stands where a number was."""
    return [clean(token) for token in WORD_RE.findall(bubble.lower())]


def _unigrams(words: Iterable[Sequence[str]]) -> Counter[str]:
    return Counter(word for tokens in words for word in tokens if word)


def _bubbles(turns: Turns) -> list[str]:
    bubbles = [bubble for turn in turns for bubble in turn]
    return bubbles or [""]


def _signature(
    gen_words: Sequence[Sequence[str]],
    ref_words: Sequence[Sequence[str]],
    phrases: Sequence[str],
) -> tuple[float | None, float | None]:
    """(mean |rate difference|, relative difference) of the phrases' uses per bubble.

    Neither side using any of them is agreement: both differences are 0.
    """
    wanted = [tuple(_words(phrase)) for phrase in phrases]
    wanted = [phrase for phrase in wanted if phrase and all(phrase)]
    if not wanted:
        return None, None
    gen = _phrase_rates(gen_words, wanted)
    ref = _phrase_rates(ref_words, wanted)
    total = float((gen + ref).sum())
    diff = np.abs(gen - ref)
    return float(diff.mean()), (float(diff.sum()) / total if total else 0.0)


def _phrase_rates(words: Sequence[Sequence[str]], phrases: list[tuple[str, ...]]) -> FloatArray:
    """Uses per bubble of each phrase (a word is a one-word phrase)."""
    counts: Counter[tuple[str, ...]] = Counter()
    sizes = {len(phrase) for phrase in phrases}
    for tokens in words:
        for n in sizes:
            counts.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return np.array([counts[p] for p in phrases], dtype=np.float64) / max(1, len(words))


# --- the overall score ---------------------------------------------------------------------


def score_parts(distances: StyleDistances) -> dict[str, float]:
    """Each measure as a number in 0..1 (0 = alike), the inputs of `score`.

    length: mean of the KS statistic and the relative W1 (capped at 1); bubbles: W1 over the
    reference's mean bubbles per turn (capped at 1); emoji: mean of the top-emoji distance
    and the rate difference over the larger rate; punctuation: L1 / number of habits;
    signature: the relative difference; vocabulary: JSD; char_ngrams: 1 - cosine.
    """
    per_turn = distances.reference_bubbles / distances.reference_turns
    bubbles = distances.bubbles_w1 / per_turn if per_turn else float(distances.bubbles_w1 > 0)
    larger_rate = max(distances.generated_emoji_rate, distances.reference_emoji_rate)
    emoji_rate = distances.emoji_rate_diff / larger_rate if larger_rate else 0.0
    parts = {
        "length": (distances.length_ks + min(1.0, distances.length_w1_relative)) / 2,
        "bubbles": min(1.0, bubbles),
        "emoji": (distances.emoji_top_distance + emoji_rate) / 2,
        "punctuation": distances.punctuation_l1 / len(PUNCTUATION_FEATURES),
        "vocabulary": distances.vocabulary_jsd,
        "char_ngrams": distances.char_ngram_distance,
    }
    if distances.signature_relative is not None:
        parts["signature"] = distances.signature_relative
    return {name: parts[name] for name in SCORE_WEIGHTS if name in parts}
