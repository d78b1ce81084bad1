"""Words: what the persona says more than the others, and her greetings, laughs and slang.

Tokens are runs of word characters and apostrophes in lowercased text, so "I'm" is one token
"i'm" and emoji are not tokens (they have their own module). Chunks of messages are joined
and tokenised with one regex call; tokens become integer ids and numpy counts them.

Signature words and phrases are ranked by the weighted log-odds ratio with an informative
Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words"), using the pooled counts
of both sides as the prior, as the tidylo package does:

    alpha_w = y_pw + y_ow,  alpha_0 = n_p + n_o
    delta_w = log((y_pw + alpha_w) / (n_p + alpha_0 - y_pw - alpha_w))
            - log((y_ow + alpha_w) / (n_o + alpha_0 - y_ow - alpha_w))
    z_w     = delta_w / sqrt(1 / (y_pw + alpha_w) + 1 / (y_ow + alpha_w))

where y are a word's counts and n the total tokens of the persona (p) and the others (o).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from style.profile.distributions import share
from style.profile.model import Abbreviations, Elongation, Form, Laughter, Richness, Term
from style.profile.model import top_forms as _top_forms

TOKEN_RE = re.compile(r"[\w'’\x01]+")
BOUNDARY = "\x01"
"""Put between messages before tokenising, so no phrase spans two messages."""
CHUNK = 20_000
WORD_RE = re.compile(r"[\w'’]+")

Pair = tuple[str, str]


class Vocabulary:
    """Raw token -> integer id, shared by both sides so that their pair codes agree."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {BOUNDARY: 0}
        self.tokens: list[str] = [BOUNDARY]

    def encode(self, tokens: list[str]) -> npt.NDArray[np.int64]:
        """The ids of `tokens`, adding the new ones."""
        ids = self.ids
        for token in set(tokens).difference(ids):
            ids[token] = len(self.tokens)
            self.tokens.append(token)
        return np.fromiter(map(ids.__getitem__, tokens), np.int64, len(tokens))


@dataclass(slots=True)
class TokenCounts:
    """Word and word-pair counts of one side of a chat (the persona, or everyone else)."""

    words: Counter[str] = field(default_factory=Counter)
    pairs: Counter[Pair] = field(default_factory=Counter)
    tokens: int = 0
    pair_total: int = 0
    messages: int = 0
    sequence: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    """Token ids in order (message boundaries removed), for the type-token ratio."""
    pair_codes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_counts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


_SHIFT = np.int64(1 << 32)


def count_tokens(
    texts: Sequence[str],
    vocabulary: Vocabulary,
    *,
    pairs_among: npt.NDArray[np.int64] | None = None,
) -> TokenCounts:
    """Count words and adjacent word pairs in `texts`.

    Tokens become ids (one dict lookup each, in C); counting is then numpy: `bincount` for
    words, `unique` over `first << 32 | second` codes for pairs. `pairs_among` limits pair
    counting to those codes (the persona's frequent pairs, when counting the others). Keys
    are normalised (see `clean`): numbers are dropped, curly apostrophes become straight.
    """
    findall, encode = TOKEN_RE.findall, vocabulary.encode
    parts = [
        encode(findall(" \x01 ".join(texts[start : start + CHUNK]).lower()))
        for start in range(0, len(texts), CHUNK)
    ]
    ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    words = ids[ids != 0]
    counts = TokenCounts(messages=len(texts), sequence=words, tokens=int(words.size))
    per_id = np.bincount(words, minlength=len(vocabulary.tokens))
    tokens = vocabulary.tokens
    for i in np.flatnonzero(per_id).tolist():
        key = clean(tokens[i])
        if key:
            counts.words[key] += int(per_id[i])
    first, second = ids[:-1], ids[1:]
    valid = (first != 0) & (second != 0)
    counts.pair_total = int(valid.sum())
    if pairs_among is not None:  # cheap table look-ups first, the exact set test on the rest
        size = len(tokens)
        firsts, seconds = np.zeros(size, np.bool_), np.zeros(size, np.bool_)
        firsts[pairs_among >> 32] = True
        seconds[pairs_among & 0xFFFFFFFF] = True
        valid &= firsts[first] & seconds[second]
    codes = first[valid] * _SHIFT + second[valid]
    if pairs_among is not None:
        codes = codes[np.isin(codes, pairs_among)]
    unique, frequency = np.unique(codes, return_counts=True)
    if pairs_among is None:
        keep = frequency >= 2  # a pair said once can be neither a signature nor a candidate
        unique, frequency = unique[keep], frequency[keep]
    counts.pair_codes, counts.pair_counts = unique, frequency
    for code, n in zip(unique.tolist(), frequency.tolist(), strict=True):
        a, b = clean(tokens[code >> 32]), clean(tokens[code & 0xFFFFFFFF])
        if a and b:
            counts.pairs[(a, b)] += n
    return counts


def frequent_pairs(counts: TokenCounts, min_count: int) -> npt.NDArray[np.int64]:
    """Codes of the pairs said at least `min_count` times: the only ones worth contrasting."""
    return counts.pair_codes[counts.pair_counts >= min_count]


def clean(token: str) -> str:
    """A token as a dictionary key: no edge apostrophes or underscores; '' for numbers."""
    key = token.strip("'’_")
    if "’" in key:
        key = key.replace("’", "'")
    if not key or key.isdigit():
        return ""
    return key


# --- Fightin' Words ----------------------------------------------------------------------


def log_odds_z(
    persona: npt.ArrayLike, others: npt.ArrayLike, n_persona: int, n_others: int
) -> npt.NDArray[np.float64]:
    """z-scores of the weighted log-odds ratio with the pooled informative prior."""
    yp = np.asarray(persona, dtype=np.float64)
    yo = np.asarray(others, dtype=np.float64)
    alpha = yp + yo
    alpha0 = float(n_persona + n_others)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.log((yp + alpha) / (n_persona + alpha0 - yp - alpha)) - np.log(
            (yo + alpha) / (n_others + alpha0 - yo - alpha)
        )
        sigma = np.sqrt(1.0 / (yp + alpha) + 1.0 / (yo + alpha))
        z = delta / sigma
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def signature_terms(
    persona: Counter[str],
    others: Counter[str],
    n_persona: int,
    n_others: int,
    *,
    top: int,
    min_count: int,
) -> tuple[list[Term], list[Term]]:
    """(favoured, avoided) terms: highest and lowest z among terms said min_count+ times."""
    favoured_keys = [k for k, n in persona.items() if n >= min_count]
    avoided_keys = [k for k, n in others.items() if n >= min_count and k not in persona]
    avoided_keys += [k for k in favoured_keys if others.get(k, 0) >= min_count]
    return (
        _ranked(favoured_keys, persona, others, n_persona, n_others, top, positive=True),
        _ranked(avoided_keys, persona, others, n_persona, n_others, top, positive=False),
    )


def _ranked(
    keys: list[str],
    persona: Counter[str],
    others: Counter[str],
    n_persona: int,
    n_others: int,
    top: int,
    *,
    positive: bool,
) -> list[Term]:
    if not keys or not n_persona or not n_others:
        return []
    yp = [persona.get(k, 0) for k in keys]
    yo = [others.get(k, 0) for k in keys]
    z = log_odds_z(yp, yo, n_persona, n_others)
    order = sorted(range(len(keys)), key=lambda i: (-z[i] if positive else z[i], keys[i]))
    picked = [i for i in order if (z[i] > 0 if positive else z[i] < 0)][:top]
    return [Term(keys[i], int(yp[i]), int(yo[i]), round(float(z[i]), 3)) for i in picked]


# --- greetings and sign-offs -------------------------------------------------------------


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


GREETINGS = _word_set(
    """hi hii hey heyy hello helloo hiya heya hai yo sup hellooo morning evening howdy guys
    everyone all hola
    buenas buenos holi oi olá ola eae eai hallo moin servus salut coucou bonjour bonsoir
    ciao salve buongiorno buonasera hoi goedemorgen привет здравствуйте приветик"""
)
GREETING_PHRASES = frozenset(
    {
        ("good", "morning"),
        ("good", "evening"),
        ("good", "afternoon"),
        ("what's", "up"),
        ("whats", "up"),
        ("buen", "día"),
        ("buenos", "días"),
        ("bom", "dia"),
        ("boa", "tarde"),
        ("guten", "morgen"),
        ("guten", "tag"),
        ("goede", "morgen"),
        ("доброе", "утро"),
    }
)
SIGN_OFFS = _word_set(
    """bye byebye goodbye night nite gn nighty ttyl cya later laters xx xxx xoxo sleep bed
    adiós adios chao chau tchau tschüss tschüs ciao doei welterusten bisous bjs beijos пока
    ily"""
)
SIGN_OFF_PHRASES = frozenset(
    {
        ("good", "night"),
        ("night", "night"),
        ("sleep", "well"),
        ("sweet", "dreams"),
        ("talk", "tomorrow"),
        ("talk", "tmrw"),
        ("talk", "later"),
        ("talk", "soon"),
        ("speak", "soon"),
        ("see", "you"),
        ("see", "ya"),
        ("see", "u"),
        ("love", "you"),
        ("love", "u"),
        ("take", "care"),
        ("hasta", "luego"),
        ("hasta", "mañana"),
        ("buenas", "noches"),
        ("nos", "vemos"),
        ("boa", "noite"),
        ("até", "logo"),
        ("gute", "nacht"),
        ("bis", "dann"),
        ("bis", "später"),
        ("bonne", "nuit"),
        ("à", "plus"),
        ("buona", "notte"),
        ("a", "dopo"),
        ("tot", "morgen"),
        ("спокойной", "ночи"),
    }
)
SIGN_OFF_MAX_WORDS = 8
_SIGN_OFF_FIRSTS = frozenset(first for first, _ in SIGN_OFF_PHRASES)
_RUN3 = re.compile(r"(\w)\1{2,}")


@functools.lru_cache(maxsize=1 << 16)
def squeezed(word: str) -> tuple[str, str]:
    """A stretched word with its runs of 3+ letters cut to one and to two ("welll")."""
    if not _RUN3.search(word):
        return word, word
    return _RUN3.sub(r"\1", word), _RUN3.sub(r"\1\1", word)


def _in(word: str, lexicon: Collection[str]) -> bool:
    one, two = squeezed(word)
    return one in lexicon or two in lexicon


def _pair_in(first: str, second: str, lexicon: Collection[tuple[str, ...]]) -> bool:
    a1, a2 = squeezed(first)
    b1, b2 = squeezed(second)
    return (a1, b1) in lexicon or (a2, b2) in lexicon or (a1, b2) in lexicon or (a2, b1) in lexicon


def greeting(text: str) -> str | None:
    """The greeting a message opens with, as written ("heyyy", "good morning"), or None."""
    words = [w.strip("'’") for w in WORD_RE.findall(text.lower())]
    i = 0
    while i < len(words):
        if i + 1 < len(words) and _pair_in(words[i], words[i + 1], GREETING_PHRASES):
            i += 2
        elif _in(words[i], GREETINGS) and (i > 0 or words[i] not in ("all", "everyone")):
            i += 1
        else:
            break
    return " ".join(words[:i]) if i else None


def sign_off(text: str) -> str | None:
    """The farewell in a short message, as written ("byeee", "night night"), or None."""
    words = [w.strip("'’") for w in WORD_RE.findall(text.lower())]
    if not words or len(words) > SIGN_OFF_MAX_WORDS:
        return None
    hits: list[int] = []
    i = 0
    while i < len(words):
        one, two = squeezed(words[i])
        if (
            i + 1 < len(words)
            and (one in _SIGN_OFF_FIRSTS or two in _SIGN_OFF_FIRSTS)
            and _pair_in(words[i], words[i + 1], SIGN_OFF_PHRASES)
        ):
            hits += [i, i + 1]
            i += 2
            continue
        if one in SIGN_OFFS or two in SIGN_OFFS:
            hits.append(i)
        i += 1
    return " ".join(words[hits[0] : hits[-1] + 1]) if hits else None


def greeting_forms(openers: Sequence[str], *, top: int) -> tuple[list[Form], float | None]:
    """Top greetings among conversation-opening messages, and the share that greet."""
    found = Counter(g for g in map(greeting, openers) if g)
    return _top_forms(found, top), share(sum(found.values()), len(openers))


def sign_off_forms(closers: Sequence[str], *, top: int) -> tuple[list[Form], float | None]:
    """Top farewells among the persona's last messages of conversations, and their share."""
    found = Counter(s for s in map(sign_off, closers) if s)
    return _top_forms(found, top), share(sum(found.values()), len(closers))


# --- laughter, elongation, abbreviations -------------------------------------------------

LAUGHTER = (
    ("haha", re.compile(r"a?(?:h+a+){2,}h*|(?:h+e+){2,}h*|(?:h+i+){2,}h*|(?:a+h+){2,}a*")),
    ("jaja", re.compile(r"a?(?:j+[aei]+){2,}j*")),
    ("kkk", re.compile(r"k{3,}")),
    ("rsrs", re.compile(r"(?:rs){2,}r?")),
    ("lol", re.compile(r"lo+l+z*|lul+")),
    ("lmao", re.compile(r"lmf?a+o+|rofl+|roflmao+")),
    ("xd", re.compile(r"x+d+")),
    ("mdr", re.compile(r"mdr+|ptdr+")),
    ("хаха", re.compile(r"(?:х+а+){2,}х*|(?:х+е+){2,}х*")),
)
LAUGHING_FAMILY = "emoji"
"""Laughing faces (😂 🤣 😆 😹) are counted under this family."""


def laugh_family(word: str) -> str | None:
    """Which laughter family a token belongs to ("haha", "jaja", "kkk"...), or None."""
    for family, pattern in LAUGHTER:
        if pattern.fullmatch(word):
            return family
    return None


ABBREVIATIONS = _word_set(
    # English chat forms and apostrophe-less contractions
    """u ur r ya yall rn idk idc tbh ngl omg omw btw imo imho brb ttyl tmrw tmr pls plz thx
    ty tysm bc cuz coz gonna wanna gotta kinda sorta dunno lemme gimme k kk np jk smh fr ikr
    irl dm nvm wyd hbu wbu af asap bff ily ilysm xoxo fyi tldr ofc obvs probs def bday ppl
    msg abt thru tho yep yup nah im dont cant didnt doesnt isnt wasnt ive thats whats youre
    theyre wouldnt couldnt shouldnt wont aint lil sec tn gn gm hmu istg bruh"""
    # Spanish
    """ q xq pq porq tb tmb bn xfa porfa dnd salu2 finde nse ns tqm tkm ntp grax"""
    # Portuguese
    """ vc vcs vlw blz tbm msm hj qnd qdo cmg ctg obg mto mt td tds fds pfv pfvr bjs sdd"""
    # German
    """ lg vllt vlt bzw hdl hdgdl kp jz wg gn8 n8 nix"""
    # French
    """ stp svp slt cc jsp jpp tkt bcp pk pcq dac oklm bjr bsr tt qd pr ds mtn chui"""
    # Italian
    """ cmq nn xke xché qlc tvb tvtb dv anke grz"""
    # Dutch
    """ ff idd iig wrs mss gwn"""
    # Russian
    """ спс пж плз щас чё чо нзч мб кст прив пасиб"""
)


def laughter(words: Counter[str], laughing_emoji: int, messages: int, *, top: int) -> Laughter:
    """Laughs per message by family, and the persona's favourite ways of writing them."""
    families: Counter[str] = Counter()
    forms: Counter[str] = Counter()
    for word, n in words.items():
        family = laugh_family(word)
        if family is not None:
            families[family] += n
            forms[word] += n
    if laughing_emoji:
        families[LAUGHING_FAMILY] += laughing_emoji
    total = sum(families.values())
    ranked = dict(sorted(families.items(), key=lambda item: (-item[1], item[0])))
    return Laughter(
        per_message=share(total, messages), families=ranked, forms=_top_forms(forms, top)
    )


_STRETCHED = re.compile(r"([^\W\d_])\1\1")


def elongation(words: Counter[str], others: Counter[str], messages: int, *, top: int) -> Elongation:
    """Stretched words: a letter written three or more times in a row, laughs excluded."""
    forms: Counter[str] = Counter()
    bases: Counter[str] = Counter()
    for word, n in words.items():
        if not is_stretched(word):
            continue
        forms[word] += n
        one, two = squeezed(word)
        pooled_two = words.get(two, 0) + others.get(two, 0)
        pooled_one = words.get(one, 0) + others.get(one, 0)
        bases[two if pooled_two > pooled_one else one] += n
    return Elongation(
        per_message=share(sum(forms.values()), messages),
        forms=_top_forms(forms, top),
        words=_top_forms(bases, top),
    )


def chat_form_count(words: Counter[str]) -> int:
    """Tokens that are abbreviations or slang, written laughs or stretched words."""
    return sum(
        n
        for word, n in words.items()
        if word in ABBREVIATIONS or laugh_family(word) is not None or is_stretched(word)
    )


def is_stretched(word: str) -> bool:
    """A letter three times in a row, not a laugh and not one letter repeated ("zzz")."""
    return _STRETCHED.search(word) is not None and len(set(word)) > 1 and laugh_family(word) is None


def abbreviations(words: Counter[str], tokens: int, messages: int, *, top: int) -> Abbreviations:
    """Chat abbreviations and slang from the fixed list, per message and per 100 words."""
    found = Counter({w: n for w, n in words.items() if w in ABBREVIATIONS})
    total = sum(found.values())
    per_100 = share(100 * total, tokens)
    return Abbreviations(
        per_message=share(total, messages),
        per_100_words=None if per_100 is None else round(per_100, 2),
        forms=_top_forms(found, top),
    )


# --- richness ----------------------------------------------------------------------------


def mattr(sequence: npt.NDArray[np.int64], window: int) -> float | None:
    """Moving-average type-token ratio (Covington & McFall 2010) over `window` tokens.

    The mean, over every window of `window` consecutive tokens, of distinct tokens / window.
    Computed exactly in O(n log n): token i is new in the windows that start after its
    previous occurrence and still contain it. None when there are fewer tokens than `window`.
    """
    n = int(sequence.size)
    if window < 1 or n < window:
        return None
    order = np.argsort(sequence, kind="stable")
    ranked = sequence[order]
    same = ranked[1:] == ranked[:-1]
    previous = np.full(n, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    positions = np.arange(n, dtype=np.int64)
    # windows start at s in [low, high]: after the previous occurrence, still holding i
    np.maximum(previous + 1, positions - (window - 1), out=previous)
    np.minimum(positions, n - window, out=positions)
    positions -= previous
    new = int(np.clip(positions + 1, 0, None).sum())
    return round(new / ((n - window + 1) * window), 4)


def richness(sequence: npt.NDArray[np.int64], window: int) -> Richness:
    """The persona's MATTR, with the window and token count it was computed on."""
    return Richness(mattr=mattr(sequence, window), window=window, tokens=int(sequence.size))
