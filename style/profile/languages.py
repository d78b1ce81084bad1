"""A light language guess from function words: en, es, pt, de, fr, it, nl, ru.

Each language has a list of its most frequent function words. Words on more than one list
("a", "de", "no", "in") are dropped, so every remaining word points at one language. A
language's share is the share of those words, counted over all the persona's tokens. This
tells a bilingual writer's mix well enough; it does not label single short messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

_STOPWORDS = {
    "en": """a an as or no me so come the and you to of it is that i'm in for on was with this
        but are have be not
        what just so my me at if your can all we they do get know like about would there
        don't it's i've he she them their been were will when how why who from because
        really think going got u ur im dont cant thats whats gonna wanna yeah""",
    "es": """a el la los las que de y en un una es no por para con su lo como pero más mi
        me te se ya muy está estoy eso esto cuando hay también porque qué tengo tienes
        bueno gracias hola jaja pues nada todo bien sí yo tú usted aquí ahora""",
    "pt": """o a os as que de e em um uma é não com para por mais se na no da do dos das
        você vc eu ele ela isso isto também muito está estou tá já mas então obrigado
        obrigada olá tudo bem sim aqui agora nós gente pra pro tô né""",
    "de": """der die das und ist nicht ich du wir ihr sie es ein eine einen dem den mit
        auf für von zu im auch aber noch schon wie was wenn dann mal bin bist sind hast
        habe haben kann danke ja nein doch gut heute morgen jetzt hier sehr""",
    "fr": """a le la les et est un une des du de en que qui pas je tu il elle nous vous ils
        ce cette ces mais ou où donc pour avec sur dans au aux mon ton son très bien
        oui non merci c'est j'ai suis es sommes êtes ça aussi tout fait""",
    "it": """a il lo la gli le e è di che un una per non con sono sei siamo ma anche
        questo questa quello ci mi ti si del della dei delle nel nella al alla cosa più
        molto bene grazie ciao sì perché allora oggi domani adesso qui tutto""",
    "nl": """de het een en is niet ik je jij wij we zij ze dat die van op te met voor
        maar ook als dan nog wel geen heb hebt heeft ben bent zijn was waren kan kunnen
        wat hoe waarom hier daar nu bedankt dank ja nee goed morgen vandaag""",
    "ru": """и в не на я что он она мы вы они это как но по так да нет ты у же все ещё
        уже или бы если только меня тебя мне тебе было быть есть очень спасибо привет
        сегодня завтра сейчас здесь там где когда почему""",
}

LANGUAGES = tuple(_STOPWORDS)


def _exclusive() -> dict[str, str]:
    owners: dict[str, set[str]] = {}
    for language, words in _STOPWORDS.items():
        for word in words.split():
            owners.setdefault(word, set()).add(language)
    return {word: langs.pop() for word, langs in owners.items() if len(langs) == 1}


MARKERS = _exclusive()
"""Function word -> the one language it belongs to (words shared by two lists removed)."""

MIN_SHARE = 0.05
"""Languages under this share of the marker words are left out as noise."""


def language_shares(words: Mapping[str, int]) -> dict[str, float]:
    """Share of each language among the marker words in `words` (lowercase word counts).

    Languages below 5% are dropped and the rest renormalised; sorted by share.
    """
    hits: Counter[str] = Counter()
    for word, count in words.items():
        language = MARKERS.get(word)
        if language is not None:
            hits[language] += count
    total = sum(hits.values())
    if not total:
        return {}
    kept = {lang: n for lang, n in hits.items() if n / total >= MIN_SHARE}
    kept_total = sum(kept.values())
    ranked = sorted(kept.items(), key=lambda item: (-item[1], item[0]))
    return {lang: round(n / kept_total, 4) for lang, n in ranked}
