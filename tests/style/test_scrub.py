"""Privacy scrubbing: each detector, each mode, pseudonym consistency and the report."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

import style.scrub
from style.messages import Media, MediaType, Message, MessageKind
from style.parse import load_chat
from style.scrub import (
    Finding,
    PiiKind,
    Scrubber,
    ScrubError,
    find_pii,
    guess_region,
    iban_valid,
    luhn_valid,
    names_in_export,
)

SAMPLE = Path(__file__).resolve().parents[2] / "style" / "data" / "sample"
TS = datetime(2024, 3, 14, 21, 4)


def found(text: str, **options: object) -> list[tuple[str, str]]:
    """(kind, value) pairs, which read better in assertions than spans."""
    return [(f.kind.value, text[f.start : f.end]) for f in find_pii(text, **options)]  # type: ignore[arg-type]


def msg(text: str, author: str = "Sam", **fields: object) -> Message:
    return Message(ts=TS, author=author, text=text, **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------- phones


def test_finds_international_phone_number() -> None:
    assert found("New number: +44 7700 900123. Old one stops Friday.") == [
        ("phone", "+44 7700 900123")
    ]


def test_finds_international_numbers_without_a_region_hint() -> None:
    assert found("+49 151 23456789 or +7 999 999-99-99") == [
        ("phone", "+49 151 23456789"),
        ("phone", "+7 999 999-99-99"),
    ]


def test_finds_national_number_with_region_hint() -> None:
    assert found("call 07700 900123 tonight", region="GB") == [("phone", "07700 900123")]


def test_national_number_needs_the_region_hint() -> None:
    assert found("call 07700 900123 tonight") == []


def test_finds_bracketed_area_code() -> None:
    assert found("ring (555) 123-4567", region="US") == [("phone", "(555) 123-4567")]


def test_finds_phone_with_non_breaking_spaces_and_hyphens() -> None:
    text = "+44\u00a07700\u00a0900123 or +44 7700\u2011900\u2011321"
    assert found(text) == [
        ("phone", "+44\u00a07700\u00a0900123"),
        ("phone", "+44 7700\u2011900\u2011321"),
    ]


def test_bracket_around_a_number_is_not_part_of_it() -> None:
    assert found("ring the landlord (+44 7700 900987) today") == [("phone", "+44 7700 900987")]


@pytest.mark.parametrize(
    "text",
    [
        "see u on 14/03/2024 at 21:04",
        "the meeting moved to 2024-03-14",
        "it was £1,299.00 in the sale",
        "order 48213377 arrived today",
        "ID 7750123456 expires soon",
        "1 500 000 people were there",
        "update to version 1.2.3.4 first",
    ],
)
def test_numbers_that_are_not_phones_are_ignored(text: str) -> None:
    assert found(text, region="GB") == []


# ---------------------------------------------------------------- emails and URLs


def test_finds_email_with_plus_and_subdomain() -> None:
    assert found("mail sam.reyes+flat@mail.example.co.uk.") == [
        ("email", "sam.reyes+flat@mail.example.co.uk")
    ]


def test_email_domain_is_not_also_a_url() -> None:
    assert found("priya.photos@example.com/album") == [("email", "priya.photos@example.com")]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/listings/4417",
        "http://example.org",
        "www.example.co.uk/menu",
        "example.com/u/anna",
        "https://example.com/wiki/Foo_(bar)",
    ],
)
def test_finds_urls(url: str) -> None:
    assert found(f"look at {url} now") == [("url", url)]


def test_url_leaves_out_trailing_punctuation() -> None:
    assert found("(see https://example.com/cabins/pine-hollow).") == [
        ("url", "https://example.com/cabins/pine-hollow")
    ]


def test_bare_domain_without_path_is_not_a_url() -> None:
    assert found("i love example.com tbh") == []


def test_file_name_with_a_slash_is_not_a_url() -> None:
    assert found("node.js/react or vue.js/angular") == []


# ---------------------------------------------------------------- IBANs and cards


def test_finds_spaced_iban() -> None:
    assert found("IBAN: DE89 3704 0044 0532 0130 00 thanks") == [
        ("iban", "DE89 3704 0044 0532 0130 00")
    ]


def test_finds_compact_iban() -> None:
    assert found("pay GB82WEST12345698765432.") == [("iban", "GB82WEST12345698765432")]


def test_rejects_iban_with_bad_checksum() -> None:
    assert found("IBAN: DE89 3704 0044 0532 0130 01") == []


def test_iban_valid_checks_mod_97_and_length() -> None:
    assert (iban_valid("NL91 ABNA 0417 1643 00"), iban_valid("NL91 ABNA 0417 1643 01")) == (
        True,
        False,
    )
    assert iban_valid("DE89 3704 0044 0532 0130") is False  # a DE IBAN has 22 characters


@pytest.mark.parametrize(
    "card", ["4111 1111 1111 1111", "5105-1051-0510-5100", "378282246310005", "3782 822463 10005"]
)
def test_finds_luhn_valid_card(card: str) -> None:
    assert found(f"use my card {card} pls") == [("card", card)]


def test_rejects_luhn_invalid_card() -> None:
    assert found("use my card 4111 1111 1111 1112 pls") == []


def test_luhn_valid() -> None:
    assert (luhn_valid("4111111111111111"), luhn_valid("4111111111111112")) == (True, False)


def test_card_number_is_not_also_a_phone() -> None:
    assert found("card 4111 1111 1111 1111", region="GB") == [("card", "4111 1111 1111 1111")]


# ---------------------------------------------------------------- IP addresses


def test_finds_ipv4_and_ipv6() -> None:
    assert found("ssh 192.168.1.10 or fe80::1ff:fe23:4567:890a.") == [
        ("ip", "192.168.1.10"),
        ("ip", "fe80::1ff:fe23:4567:890a"),
    ]


@pytest.mark.parametrize(
    "text",
    ["999.1.1.1 is not one", "running v2.10.3.1 now", "alarm 12:30:45", "mac 00:1A:2B:3C:4D:5E"],
)
def test_rejects_invalid_addresses_and_versions(text: str) -> None:
    assert found(text) == []


# ---------------------------------------------------------------- names and blocklist


def test_names_match_whole_words_in_any_case() -> None:
    assert found("tell anna, ANNA and Anna's mum. Annabel too", names=["Anna"]) == [
        ("name", "anna"),
        ("name", "ANNA"),
        ("name", "Anna"),
    ]


def test_full_name_and_each_part_are_names() -> None:
    assert found("Jonas Weber booked it, thank you Jonas", names=["Jonas Weber"]) == [
        ("name", "Jonas Weber"),
        ("name", "Jonas"),
    ]


def test_keep_names_are_not_scrubbed() -> None:
    text = "Maya and Sam, well done Maya Okafor"
    assert found(text, names=["Maya Okafor", "Sam"], keep_names=["Maya"]) == [
        ("name", "Sam"),
        ("name", "Okafor"),
    ]


def test_name_that_is_also_a_word_only_when_clearly_a_name() -> None:
    text = "May I come in May? may i. ask May about it"
    assert found(text, names=["May"]) == [("name", "May")]
    assert find_pii(text, names=["May"])[0].start == text.rindex("May")


def test_blocklist_is_case_insensitive_and_whole_words() -> None:
    text = "back in HOLLOWBROOK, not Hollowbrooks; Larkspur  Academy"
    assert found(text, blocklist=["Hollowbrook", "Larkspur Academy"]) == [
        ("blocked", "HOLLOWBROOK"),
        ("blocked", "Larkspur  Academy"),
    ]


def test_findings_hold_spans_and_kinds_only() -> None:
    assert find_pii("mail x@example.io") == [Finding(5, 17, PiiKind.EMAIL)]


# ---------------------------------------------------------------- modes


def test_redact_replaces_each_kind_with_its_tag() -> None:
    scrubber = Scrubber("redact", region="GB", known_names=["Anna"], blocklist=["Hollowbrook"])
    text = "Anna: 07700 900123, anna@example.org, www.example.com/x, Hollowbrook, 10.0.0.1"
    assert scrubber.scrub_text(text) == "[NAME]: [PHONE], [EMAIL], [URL], [BLOCKED], [IP]"


def test_redact_tags_iban_and_card() -> None:
    text = "GB82 WEST 1234 5698 7654 32 / 4111 1111 1111 1111"
    assert Scrubber("redact").scrub_text(text) == "[IBAN] / [CARD]"


def test_pseudonymize_uses_fictional_stand_ins() -> None:
    scrubber = Scrubber("pseudonymize", region="GB")
    text = "+44 7700 900123 maya@example.com https://example.com/flat 192.168.1.10 2001:db8::7"
    assert scrubber.scrub_text(text) == (
        "+44 7700 900001 user1@example.com https://example.com/link1 192.0.2.1 2001:db8::1"
    )


def test_pseudonymized_iban_and_card_still_pass_their_checksums() -> None:
    scrubber = Scrubber("pseudonymize")
    iban, card = (scrubber.scrub_text(t) for t in ("DE89370400440532013000", "4111111111111111"))
    assert (iban, card) == ("GB10 XMPL 0000 0000 0000 01", "4000 0000 0000 0010")
    assert iban_valid(iban) and luhn_valid(card.replace(" ", ""))


def test_pseudonyms_are_consistent_across_messages() -> None:
    scrubber = Scrubber("pseudonymize", known_names=["Anna", "Tom"])
    first, second, third = (
        scrubber.scrub_text(t) for t in ("call Anna", "Tom and anna", "ANNA's number")
    )
    anna = first.split()[1]  # type: ignore[union-attr]
    assert second == f"{second.split()[0]} and {anna.lower()}"  # type: ignore[union-attr]
    assert third == f"{anna.upper()}'s number"


def test_pseudonym_never_reuses_a_known_name() -> None:
    names = ["Anna", "Tom", "Priya", "Sam"]
    scrubber = Scrubber("pseudonymize", known_names=names)
    stand_ins = {scrubber.scrub_text(name) for name in names}
    assert len(stand_ins) == 4 and not stand_ins & set(names)


def test_pseudonyms_depend_on_the_salt_only() -> None:
    def stand_in(salt: str) -> str | None:
        return Scrubber("pseudonymize", known_names=["Anna"], salt=salt).scrub_text("Anna")

    assert stand_in("a") == stand_in("a")
    assert {stand_in(str(salt)) for salt in range(10)} != {stand_in("a")}


def test_full_name_gets_a_first_name_and_a_surname() -> None:
    scrubber = Scrubber("pseudonymize", known_names=["Jonas Weber"])
    full = scrubber.scrub_text("Jonas Weber")
    assert full == f"{scrubber.scrub_text('Jonas')} {scrubber.scrub_text('Weber')}"


def test_one_phone_in_two_spellings_gets_one_stand_in() -> None:
    scrubber = Scrubber("pseudonymize", region="GB")
    assert scrubber.scrub_text("+44 7700 900123") == scrubber.scrub_text("07700 900123")


def test_stand_in_is_never_the_original_even_if_fictional() -> None:
    scrubber = Scrubber("pseudonymize")
    assert scrubber.scrub_text("+44 7700 900001 user1@example.com") == (
        "+44 7700 900002 user2@example.com"
    )


def test_drop_mode_returns_none_for_text_with_pii() -> None:
    scrubber = Scrubber("drop")
    assert (scrubber.scrub_text("mail x@example.io"), scrubber.scrub_text("hi")) == (None, "hi")


def test_drop_mode_removes_the_message() -> None:
    messages = [msg("hi"), msg("mail x@example.io"), msg("bye")]
    assert [m.text for m in Scrubber("drop").scrub_messages(messages)] == ["hi", "bye"]


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ScrubError, match="unknown scrub mode 'mask'"):
        Scrubber("mask")


# ---------------------------------------------------------------- messages


def test_media_caption_and_link_are_scrubbed() -> None:
    media = Media(MediaType.LOCATION, caption="at Anna's", url="https://maps.example.com/?q=1,2")
    message = msg("", kind=MessageKind.MEDIA, media=media)
    scrubbed = next(Scrubber(known_names=["Anna"]).scrub_messages([message]))
    assert (scrubbed.media.caption, scrubbed.media.url) == ("at [NAME]'s", "[URL]")  # type: ignore[union-attr]


def test_system_notice_is_scrubbed() -> None:
    notice = msg("", author="Jonas Weber", kind=MessageKind.SYSTEM, notice="Jonas Weber added Maya")
    scrubber = Scrubber(known_names=["Jonas Weber", "Maya"], keep_names=["Maya"])
    assert next(scrubber.scrub_messages([notice])).notice == "[NAME] added Maya"


def test_drop_mode_drops_a_media_message_for_its_caption() -> None:
    media = Media(MediaType.IMAGE, caption="for x@example.io")
    message = msg("", kind=MessageKind.MEDIA, media=media)
    assert list(Scrubber("drop").scrub_messages([message])) == []


def test_authors_are_kept_by_default() -> None:
    assert next(Scrubber(known_names=["Sam"]).scrub_messages([msg("hi")])).author == "Sam"


def test_scrub_authors_replaces_third_parties_but_not_kept_names() -> None:
    scrubber = Scrubber(known_names=["Sam"], keep_names=["Maya"], scrub_authors=True)
    messages = [
        msg("hi", author="Sam"),
        msg("hey", author="Maya"),
        msg("yo", author="+44 7700 900123"),
    ]
    assert [m.author for m in scrubber.scrub_messages(messages)] == ["[NAME]", "Maya", "[PHONE]"]


def test_message_without_pii_is_returned_unchanged() -> None:
    message = msg("see u at 7")
    assert next(Scrubber().scrub_messages([message])) is message


# ---------------------------------------------------------------- report


def test_report_counts_per_kind_and_messages() -> None:
    scrubber = Scrubber("redact", known_names=["Anna"])
    list(scrubber.scrub_messages([msg("Anna x@example.io"), msg("hi"), msg("y@example.io")]))
    assert scrubber.report.to_dict() == {
        "mode": "redact",
        "messages": 3,
        "changed": 2,
        "dropped": 0,
        "found": {
            "phone": 0,
            "email": 2,
            "url": 0,
            "iban": 0,
            "card": 0,
            "ip": 0,
            "name": 1,
            "blocked": 0,
        },
    }


def test_report_never_holds_raw_values() -> None:
    raw = ["Anna", "x@example.io", "+44 7700 900123", "Hollowbrook", "4111 1111 1111 1111"]
    scrubber = Scrubber("pseudonymize", known_names=["Anna"], blocklist=["Hollowbrook"])
    list(scrubber.scrub_messages([msg(" ".join(raw))]))
    shown = scrubber.report.to_json() + repr(scrubber.report) + str(scrubber.report)
    assert [value for value in raw if value.lower() in shown.lower()] == []
    assert json.loads(scrubber.report.to_json())["found"]["card"] == 1


def test_scrubbing_logs_counts_but_no_text_at_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="style.scrub"):
        list(Scrubber().scrub_messages([msg("mail x@example.io")]))
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "example.io" not in caplog.text and '"email": 1' in caplog.text


# ---------------------------------------------------------------- the export itself


def test_names_in_export_reads_authors_and_notices() -> None:
    messages = [
        msg("", author="Weekend Crew", kind=MessageKind.SYSTEM, notice="Messages are encrypted"),
        msg(
            "",
            author="Jonas Weber",
            kind=MessageKind.SYSTEM,
            notice="Jonas Weber added Anna and Tom",
        ),
        msg("hi", author="~ Priya 🌸"),
        msg("hey", author="+44 7700 900123"),
    ]
    assert names_in_export(messages) == ["Jonas Weber", "Anna", "Tom", "Priya"]


def test_guess_region_from_international_numbers() -> None:
    messages = [
        msg("call +44 7700 900123"),
        msg("hi", author="+44 7700 900456"),
        msg("+49 151 23456789"),
    ]
    assert guess_region(messages) == "GB"


def test_guess_region_is_none_without_numbers() -> None:
    assert guess_region([msg("hi")]) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "WhatsApp Chat with Sam.txt",
            [
                ("phone", "+44 7700 900123"),
                ("email", "maya.okafor@example.com"),
                ("url", "https://example.com/listings/4417"),
                ("email", "sam.reyes@example.com"),
                ("phone", "+44 7700 900987"),
            ],
        ),
        (
            "_chat.txt",
            [
                ("email", "priya.photos@example.com"),
                ("phone", "+44 7700 900321"),
                ("url", "https://example.com/cabins/pine-hollow"),
                ("phone", "+44 7700 900456"),
            ],
        ),
    ],
)
def test_sample_contact_details_are_all_found(name: str, expected: list[tuple[str, str]]) -> None:
    chat = load_chat(SAMPLE / name)
    scrubber = Scrubber.for_messages(chat.messages, keep_names=["Maya"])
    details = [
        (f.kind.value, m.text[f.start : f.end])
        for m in chat.messages
        for f in scrubber.find(m.text)
        if f.kind is not PiiKind.NAME
    ]
    assert details == expected


def test_names_the_export_does_not_reveal_can_be_added() -> None:
    chat = load_chat(SAMPLE / "WhatsApp Chat with Sam.txt")
    scrubber = Scrubber.for_messages(chat.messages, keep_names=["Maya"], names=["Anna"])
    line = next(m.text for m in chat.messages if m.text.startswith("Anna's number"))
    assert scrubber.scrub_text(line) == "[NAME]'s number is [PHONE] if you need it for the party."


def test_scrubbed_sample_keeps_no_contact_details() -> None:
    chat = load_chat(SAMPLE / "_chat.txt")
    scrubber = Scrubber.for_messages(chat.messages, "pseudonymize", keep_names=["Maya"])
    text = "\n".join(m.text + (m.notice or "") for m in scrubber.scrub_messages(chat.messages))
    leaks = ["900321", "900456", "priya.photos", "pine-hollow", "Jonas", "Priya"]
    assert [leak for leak in leaks if leak in text] == []
    assert "Maya" in text


def test_scrub_package_exports_exactly_its_all() -> None:
    assert list(style.scrub.__all__) == sorted(set(style.scrub.__all__))
    assert [n for n in style.scrub.__all__ if not hasattr(style.scrub, n)] == []
