"""The closed vocabularies of the e-KTP, as the register stores them.

Values are the card's own words in upper case, so what an operator imports, what the
register holds and what is printed on the card read the same.
"""

from __future__ import annotations

from typing import Final

SEXES: Final = ("L", "P")
BLOOD_TYPES: Final = ("A", "B", "AB", "O", "A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-", "-")
RELIGIONS: Final = (
    "ISLAM",
    "KRISTEN",
    "KATOLIK",
    "HINDU",
    "BUDDHA",
    "KONGHUCU",
    "KEPERCAYAAN TERHADAP TUHAN YME",
)
MARITAL_STATUSES: Final = ("BELUM KAWIN", "KAWIN", "CERAI HIDUP", "CERAI MATI")
NATIONALITIES: Final = ("WNI", "WNA")
CITIZEN_STATUSES: Final = ("active", "deceased", "blocked")
# Status hubungan dalam keluarga (SHDK): each member's relationship within the family card.
KEPALA_KELUARGA: Final = "KEPALA KELUARGA"
PARENTS: Final = frozenset({KEPALA_KELUARGA, "SUAMI", "ISTRI"})
CHILD: Final = "ANAK"
RELATIONSHIPS: Final = (
    KEPALA_KELUARGA, "SUAMI", "ISTRI", CHILD, "MENANTU", "CUCU", "ORANG TUA", "MERTUA",
    "FAMILI LAIN", "PEMBANTU", "LAINNYA",
)  # fmt: skip
