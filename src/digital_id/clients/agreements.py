"""Data-sharing agreements (Perjanjian Kerja Sama, PKS): Dukcapil lets an agency use
population data only under a signed agreement that expires and can be suspended, and the
Personal Data Protection law (UU 27/2022, article 20) names the legal bases a release may
rest on. A registration carries its agreement (``agreement``); ``agreement_problem`` is the
one rule every release asks: none under an expired or suspended agreement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.clients.models import Client
from digital_id.db.types import WIB

# UU 27/2022 article 20(2): the bases for processing personal data.
LEGAL_BASES: Final = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interest",
    "public_task",
    "legitimate_interest",
)
_LANGUAGES: Final = ("id", "en")
_FIELDS: Final = frozenset(
    {"number", "signed", "expires", "legal_basis", *(f"purpose#{lang}" for lang in _LANGUAGES)}
)


@dataclass(frozen=True)
class Agreement:
    """An agreement as registered: its number, when it was signed and until when it holds,
    the legal basis of the releases under it, and their purpose in both languages."""

    number: str
    signed: date
    expires: date
    legal_basis: str
    purpose: dict[str, str]

    def to_registration(self) -> dict[str, str]:
        return {
            "number": self.number,
            "signed": self.signed.isoformat(),
            "expires": self.expires.isoformat(),
            "legal_basis": self.legal_basis,
            **{f"purpose#{lang}": text for lang, text in self.purpose.items()},
        }


def validate_agreement(data: dict[str, Any]) -> Agreement | None:
    """The registration's ``agreement``, checked field by field (None when it has none)."""
    if "agreement" not in data:
        return None
    value = data["agreement"]
    if not isinstance(value, dict):
        raise InvalidClientMetadataError("agreement", "must be an object")
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise InvalidClientMetadataError(f"agreement.{unknown[0]}", "is not an agreement field")
    number = _text(value, "number", limit=100)
    signed, expires = _date(value, "signed"), _date(value, "expires")
    if expires <= signed:
        raise InvalidClientMetadataError("agreement.expires", "must come after agreement.signed")
    legal_basis = value.get("legal_basis")
    if legal_basis not in LEGAL_BASES:
        raise InvalidClientMetadataError(
            "agreement.legal_basis", f"{legal_basis!r} is not one of {', '.join(LEGAL_BASES)}"
        )
    purpose = {lang: _text(value, f"purpose#{lang}", limit=500) for lang in _LANGUAGES}
    return Agreement(number, signed, expires, legal_basis, purpose)


def agreement_of(registration: dict[str, Any]) -> Agreement | None:
    """The agreement a stored registration holds (validated when it was registered)."""
    value = registration.get("agreement")
    if not value:
        return None
    return Agreement(
        value["number"],
        date.fromisoformat(value["signed"]),
        date.fromisoformat(value["expires"]),
        value["legal_basis"],
        {lang: value[f"purpose#{lang}"] for lang in _LANGUAGES},
    )


def agreement_problem(client: Client, now: datetime) -> str | None:
    """Why ``client`` may receive nothing about a citizen now ("suspended", "expired"), or
    None. An agreement holds through the whole day of its expiry date (in UTC+7, WIB: the
    date on the paper is Jakarta's)."""
    if client.suspended_at is not None:
        return "suspended"
    agreement = agreement_of(client.registration)
    if agreement is not None and _jakarta_date(now) > agreement.expires:
        return "expired"
    return None


def _jakarta_date(now: datetime) -> date:
    return now.astimezone(WIB).date()


def _text(value: dict[str, Any], name: str, *, limit: int) -> str:
    text = value.get(name)
    if not isinstance(text, str) or not text.strip() or len(text) > limit:
        raise InvalidClientMetadataError(
            f"agreement.{name}", f"must be a non-empty string of at most {limit} characters"
        )
    return text.strip()


def _date(value: dict[str, Any], name: str) -> date:
    text = value.get(name)
    try:
        return date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else _bad()
    except ValueError:
        raise InvalidClientMetadataError(
            f"agreement.{name}", "must be a date as YYYY-MM-DD"
        ) from None


def _bad() -> date:
    raise ValueError("not a date")


def suspend(session: Session, client: Client, *, reason: str, now: datetime) -> None:
    """Suspend the agency's agreement: from the commit on, nothing is released to it
    (authorization, code, refresh, device and UserInfo all ask ``agreement_problem``)."""
    client.suspended_at = now
    client.suspension_reason = reason.strip()[:500] or None
    client.updated_at = now
    session.flush()
    trail.record(
        session,
        "client:agreement_suspended",
        actor="operator",
        client_id=client.client_id,
        details={"reason": client.suspension_reason},
        now=now,
    )


def reinstate(session: Session, client: Client, *, now: datetime) -> None:
    """Lift a suspension (an expired agreement stays expired until it is renewed)."""
    client.suspended_at = None
    client.suspension_reason = None
    client.updated_at = now
    session.flush()
    trail.record(
        session, "client:agreement_reinstated", actor="operator", client_id=client.client_id,
        now=now,
    )  # fmt: skip


def expiring(clients: list[Client], *, within: timedelta, now: datetime) -> list[Client]:
    """The agencies whose agreements end within ``within`` of ``now`` (or have ended), the
    soonest first."""
    last_day = _jakarta_date(now + within)
    found = [
        (agreement.expires, client)
        for client in clients
        if (agreement := agreement_of(client.registration)) is not None
        and agreement.expires <= last_day
    ]
    return [client for _, client in sorted(found, key=lambda pair: pair[0])]
