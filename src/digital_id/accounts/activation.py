"""Activation: the one-time code an operator issues, and the first PIN the citizen sets with it.

Only the code's hash is stored. A development-only ``set_pin`` seeds a PIN without a code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from digital_id.accounts.lockout import clear_pin_failures
from digital_id.accounts.lookup import account_for, existing_account, registered_citizen
from digital_id.accounts.models import CitizenAccount
from digital_id.accounts.pins import PinHasher, check_chosen_pin, check_pin_rules
from digital_id.audit import trail
from digital_id.audit.trail import citizen_ref
from digital_id.db.types import utc_now
from digital_id.registry.models import Citizen
from digital_id.registry.service import find_by_nik

# Crockford's base32 without I, L, O, U: nothing to misread when a code is read out.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS = 3
_CODE_GROUP_LENGTH = 4


class ActivationError(Exception):
    """Activation refused: the code is wrong, used or expired, or the record cannot log in."""


def issue_activation_code(
    session: Session,
    nik: str,
    *,
    now: datetime | None = None,
    valid_for: timedelta = timedelta(hours=24),
) -> str:
    """A one-time code for an active register record; only its hash is stored."""
    now = now or utc_now()
    citizen = registered_citizen(session, nik)
    if citizen.status != "active":
        raise ActivationError(
            f"the register record is {citizen.status}; only active records can be activated"
        )
    code = "-".join(
        "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_GROUP_LENGTH))
        for _ in range(_CODE_GROUPS)
    )
    account = account_for(session, citizen, now)
    account.activation_code_hash = _code_hash(code)
    account.activation_expires_at = now + valid_for
    account.updated_at = now
    session.flush()
    trail.record(
        session,
        "citizen:activation_issued",
        actor="operator",
        subject=citizen_ref(citizen.id),
        now=now,
    )
    return code


def activate(
    session: Session,
    hasher: PinHasher,
    *,
    nik: str,
    code: str,
    pin: str,
    pin_confirm: str,
    now: datetime | None = None,
) -> Citizen:
    """Complete activation: the code, then the PIN chosen twice and checked against the rules."""
    now = now or utc_now()
    citizen = find_by_nik(session, nik)
    account = existing_account(session, citizen)
    presented = _code_hash(_normalise_code(code))
    valid = (
        citizen is not None
        and citizen.status == "active"
        and account is not None
        and account.activation_code_hash is not None
        and account.activation_expires_at is not None
        and now < account.activation_expires_at
        and hmac.compare_digest(account.activation_code_hash, presented)
    )
    if not valid:
        raise ActivationError("the activation code is not valid for this NIK, or has expired")
    assert citizen is not None
    assert account is not None
    check_chosen_pin(pin, pin_confirm, birth_date=citizen.birth_date)
    _store_first_pin(account, hasher.hash(pin), now)
    session.flush()
    trail.record(
        session, "citizen:activated", actor="citizen", subject=citizen_ref(citizen.id), now=now
    )
    return citizen


def set_pin(
    session: Session, hasher: PinHasher, *, nik: str, pin: str, now: datetime | None = None
) -> Citizen:
    """Set a PIN without a code: for development seeding only (the CLI refuses it in production)."""
    now = now or utc_now()
    citizen = registered_citizen(session, nik)
    check_pin_rules(pin, birth_date=citizen.birth_date)
    _store_first_pin(account_for(session, citizen, now), hasher.hash(pin), now)
    session.flush()
    return citizen


def _store_first_pin(account: CitizenAccount, pin_hash: str, now: datetime) -> None:
    """The PIN an activation sets: the code is spent and the account starts unlocked."""
    account.pin_hash = pin_hash
    account.activated_at = now
    account.activation_code_hash = None
    account.activation_expires_at = None
    clear_pin_failures(account)
    account.updated_at = now


def _normalise_code(code: str) -> str:
    compact = "".join(code.split()).replace("-", "").upper()
    return "-".join(
        compact[i : i + _CODE_GROUP_LENGTH] for i in range(0, len(compact), _CODE_GROUP_LENGTH)
    )


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()
