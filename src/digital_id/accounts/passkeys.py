"""Passkeys (WebAuthn Level 3) on py_webauthn: enrolment from the portal, login with no NIK
typed (discoverable credentials) or after it, and step-up from a PIN session.

py_webauthn does the CBOR, COSE, attestation and signature work; this module keeps the
ceremonies' state: each challenge is stored (its digest), taken by one DELETE and good for
five minutes; the user must be verified (the phone's own unlock); the signature counter
must grow (``counter_regressed``, the one rule for it), and a regression is refused and
audited. The relying party is the issuer's host (``relying_party``)."""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from digital_id.accounts.models import CitizenAccount, Passkey, PasskeyChallenge
from digital_id.audit import trail
from digital_id.audit.trail import EventContext, citizen_ref
from digital_id.db.purge import purge_expired
from digital_id.grants.digests import token_digest
from digital_id.registry.models import Citizen
from digital_id.registry.nik import mask_nik

CHALLENGE_LIFETIME: Final = timedelta(minutes=5)
# What a browser may send as a credential (an attestation object with a long certificate
# chain is the largest); anything longer is not looked at.
MAX_CREDENTIAL_JSON: Final = 16 * 1024
MAX_NAME: Final = 64
ENROL: Final = "enrol"
LOGIN: Final = "login"


class PasskeyError(Exception):
    """A ceremony that did not pass; the message is for the audit trail, never for the page
    (which says only that the passkey was not accepted). ``citizen_id``: whose passkey it
    was, when the refusal came after it was found (its failure then counts for them)."""

    def __init__(self, message: str, citizen_id: int | None = None) -> None:
        super().__init__(message)
        self.citizen_id = citizen_id


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the issuer's host (the RP ID) and its origin."""

    rp_id: str
    origin: str
    name: str = "Identitas Digital"

    @property
    def enabled(self) -> bool:
        """Whether browsers take passkeys for this site at all: an RP ID must be a domain
        name (``localhost`` counts), never an IP address (WebAuthn section 5.1.3)."""
        try:
            ipaddress.ip_address(self.rp_id)
        except ValueError:
            return bool(self.rp_id)
        return False


def relying_party(issuer: str) -> RelyingParty:
    """The relying party of ``issuer``: passkeys are bound to its host name (WebAuthn section
    5.1.3: an RP ID is a domain, never an address with a port or a path)."""
    parts = urlsplit(issuer)
    return RelyingParty(rp_id=parts.hostname or "", origin=f"{parts.scheme}://{parts.netloc}")


@dataclass(frozen=True)
class PasskeyLogin:
    """A passkey that passed: whose, and the methods it counts as (RFC 8176)."""

    passkey_id: int
    citizen_id: int
    device_bound: bool

    @property
    def amr(self) -> list[str]:
        return ["hwk" if self.device_bound else "swk", "user"]


def counter_regressed(stored: int, presented: int) -> bool:
    """Whether a signature counter says the credential was cloned (WebAuthn section 6.1.1):
    once either counter is above zero, each use must count higher than the last."""
    return (stored > 0 or presented > 0) and presented <= stored


def enrolment_options(
    session: Session, rp: RelyingParty, citizen: Citizen, account: CitizenAccount, now: datetime
) -> str:
    """The options for ``navigator.credentials.create`` (JSON): a discoverable credential,
    user verification required, none of the citizen's passkeys again."""
    if account.passkey_user_handle is None:
        account.passkey_user_handle = bytes_to_base64url(secrets.token_bytes(32))
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=base64url_to_bytes(account.passkey_user_handle),
        user_name=mask_nik(citizen.nik),
        user_display_name=citizen.full_name,
        timeout=int(CHALLENGE_LIFETIME.total_seconds() * 1000),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(_passkeys_of(session, citizen.id)),
    )
    _keep_challenge(session, options.challenge, ENROL, citizen.id, now)
    return str(options_to_json(options))


def enrol(
    session: Session,
    rp: RelyingParty,
    citizen_id: int,
    credential_json: str,
    *,
    name: str,
    now: datetime,
    events: EventContext,
) -> Passkey:
    """Verify the browser's new credential against an enrolment challenge given to this
    citizen, and keep it under ``name``."""
    try:
        credential = parse_registration_credential_json(_bounded(credential_json))
        challenge = parse_client_data_json(credential.response.client_data_json).challenge
        _take_challenge(session, challenge, ENROL, citizen_id, now)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"enrolment refused: {exc}") from None
    passkey = Passkey(
        citizen_id=citizen_id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=name.strip()[:MAX_NAME] or "Passkey",
        device_bound=verified.credential_device_type == CredentialDeviceType.SINGLE_DEVICE,
        transports=[str(t.value) for t in credential.response.transports or []],
        created_at=now,
    )
    session.add(passkey)
    session.flush()
    trail.record(
        session,
        "passkey:enrolled",
        context=events,
        subject=citizen_ref(citizen_id),
        details={"passkey": passkey.id, "device_bound": passkey.device_bound},
        now=now,
    )
    return passkey


def login_options(
    session: Session, rp: RelyingParty, now: datetime, *, citizen_id: int | None = None
) -> str:
    """The options for ``navigator.credentials.get`` (JSON), user verification required: for
    any passkey of this site (a discoverable login, no NIK typed), or only the citizen's
    (after the NIK, or to step a session up)."""
    allowed = _descriptors(_passkeys_of(session, citizen_id)) if citizen_id is not None else []
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        timeout=int(CHALLENGE_LIFETIME.total_seconds() * 1000),
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    _keep_challenge(session, options.challenge, LOGIN, citizen_id, now)
    return str(options_to_json(options))


def authenticate(
    session: Session,
    rp: RelyingParty,
    credential_json: str,
    *,
    now: datetime,
    events: EventContext,
    citizen_id: int | None = None,
) -> PasskeyLogin:
    """Verify an assertion against a login challenge (for ``citizen_id`` alone when given:
    a step-up), and count the use. A regressed counter is audited and refused."""
    try:
        credential = parse_authentication_credential_json(_bounded(credential_json))
        challenge = parse_client_data_json(credential.response.client_data_json).challenge
        _take_challenge(session, challenge, LOGIN, citizen_id, now)
        passkey = session.scalars(
            select(Passkey).where(Passkey.credential_id == credential.id)
        ).one_or_none()
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"assertion refused: {exc}") from None
    if passkey is None or (citizen_id is not None and passkey.citizen_id != citizen_id):
        raise PasskeyError("no such passkey for this login")
    handle = credential.response.user_handle
    if handle is not None and bytes_to_base64url(handle) != _handle_of(session, passkey):
        raise PasskeyError("the user handle is not the passkey's citizen's", passkey.citizen_id)
    try:
        # The counter is ours to judge (counter_regressed), so that a regression is audited.
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError(f"assertion refused: {exc}", passkey.citizen_id) from None
    if counter_regressed(passkey.sign_count, verified.new_sign_count):
        trail.record(
            session,
            "passkey:counter_regressed",
            context=events,
            subject=citizen_ref(passkey.citizen_id),
            details={
                "passkey": passkey.id,
                "stored": passkey.sign_count,
                "presented": verified.new_sign_count,
            },
            now=now,
        )
        raise PasskeyError(
            "the signature counter went back: a cloned authenticator?", passkey.citizen_id
        )
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = now
    return PasskeyLogin(passkey.id, passkey.citizen_id, passkey.device_bound)


def passkeys_of(session: Session, citizen_id: int) -> list[Passkey]:
    """The citizen's passkeys, oldest first."""
    return _passkeys_of(session, citizen_id)


def remove(
    session: Session, citizen_id: int, passkey_id: int, *, now: datetime, events: EventContext
) -> bool:
    """Remove one of the citizen's passkeys (never another citizen's); whether it was theirs."""
    removed = session.execute(
        delete(Passkey)
        .where(Passkey.id == passkey_id, Passkey.citizen_id == citizen_id)
        .returning(Passkey.id)
    ).scalar_one_or_none()
    if removed is None:
        return False
    trail.record(
        session,
        "passkey:removed",
        context=events,
        subject=citizen_ref(citizen_id),
        details={"passkey": passkey_id},
        now=now,
    )
    return True


def purge_challenges(session: Session, now: datetime) -> int:
    """Delete up to a batch of expired challenges (the housekeeping job runs it)."""
    return purge_expired(session, PasskeyChallenge, PasskeyChallenge.expires_at < now)


def _bounded(credential_json: str) -> dict[str, Any]:
    """The browser's credential, parsed once (py_webauthn takes it as a dict), within bounds."""
    if len(credential_json) > MAX_CREDENTIAL_JSON:
        raise ValueError("the credential is too long")
    try:
        credential = json.loads(credential_json)
    except RecursionError:
        raise ValueError("the credential is nested too deeply") from None
    if not isinstance(credential, dict):
        raise ValueError("the credential is not a JSON object")
    return credential


def _passkeys_of(session: Session, citizen_id: int | None) -> list[Passkey]:
    return list(
        session.scalars(
            select(Passkey).where(Passkey.citizen_id == citizen_id).order_by(Passkey.id)
        )
    )


def _handle_of(session: Session, passkey: Passkey) -> str | None:
    return session.scalar(
        select(CitizenAccount.passkey_user_handle).where(
            CitizenAccount.citizen_id == passkey.citizen_id
        )
    )


def _descriptors(passkeys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(passkey.credential_id),
            transports=[AuthenticatorTransport(t) for t in passkey.transports],
        )
        for passkey in passkeys
    ]


def _keep_challenge(
    session: Session, challenge: bytes, purpose: str, citizen_id: int | None, now: datetime
) -> None:
    session.add(
        PasskeyChallenge(
            challenge_hash=token_digest(bytes_to_base64url(challenge)),
            purpose=purpose,
            citizen_id=citizen_id,
            expires_at=now + CHALLENGE_LIFETIME,
        )
    )
    session.flush()


def _take_challenge(
    session: Session, challenge: bytes, purpose: str, citizen_id: int | None, now: datetime
) -> None:
    """Spend the challenge the response signed: one DELETE, so it works once, within its
    lifetime, for the purpose (and the citizen, when it was given to one) it was made for."""
    condition: list[Any] = [
        PasskeyChallenge.challenge_hash == token_digest(bytes_to_base64url(challenge)),
        PasskeyChallenge.purpose == purpose,
        PasskeyChallenge.expires_at > now,
    ]
    if citizen_id is not None:
        condition.append(PasskeyChallenge.citizen_id == citizen_id)
    else:
        condition.append(PasskeyChallenge.citizen_id.is_(None))
    taken = session.execute(
        delete(PasskeyChallenge).where(*condition).returning(PasskeyChallenge.id)
    ).scalar_one_or_none()
    if taken is None:
        raise PasskeyError("the challenge is unknown, expired, used, or not for this")
