"""Measure the privacy scrubber's precision and recall on a labelled set of chat lines.

The set (`tests/fixtures/pii/labelled.jsonl`, one `{"text", "spans"}` object a line,
spans as `[start, end, kind]`) is generated here from hand-written templates and value
lists with a fixed seed, so it can be read, diffed and regenerated. Lines in a chat of
another country carry `"region"`; the names, kept names and blocklist every line is
scored with are in `tests/fixtures/pii/config.json`.

    python benchmarks/scrub_eval.py                  # per-kind precision / recall / F1
    python benchmarks/scrub_eval.py --phones         # the three phone policies side by side
    python benchmarks/scrub_eval.py --misses         # list every miss and false alarm
    python benchmarks/scrub_eval.py --write-fixture  # regenerate the set
    python benchmarks/scrub_eval.py --speed          # messages/s on the bundled sample

A finding counts only when its kind and exact span match a label.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from style.scrub.checksums import iban_with_check_digits, luhn_check_digit  # noqa: E402
from style.scrub.detect import PiiDetector, PiiKind  # noqa: E402
from style.scrub.phones import PhonePolicy  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "pii" / "labelled.jsonl"
CONFIG = ROOT / "tests" / "fixtures" / "pii" / "config.json"
SEED = 20241114
REGION = "GB"
KNOWN_NAMES = [
    "Maya Okafor",
    "Sam Reyes",
    "Jonas Weber",
    "Priya",
    "Anna",
    "Tom",
    "May",
    "Will",
    "Grace",
    "Zoë",
    "María José",
    "Chidi",
]
KEEP_NAMES = ["Maya"]
BLOCKLIST = ["Hollowbrook", "Larkspur Academy", "Fernhill Road"]

# ---------------------------------------------------------------- values to plant

PHONES_INTERNATIONAL = [
    "+44 7700 900123",
    "+44 7700 900987",
    "+447700900456",
    "+44 20 7946 0321",
    "+44 117 496 0555",
    "0044 7700 900123",
    "+44\u00a07700\u00a0900123",
    "+44 7700\u2011900\u2011321",
    "+44 (0)7700 900654",
    "+49 151 23456789",
    "+49 (0)151 23456789",
    "+49 30 901820",
    "+7 999 999-99-99",
    "+7 (912) 345-67-89",
    "+1 415 555 0132",
    "+1 (212) 555-0187",
    "+1-202-555-0143",
    "+33 6 12 34 56 78",
    "+33 1 23 45 67 89",
    "+39 347 123 4567",
    "+34 612 34 56 78",
    "+91 98765 43210",
    "+61 412 345 678",
    "+55 11 91234-5678",
    "+81 90-1234-5678",
    "+86 138 0013 8000",
    "+31 6 12345678",
    "+48 512 345 678",
    "+353 85 123 4567",
    "+27 82 123 4567",
    "+234 803 123 4567",
    "+52 55 1234 5678",
    "+90 532 123 45 67",
    "+380 67 123 4567",
    "+46 70 123 45 67",
    "+65 9123 4567",
]
PHONES_NATIONAL = {
    "GB": ["07700 900123", "07700900321", "020 7946 0018", "0161 496 0123", "(020) 7946 0999",
           "07911 123456", "0117 496 0555", "07700 900 765"],
    "US": ["(555) 123-4567", "(415) 555-0132", "415-555-0199", "(212) 555-0187", "202 555 0143"],
    "DE": ["0151 23456789", "030 901820", "0171 1234567", "0151/23456789", "089 12345678"],
    "FR": ["06 12 34 56 78", "01 23 45 67 89", "07.56.78.12.34"],
    "RU": ["8 (999) 123-45-67", "8 912 345 67 89", "8-912-345-67-89"],
    "IT": ["347 123 4567", "06 1234 5678"],
    "ES": ["612 34 56 78", "91 123 45 67"],
}  # fmt: skip
EMAILS = [
    "maya.okafor@example.com",
    "sam.reyes+flat@example.com",
    "priya.photos@mail.example.co.uk",
    "j.weber@uni-example.de",
    "anna_92@example.org",
    "TOM.SMITH@EXAMPLE.COM",
    "info@example.travel",
    "maría.josé@example.es",
    "first.last@sub.domain.example.com",
    "x@example.io",
    "hello@example-shop.com",
    "o'brien@example.ie",
    "zoe2001@example.net",
    "orders-noreply@shop.example.com",
]
URLS = [
    "https://example.com/listings/4417",
    "http://example.org",
    "https://www.example.com/path?x=1&y=2",
    "www.example.co.uk/menu",
    "example.com/u/anna",
    "https://sub.example.io/a/b#frag",
    "https://maps.example.com/?q=51.5,-0.12",
    "https://example.com/cabins/pine-hollow",
    "http://192.0.2.10:8080/admin",
    "https://example.com/wiki/Foo_(bar)",
    "HTTPS://EXAMPLE.COM/CAPS",
    "https://docs.example.com/v1.2.3/guide",
    "shop.example.net/item/12345",
    "https://example.com",
    "www.example.com",
    "https://example.com/café/menü",
    "https://youtu.example/watch?v=dQw4w9WgXcQ",
]
IBAN_KNOWN = [
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91 ABNA 0417 1643 00",
    "BE68 5390 0754 7034",
    "ES91 2100 0418 4502 0005 1332",
    "IT60 X054 2811 1010 0000 0123 456",
    "CH93 0076 2011 6238 5295 7",
    "AT61 1904 3002 3457 3201",
    "PL61 1090 1014 0000 0712 1981 2874",
]
# country: BBAN shape (d = digit, a = capital letter, c = either)
IBAN_SHAPES = {
    "DE": "d" * 18,
    "GB": "aaaa" + "d" * 14,
    "FR": "d" * 10 + "c" * 11 + "dd",
    "ES": "d" * 20,
    "NL": "aaaa" + "d" * 10,
    "IE": "aaaa" + "d" * 14,
    "PT": "d" * 21,
    "SE": "d" * 20,
    "NO": "d" * 11,
    "IT": "a" + "d" * 10 + "c" * 12,
}
CARDS_KNOWN = [
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
    "3782 822463 10005",
    "6011 1111 1111 1117",
    "3530 1113 3330 0000",
    "3056 930902 5904",
    "4012888888881881",
    "5105-1051-0510-5100",
    "2223 0031 2200 3222",
]
# brand prefix, length, grouping
CARD_SHAPES = [
    ("4", 16, (4, 4, 4, 4)),
    ("4", 13, (4, 4, 4, 1)),
    ("51", 16, (4, 4, 4, 4)),
    ("53", 16, (4, 4, 4, 4)),
    ("2221", 16, (4, 4, 4, 4)),
    ("37", 15, (4, 6, 5)),
    ("34", 15, (4, 6, 5)),
    ("6011", 16, (4, 4, 4, 4)),
    ("3528", 16, (4, 4, 4, 4)),
    ("36", 14, (4, 6, 4)),
    ("62", 19, (4, 4, 4, 4, 3)),
    ("6759", 16, (4, 4, 4, 4)),
]
IPS = [
    "192.168.1.10",
    "10.0.0.1",
    "203.0.113.45",
    "8.8.8.8",
    "172.16.254.1",
    "1.2.3.4",
    "2001:db8::ff00:42:8329",
    "fe80::1ff:fe23:4567:890a",
    "::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8:0:0:1:0:0:1",
    "::ffff:192.0.2.128",
]

# ---------------------------------------------------------------- templates
# <X> marks where a value of kind X goes; the rest is the message around it.

TEMPLATES = {
    "phone": [
        "New number, by the way: <X>. The old one stops on Friday.",
        "call me on <X>",
        "<X> is my work line",
        "Lena's number is <X> if you need it for the party.",
        "my new num <X> 📱",
        "ring the landlord (<X>) about the boiler",
        "text me at <X>, not the old one",
        "Tel: <X>",
        "whatsapp me on <X> pls",
        "numbers: <X> / <X>",
    ],
    "email": [
        "my new email is <X> btw",
        "It's <X>. Thanks!",
        "send the photos to <X>",
        "email: <X>.",
        "(<X>)",
        "Contact <X>, they answer fast",
        "mailto:<X>",
        "<<X>>",
        "cc <X> and <X> pls",
    ],
    "url": [
        "This is the flat I told you about: <X>",
        "look at this <X> 😂",
        "(<X>)",
        "link: <X>.",
        "<X>",
        "did u see <X>?",
        "booked it! <X>, check-in is at 3",
    ],
    "iban": [
        "IBAN: <X>",
        "pay the deposit to <X> pls",
        "my iban is <X>, ref Maya",
        "<X> (Sparkasse)",
        "transfer to <X>.",
    ],
    "card": [
        "card number <X> exp 12/27",
        "use my card <X> for the tickets",
        "<X>",
        "it's <X>, cvc is on the back",
        "paid with <X>.",
    ],
    "ip": [
        "my ip is <X>",
        "ssh into <X> and restart it",
        "the router is at <X>.",
        "blocked <X> (spam)",
        "server <X> is down again",
    ],
}
NAME_LINES = [
    ("<Anna> said hi", ["Anna"]),
    ("tell <anna> i said hi 😂", ["anna"]),
    ("is <Tom> coming tonight?", ["Tom"]),
    ("its about <tom> 💀", ["tom"]),
    ("<TOM> OMG", ["TOM"]),
    ("<Tom>, are you free?", ["Tom"]),
    ("<Jonas Weber> booked the cabin", ["Jonas Weber"]),
    ("Amazing, thank you <Jonas>!", ["Jonas"]),
    ("<Jonas>'s car is parked outside", ["Jonas"]),
    ("did u ask <jonas> yet", ["jonas"]),
    ("Herr <Weber> called again", ["Weber"]),
    ("<Priya> is on nights this week", ["Priya"]),
    ("omg <priya> is so right", ["priya"]),
    ("ask <May> about the keys", ["May"]),
    ("<Will>'s party is on saturday", ["Will"]),
    ("did u see <Grace>'s post", ["Grace"]),
    ("tell <Will> to bring the speaker", ["Will"]),
    ("<Zoë> and <Chidi> are back together", ["Zoë", "Chidi"]),
    ("amara and <chidi> are back together 💀", ["chidi"]),
    ("<María José> sends her love", ["María José"]),
    ("i miss <maría> sm", ["maría"]),
    ("<Sam Reyes> on the guest list", ["Sam Reyes"]),
    ("Well done <Sam>! We should celebrate.", ["Sam"]),
    ("ok <sam> whatever u say", ["sam"]),
    ("<Reyes> family dinner sunday", ["Reyes"]),
    ("😂 <Anna> stop", ["Anna"]),
    ('"<Tom> said what?"', ["Tom"]),
    ("me and <Priya> and <Anna> tonight", ["Priya", "Anna"]),
    ("this is <Okafor> from the uni office", ["Okafor"]),
    ("maya <okafor>?? who calls me that", ["okafor"]),
    ("<ZOË> IS HERE", ["ZOË"]),
    ("hey <Anna>!!", ["Anna"]),
    ("<tom>'s bday is next week", ["tom"]),
    ("<Chidi>: coming?", ["Chidi"]),
    ("did u see <grace>'s post", ["grace"]),  # lowercase name that is also a word: a miss
    ("<Will> said he's in", ["Will"]),  # a word-name at the start of a sentence: a miss
    ("<May>'s flat is huge", ["May"]),  # the same
]
BLOCK_LINES = [
    ("back in <Hollowbrook> for xmas", ["Hollowbrook"]),
    ("<hollowbrook> was so cold", ["hollowbrook"]),
    ("<HOLLOWBROOK> 🥶", ["HOLLOWBROOK"]),
    ("she teaches at <Larkspur Academy> now", ["Larkspur Academy"]),
    ("<larkspur  academy> open day", ["larkspur  academy"]),
    ("we live on <Fernhill Road>, the blue door", ["Fernhill Road"]),
    ("meet at <fernhill road>?", ["fernhill road"]),
    ("<Hollowbrook>'s pub quiz is back", ["Hollowbrook"]),
]
MIXED_LINES = [
    "<NAME:Sam>: <NAME:Anna> is on <PHONE:+44 7700 900987> and <EMAIL:anna_92@example.org>",
    "send <NAME:Tom> the link <URL:https://example.com/cabins/pine-hollow> and pay "
    "<IBAN:GB82 WEST 1234 5698 7654 32>",
    "<NAME:Jonas>'s server is <IP:192.168.1.10>, mail him at <EMAIL:j.weber@uni-example.de>",
    "card <CARD:4111 1111 1111 1111> or iban <IBAN:DE89 3704 0044 0532 0130 00>",
    "<NAME:Priya> moved to <BLOCKED:Hollowbrook>, new number <PHONE:07700 900123>",
    "ok so <NAME:Will> said <NAME:May> gave him <PHONE:+49 151 23456789>",
    "<URL:www.example.co.uk/menu> or call <PHONE:020 7946 0018>",
    "reply to <EMAIL:orders-noreply@shop.example.com> not <URL:https://shop.example.com/help>",
    "<NAME:Zoë>'s ip is <IP:2001:db8::ff00:42:8329> lol",
    "<NAME:anna> <NAME:tom> <NAME:priya> dinner at <BLOCKED:Fernhill Road> 8pm",
]

# Written after the detector was tuned on everything above and never tuned on since
# (two labels were corrected, see docs/privacy.md): the figures on these lines are the
# honest ones. A region before "|" marks a chat from that country.
HELD_OUT = [
    "<PHONE:+44 7700 900 123> is the new one",
    "call <PHONE:+1 (555) 010-0199> for the front desk",
    "tel:<PHONE:+14155550132>",
    "<PHONE:+49-151-2345-6789> (Handy)",
    "Prague office: <PHONE:+420 601 123 456>",
    "dubai num <PHONE:+971 50 123 4567>",
    "<PHONE:+62 812-3456-7890> is her WA",
    "cairo: <PHONE:+20 10 1234 5678>",
    "<PHONE:+82 10-1234-5678> kakao too",
    "manila <PHONE:+63 917 123 4567>",
    "BA: <PHONE:+54 9 11 1234-5678>",
    "the drama one <PHONE:01632 960123> lol",
    "reception <PHONE:0113 496 0000>",
    "<PHONE:07700-900-111> is mine",
    "US|free line <PHONE:1-800-555-0199>",
    "US|my cell is <PHONE:(212) 555 0123>",
    "DE|ruf an: <PHONE:0176 12345678>",
    "RU|звони <PHONE:8 800 555-35-35>",
    "IN|my no. <PHONE:98765 43210>",
    "BR|meu zap <PHONE:(11) 91234-5678>",
    "NL|bel me <PHONE:06-12345678>",
    "<EMAIL:Sam.Reyes@Example.COM> is his work one",
    "write to <EMAIL:a.b-c_d@e-f.example.museum>",
    "<EMAIL:name@example.com>; <EMAIL:other@example.com>",
    "<EMAIL:user.name+tag+sorting@example.com>",
    "📧 <EMAIL:x@example.io>",
    "see <URL:https://example.com/path/to/page.html?query=1#section>.",
    "'<URL:https://example.com/q>'",
    "<URL:https://example.com/a,b> and more",
    "local <URL:http://localhost:8000/x>",
    "<URL:ftp://files.example.com/pub>",
    "<URL:https://t.example/abc>",
    "(deals at <URL:example.co.uk/deals/123>)",
    "<URL:https://example.com/>😂",
    "<URL:bit.ly/3abcDEF>",
    "iban <IBAN:de89370400440532013000>",
    "<IBAN:GB82-WEST-1234-5698-7654-32>",
    "IBAN <IBAN:DE89370400440532013000>.",
    "<IBAN:IE29 AIBK 9311 5212 3456 78> is the account",
    "swiss: <IBAN:CH56 0483 5012 3456 7800 9>",
    "<CARD:4111 1111 1111 1111>.",
    "<CARD:4111-1111-1111-1111>, exp 09/26",
    "amex <CARD:3714 496353 98431>",
    "<CARD:5500 0000 0000 0004>",
    "discover <CARD:6011 0009 9013 9424>",
    "test card <CARD:4242 4242 4242 4242>",
    "unionpay <CARD:6200 0000 0000 0000 000>",
    # unbracketed, "2001:db8::1:8080" is itself a valid IPv6 address, so that is the label
    "<IP:2001:db8::1:8080> hmm, I mean [<IP:2001:db8::2>]:8080",
    "dev server <IP:192.168.0.1>:3000",
    "IP <IP:10.1.2.3>, port 22",
    "bind to <IP:0.0.0.0>",
    "localhost is <IP:127.0.0.1>",
    "hey @<NAME:Anna> look",
    "<NAME:Tom> & <NAME:Anna> are coming",
    "<NAME:Sam>!!!",
    "where is <NAME:Jonas>?",
    "<NAME:sam>'s mum called",
    "<NAME:annaaa> come back",  # a stretched name: a miss
    "<NAME:Zoe> is here",  # the export spells it Zoë: a miss
    "we miss you in <BLOCKED:Hollowbrook>!",
    "in <BLOCKED:hollowbrook>.",
    "<BLOCKED:LARKSPUR ACADEMY> ROCKS",
]
NEGATIVES_HELD_OUT = [
    "v1.2.3.4 is out",
    "pi is 3.14159265358979",
    "12/12/2012 12:12",
    "code ABC-1234-5678",
    "2:30-3:30pm works",
    "£1 500 deposit",
    "100 000 € budget",
    "May 5th is fine",
    "Grace period ends soon",
    "Amazing Grace is a song",  # the name Grace mid-sentence: expected to be flagged
    "1.1.1.1.1 is not an address",
    "the 4th of May",
    "from 0800 to 1700",
    "I will call you",
    "tomorrow at 10:30",
]

# Lines with no personal data that a careless detector would flag.
NEGATIVES = [
    "see u on 14/03/2024 at 21:04",
    "the meeting moved to 2024-03-14",
    "Datum: 14.03.2024, 18:30 Uhr",
    "Friday 9:04:05 PM works",
    "it was £1,299.00 in the sale",
    "only $12.50 each!",
    "1.250,00 € für die Miete",
    "order #48213377 arrived",
    "Order ORD-2024-88172 shipped",
    "tracking 1Z999AA10123456784",
    "in 2023 and 2024 we went twice",
    "did 12345 steps today",
    "my postcode is SW1A 1AA",
    "10115 Berlin is the best",
    "flight BA2490 lands at 7",
    "room 4012, third floor",
    "pin is 4821 lol",
    "invoice 2024/11/0456 is overdue",
    "1,234,567 views already",
    "3 x 250g of flour",
    "score was 2-1 to us",
    "between 10-12 people",
    "ISBN 978-0-306-40615-7",
    "update to version 1.2.3.4 first",
    "running v2.10.3.1 now",
    "999.1.1.1 is not an address",
    "the alarm is at 12:30:45",
    "mac 00:1A:2B:3C:4D:5E",
    "chapter 1.2.3",
    "4111 1111 1111 1112",
    "ref 1234 5678 9012 3455",
    "the code is 4000 0000 0000 0001",
    "DE89 3704 0044 0532 0130 01",
    "GB82 WEST 1234 5698 7654 33",
    "NL91 ABNA 0417 1643 01",
    "may i come too",
    "May I come too?",
    "in May we go to Spain",
    "Cabin booked for the May bank holiday!",
    "see u 3 May",
    "I will be there",
    "Will you be there?",
    "by the grace of god",
    "the same as always",
    "Tomorrow works",
    "Annabel is new here",
    "samosas for dinner",
    "Maya is the best",
    "maya pls",
    "hollowbrooks are not a thing",
    "Larkspur is a flower",
    "grab a coffee at 7.30",
    "temp is -3.5 today",
    "it's 50% off",
    "1/2 cup of sugar",
    "call me in 5 min",
    "+5 degrees tomorrow",
    "2,5 km left",
    "lost 3.2 kg",
    "the code is 482913",
    "we need 2 tables for 12 people",
    "it took 45:30 to finish",
    "year 2025 will be better",
    "email me later",
    "send it to the group",
    "http is not secure",
    "and/or whatever",
    "e.g. the blue one",
    "pls stop 😂😂😂",
    "iban later, card tomorrow",
    "version 10.0.19045.3693",
    "1:0 win!!",
    "ok",
    "order 48213377 arrived today",
    "ref 4821337 on the form",
    "account 12345678, sort code 12-34-56",
    "ticket 5551234567 for row F",
    "tracking number 9400110898825",
    "invoice number 20240456",
    "membership no. 1234567",
    "my student id is 21098765",
    "ID 7750123456 expires soon",
    "1 500 000 people were there",
    "lottery: 4 8 15 16 23 42",
    "the booking ref is 88172946",
    "parcel 00340434161234567890 is late",
    "serial 20231114-0042",
    "case 2024/118733 at the council",
]

# ---------------------------------------------------------------- building the set


@dataclass
class Line:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)
    region: str | None = None
    held_out: bool = False

    def to_json(self) -> str:
        record: dict[str, Any] = {"text": self.text, "spans": [list(s) for s in self.spans]}
        if self.region:
            record["region"] = self.region
        if self.held_out:
            record["held_out"] = True
        return json.dumps(record, ensure_ascii=False)


def _fill(template: str, kind: str, values: list[str], region: str | None = None) -> Line:
    parts = template.split("<X>")
    line = Line(parts[0], region=region)
    for value, tail in zip(values, parts[1:], strict=True):
        line.spans.append((len(line.text), len(line.text) + len(value), kind))
        line.text += value + tail
    return line


def _marked(text: str, kind: str, names: list[str]) -> Line:
    line = Line("")
    rest = text
    for name in names:
        before, _, rest = rest.partition(f"<{name}>")
        line.text += before
        line.spans.append((len(line.text), len(line.text) + len(name), kind))
        line.text += name
    line.text += rest
    return line


def _mixed(text: str) -> Line:
    line = Line("")
    rest = text
    while "<" in rest and ":" in rest:
        before, _, rest = rest.partition("<")
        tag, _, rest = rest.partition(":")
        value, _, rest = rest.partition(">")
        line.text += before
        line.spans.append((len(line.text), len(line.text) + len(value), tag.lower()))
        line.text += value
    line.text += rest
    return line


def _random_iban(rng: random.Random, country: str) -> str:
    pick = {"d": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHJKLMNP"}
    bban = "".join(rng.choice(pick[c]) for c in IBAN_SHAPES[country])
    return iban_with_check_digits(country, bban)


def _spaced(compact: str, rng: random.Random) -> str:
    style = rng.random()
    if style < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def _random_card(rng: random.Random, prefix: str, length: int, groups: tuple[int, ...]) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    digits = body + luhn_check_digit(body)
    separator = rng.choice([" ", " ", "-", ""])
    out, at = [], 0
    for size in groups:
        out.append(digits[at : at + size])
        at += size
    return separator.join(out)


def build_lines(seed: int = SEED) -> list[Line]:
    """The whole labelled set, deterministic for a seed."""
    rng = random.Random(seed)
    lines: list[Line] = []

    def planted(kind: str, values: list[str], region: str | None = None) -> Iterator[Line]:
        templates = TEMPLATES[kind]
        for value in values:
            template = rng.choice(templates)
            count = template.count("<X>")
            others = [rng.choice(values) for _ in range(count - 1)]
            yield _fill(template, kind, [value, *others], region)

    lines += planted("phone", PHONES_INTERNATIONAL)
    for region, numbers in PHONES_NATIONAL.items():
        lines += planted("phone", numbers, None if region == REGION else region)
    lines += planted("email", EMAILS)
    lines += planted("url", URLS)
    ibans = list(IBAN_KNOWN)
    for country in IBAN_SHAPES:
        for _ in range(2):
            ibans.append(_spaced(_random_iban(rng, country), rng))
    lines += planted("iban", ibans)
    cards = list(CARDS_KNOWN)
    for shape in CARD_SHAPES:
        for _ in range(2):
            cards.append(_random_card(rng, *shape))
    lines += planted("card", cards)
    lines += planted("ip", IPS)
    lines += (_marked(text, "name", names) for text, names in NAME_LINES)
    lines += (_marked(text, "blocked", names) for text, names in BLOCK_LINES)
    lines += (_mixed(text) for text in MIXED_LINES)
    lines += (Line(text) for text in NEGATIVES)
    for text in HELD_OUT:
        region, _, text = text.rpartition("|") if "|" in text[:3] else ("", "", text)
        line = _mixed(text)
        line.region = region or None
        line.held_out = True
        lines.append(line)
    lines += (Line(text, held_out=True) for text in NEGATIVES_HELD_OUT)
    rng.shuffle(lines)
    return lines


def write_fixture(path: Path = FIXTURE, config: Path = CONFIG) -> None:
    """Write the labelled set and the scoring configuration."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line.to_json() + "\n" for line in build_lines()), encoding="utf-8")
    settings = {
        "region": REGION,
        "names": KNOWN_NAMES,
        "keep_names": KEEP_NAMES,
        "blocklist": BLOCKLIST,
    }
    config.write_text(json.dumps(settings, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- scoring


@dataclass
class Score:
    """True positives, false positives and false negatives of one kind."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Evaluation:
    """Scores per kind and overall, and every mistake as (text, span, kind, "miss"/"false")."""

    per_kind: dict[str, Score]
    overall: Score
    mistakes: list[tuple[str, str, str, str]]


def load_fixture(path: Path = FIXTURE) -> list[dict[str, Any]]:
    """The labelled lines as dicts."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def evaluate(phones: PhonePolicy = "shaped", *, held_out_only: bool = False) -> Evaluation:
    """Score `PiiDetector` against the labelled set (or only its held-out lines)."""
    settings = json.loads(CONFIG.read_text(encoding="utf-8"))
    detectors: dict[str, PiiDetector] = {}
    per_kind = {kind.value: Score() for kind in PiiKind}
    mistakes = []
    for record in load_fixture():
        if held_out_only and not record.get("held_out"):
            continue
        region = record.get("region", settings["region"])
        if region not in detectors:
            detectors[region] = PiiDetector(
                region=region,
                names=settings["names"],
                keep_names=settings["keep_names"],
                blocklist=settings["blocklist"],
                phones=phones,
            )
        text = record["text"]
        gold = {(s, e, k) for s, e, k in record["spans"]}
        found = {(f.start, f.end, f.kind.value) for f in detectors[region].find(text)}
        for _start, _end, kind in gold & found:
            per_kind[kind].tp += 1
        for start, end, kind in found - gold:
            per_kind[kind].fp += 1
            mistakes.append((text, text[start:end], kind, "false"))
        for start, end, kind in gold - found:
            per_kind[kind].fn += 1
            mistakes.append((text, text[start:end], kind, "miss"))
    overall = Score(
        sum(s.tp for s in per_kind.values()),
        sum(s.fp for s in per_kind.values()),
        sum(s.fn for s in per_kind.values()),
    )
    return Evaluation(per_kind, overall, mistakes)


def table(evaluation: Evaluation) -> str:
    """A Markdown table of per-kind precision, recall and F1."""
    rows = [
        "| kind | labelled | found right | false alarms | precision | recall | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, s in [*evaluation.per_kind.items(), ("**all**", evaluation.overall)]:
        rows.append(
            f"| {kind} | {s.tp + s.fn} | {s.tp} | {s.fp} | {s.precision:.3f} | {s.recall:.3f} "
            f"| {s.f1:.3f} |"
        )
    return "\n".join(rows)


def speed(repeat: int = 5) -> str:
    """Messages per second of `Scrubber.scrub_messages` on the bundled sample, per mode."""
    from style.parse import load_chat
    from style.scrub import Scrubber

    rows = ["| file | messages | mode | messages/s |", "|---|---:|---|---:|"]
    for path in sorted((ROOT / "style" / "data" / "sample").glob("*.txt")):
        messages = load_chat(path).messages
        for mode in ("redact", "pseudonymize", "drop"):
            best = float("inf")
            for _ in range(repeat):
                scrubber = Scrubber.for_messages(messages, mode, keep_names=["Maya"])
                start = time.perf_counter()
                for _message in scrubber.scrub_messages(messages):
                    pass
                best = min(best, time.perf_counter() - start)
            rate = len(messages) / best
            rows.append(f"| {path.name} | {len(messages):,} | {mode} | {rate:,.0f} |")
    return "\n".join(rows)


def make_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-fixture", action="store_true", help="regenerate the set")
    parser.add_argument("--phones", action="store_true", help="compare the phone policies")
    parser.add_argument("--misses", action="store_true", help="list every mistake")
    parser.add_argument("--speed", action="store_true", help="time the bundled sample")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run what the options ask for; by default print the per-kind table."""
    args = make_parser().parse_args(argv)
    if args.write_fixture:
        write_fixture()
        lines = load_fixture()
        kinds = Counter(span[2] for line in lines for span in line["spans"])
        negatives = sum(not line["spans"] for line in lines)
        print(f"wrote {FIXTURE.relative_to(ROOT)}: {len(lines)} lines, {sum(kinds.values())} ")
        print(f"labelled items {dict(kinds)}, {negatives} lines with none")
        return 0
    if args.speed:
        print(speed())
        return 0
    policies: list[PhonePolicy] = ["shaped", "valid", "possible"] if args.phones else ["shaped"]
    for policy in policies:
        evaluation = evaluate(policy)
        if args.phones:
            print(f"\nphones={policy!r}")
        print(table(evaluation))
        if not args.phones:
            print("\nheld-out lines only (never tuned on):")
            print(table(evaluate(policy, held_out_only=True)))
        if args.misses:
            for text, value, kind, what in evaluation.mistakes:
                print(f"{what:5} {kind:7} {value!r:40} in {text!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
