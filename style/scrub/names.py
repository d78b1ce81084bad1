"""The people an export names: its authors and the names in its system notices.

Inside the text of a persona-focused dataset these are third parties (except the persona,
whom callers keep). Only names the export itself reveals are known; a name mentioned only
in passing ("Anna's number is ...") is not, unless the caller lists it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from style.messages import Message, MessageKind
from style.parse.markers import DROP_INVISIBLE


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LIST_SPLIT = re.compile(r"\s*,\s*|\s+(?:and|und|y|e|et|en|и)\s+")
_NOT_NAMES = frozenset({"you", "du", "tú", "tu", "vous", "você", "jij", "вы", "ты", "sie", "u"})

# System notices that name people; "a" is the actor, "b" a list of the people acted on.
_NOTICES = tuple(
    re.compile(pattern)
    for pattern in (
        r"^(?P<a>.+?) added (?P<b>.+?)\.?$",
        r"^(?P<a>.+?) removed (?P<b>.+?)\.?$",
        r"^(?P<a>.+?) (?:left|was removed|joined using (?:this|a) group's invite link"
        r"|joined from the community|created group .*|created this group"
        r"|changed the subject .*|changed the group (?:name|description).*"
        r"|changed this group's .*|deleted this group's icon|changed their phone number.*"
        r"|is now an admin|pinned a message|updated the message timer.*"
        r"|turned (?:on|off) disappearing messages.*)\.?$",
        r"^(?P<a>.+?) hat (?P<b>.+?) (?:hinzugefügt|entfernt)\.?$",
        r"^(?P<a>.+?) (?:añadió a|eliminó a|adicionou|removeu|a ajouté|a retiré"
        r"|ha aggiunto|ha rimosso|добавил(?:а)?|удалил(?:а)?) (?:a )?(?P<b>.+?)\.?$",
        r"^(?P<a>.+?) heeft (?P<b>.+?) (?:toegevoegd|verwijderd)\.?$",
        r"^(?P<a>.+?) (?:ist beigetreten|hat die Gruppe verlassen|salió del grupo|saiu"
        r"|est parti(?:e)?|è uscit[oa]|is vertrokken|вышел|вышла)\.?$",
    )
)

# Words that are also first names or surnames. As a name they are matched only when
# capitalised and not at the start of a sentence, so "may i", "May I" and "in May" stay
# while "ask May" goes.
AMBIGUOUS = _wordset(
    """
    amber angel april art august autumn baker bell bill black bob brook brown buck bud
    carol chase charity cliff cook crystal dale dawn dean destiny don drew eve faith frank
    ginger glen grace grant gray green grey guy hall harmony hazel heather hill holly honey
    hope hunter iris ivy jack jade jan joy june king lance lily little long major mark
    mason max may melody mercy miles nick noble olive patience pat pearl penny poppy price
    prince ray reed rice rich river rob robin rose ruby rusty sandy sky star stone storm
    summer sue sunny violet wade wall white will winter wood young
    mum mom mam dad mama papa mommy mummy daddy sis bro babe baby boss work home hubby wife
    """
)
MONTHS = frozenset({"may", "june", "april", "august", "jan"})
_DATE_BEFORE = re.compile(
    r"(?:\d|\b(?:in|on|of|since|until|till|by|from|next|last|this|early|late|mid|every"
    r"|the|end|start|beginning))\W*$",
    re.IGNORECASE,
)
_DATE_AFTER = re.compile(r"^\W{0,2}(?:\d|bank holiday|half[- ]term)", re.IGNORECASE)
_SENTENCE_END = ".!?…\n"
_PARTICLES = _wordset(
    "the and of de da del della der den van von la le el al bin mr mrs ms miss dr"
)


def names_in_export(messages: Iterable[Message]) -> list[str]:
    """Everyone the export names: authors of messages and people in system notices."""
    seen: dict[str, None] = {}
    for message in messages:
        if message.kind is MessageKind.SYSTEM:
            for name in _notice_names(message.notice or ""):
                seen.setdefault(name)
        elif message.author:
            name = clean_name(message.author)
            if name:
                seen.setdefault(name)
    return list(seen)


def _notice_names(notice: str) -> list[str]:
    notice = notice.translate(DROP_INVISIBLE).strip()
    for pattern in _NOTICES:
        if match := pattern.match(notice):
            found = [match["a"]]
            if "b" in pattern.groupindex:
                found += _LIST_SPLIT.split(match["b"])
            return [name for raw in found if (name := clean_name(raw))]
    return []


def clean_name(raw: str) -> str:
    """A name as words: no ~ prefix, emoji or bidi marks; "" for phone numbers and "You"."""
    raw = raw.translate(DROP_INVISIBLE)
    if any(char.isdigit() for char in raw):
        return ""
    words = ["".join(c for c in word if c.isalpha() or c in "'-") for word in raw.split()]
    name = " ".join(word.strip("'-") for word in words if word.strip("'-"))
    return "" if name.casefold() in _NOT_NAMES else name


@dataclass(frozen=True, slots=True)
class NameIndex:
    """The words to scrub as names, each marked as a first name or a surname."""

    pattern: re.Pattern[str] | None
    surnames: frozenset[str]  # casefolded words seen only after a first word
    words: frozenset[str]  # every casefolded name word that may be scrubbed or kept


def build_name_index(names: Collection[str], keep: Collection[str] = ()) -> NameIndex:
    """Compile `names` (full names and each of their words) minus the words of `keep`."""
    kept = {word.casefold() for name in keep for word in clean_name(name).split()}
    variants: set[str] = set()
    firsts: set[str] = set()
    later: set[str] = set()
    everyone: set[str] = set(kept)
    for raw in names:
        words = [
            w for w in clean_name(raw).split() if len(w) > 1 and w.casefold() not in _PARTICLES
        ]
        if not words:
            continue
        folded = [w.casefold() for w in words]
        everyone.update(folded)
        if folded[0] not in kept:
            firsts.add(folded[0])
        later.update(f for f in folded[1:] if f not in kept)
        if len(words) > 1 and not kept.intersection(folded):
            variants.add(" ".join(words))
        variants.update(w for w in words if w.casefold() not in kept)
    if not variants:
        return NameIndex(None, frozenset(), frozenset(everyone))
    alternation = "|".join(
        r"\s+".join(re.escape(part) for part in v.split())
        for v in sorted(variants, key=lambda v: (-len(v), v))
    )
    pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)
    return NameIndex(pattern, frozenset(later - firsts), frozenset(everyone))


def name_spans(text: str, index: NameIndex) -> list[tuple[int, int]]:
    """Spans of the indexed names in `text`; ambiguous words only when clearly a name."""
    if index.pattern is None:
        return []
    spans = []
    for match in index.pattern.finditer(text):
        found = match.group()
        if " " not in found and found.casefold() in AMBIGUOUS and not _clearly_name(text, match):
            continue
        spans.append(match.span())
    return spans


def _clearly_name(text: str, match: re.Match[str]) -> bool:
    start, end = match.span()
    if not match.group()[0].isupper():
        return False
    before = text[:start].rstrip(" \t\"'“‘(")
    if not before or before[-1] in _SENTENCE_END:
        return False
    if match.group().casefold() in MONTHS:
        return not (
            _DATE_BEFORE.search(text, max(0, start - 16), start)
            or _DATE_AFTER.match(text[end : end + 16])
        )
    return True
