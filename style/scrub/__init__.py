"""Privacy scrubbing: find phone numbers, emails, links, IBANs, cards, IPs and names.

`Scrubber.for_messages(chat.messages, mode, keep_names=[persona])` reads the export's own
names and phone region; `scrub_messages` then redacts (`[PHONE]`), pseudonymizes
(consistent fictional stand-ins) or drops messages, and `report` counts what it found.
"""

from style.scrub.checksums import iban_valid, luhn_valid
from style.scrub.detect import Finding, PiiDetector, PiiKind, find_pii
from style.scrub.names import names_in_export
from style.scrub.phones import guess_region
from style.scrub.scrubber import Scrubber, ScrubError, ScrubMode, ScrubReport

__all__ = [
    "Finding",
    "PiiDetector",
    "PiiKind",
    "ScrubError",
    "ScrubMode",
    "ScrubReport",
    "Scrubber",
    "find_pii",
    "guess_region",
    "iban_valid",
    "luhn_valid",
    "names_in_export",
]
