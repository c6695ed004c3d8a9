"""Device authorizations (RFC 8628) as stored: started by a kiosk, claimed by the one browser
that entered the user code first, decided by the citizen there, and redeemed by the one poll
that takes the tokens. Each move is one conditional ``UPDATE``, so of any number of parallel
claims, decisions or polls in any workers exactly one wins."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from digital_id.db.purge import purge_expired
from digital_id.grants.digests import token_digest
from digital_id.grants.models import DeviceAuthorization

# RFC 8628 section 6.1: consonants only (no words, no 0/O or 1/I to mistake), shown as
# XXXX-XXXX. authlib's user codes (``create_string_user_code``) use this same alphabet.
USER_CODE_ALPHABET: Final = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH: Final = 8
# RFC 8628 section 3.5: each slow_down adds five seconds to the interval, for good.
SLOW_DOWN_STEP: Final = 5
# Kept after expiry so a kiosk still polling learns expired_token, not an unknown code.
RETENTION: Final = timedelta(minutes=10)

PENDING: Final = "pending"
APPROVED: Final = "approved"
DENIED: Final = "denied"

_SEPARATORS = re.compile(r"[\s\-]+")


def normalized_user_code(typed: str) -> str | None:
    """A user code as the citizen typed it (any case, spaces or dashes anywhere), as it was
    issued (``XXXX-XXXX``); None when it cannot be one (RFC 8628 section 6.1)."""
    letters = _SEPARATORS.sub("", typed[:32]).upper()
    if len(letters) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in letters):
        return None
    return f"{letters[:4]}-{letters[4:]}"


def start(
    session: Session,
    *,
    client_pk: int,
    device_code: str,
    user_code: str,
    scope: str,
    parameters: Sequence[tuple[str, str]],
    interval: int,
    now: datetime,
    lifetime: timedelta,
) -> bool:
    """Store a new device authorization; False when ``user_code`` is one already stored (the
    caller draws another: one in 2.56e10 per live code)."""
    try:
        with session.begin_nested():
            session.add(
                DeviceAuthorization(
                    client_id=client_pk,
                    device_code_hash=token_digest(device_code),
                    user_code_hash=token_digest(user_code),
                    scope=scope,
                    parameters=[list(pair) for pair in parameters],
                    interval=interval,
                    created_at=now,
                    expires_at=now + lifetime,
                    status=PENDING,
                )
            )
    except IntegrityError:
        return False
    return True


def claim(
    session: Session, user_code: str, claim_secret: str, *, now: datetime
) -> DeviceAuthorization | None:
    """Claim the pending, unexpired, unclaimed authorization ``user_code`` names for the
    browser holding ``claim_secret``: the first browser to enter a code holds it. None for
    any other code (unknown, expired, claimed, decided), with nothing to tell them apart."""
    claimed_id = session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.user_code_hash == token_digest(user_code),
            DeviceAuthorization.claim_hash.is_(None),
            DeviceAuthorization.status == PENDING,
            DeviceAuthorization.expires_at > now,
        )
        .values(claim_hash=token_digest(claim_secret), claimed_at=now)
        .returning(DeviceAuthorization.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return session.get(DeviceAuthorization, claimed_id) if claimed_id is not None else None


def claimed(session: Session, claim_secret: str, *, now: datetime) -> DeviceAuthorization | None:
    """The authorization the browser holding ``claim_secret`` claimed, while it waits for the
    citizen's decision."""
    return session.scalars(
        select(DeviceAuthorization).where(
            DeviceAuthorization.claim_hash == token_digest(claim_secret),
            DeviceAuthorization.status == PENDING,
            DeviceAuthorization.expires_at > now,
        )
    ).one_or_none()


def decide(
    session: Session,
    authorization: DeviceAuthorization,
    *,
    grant_id: int | None,
    now: datetime,
) -> bool:
    """Record the citizen's decision: approved with ``grant_id``, or denied (None). False
    when the authorization was decided already or has expired."""
    decided = session.execute(
        update(DeviceAuthorization)
        .where(
            DeviceAuthorization.id == authorization.id,
            DeviceAuthorization.status == PENDING,
            DeviceAuthorization.expires_at > now,
        )
        .values(
            status=APPROVED if grant_id is not None else DENIED,
            grant_id=grant_id,
            decided_at=now,
        )
        .returning(DeviceAuthorization.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return decided is not None


@dataclass(frozen=True)
class Poll:
    """What a kiosk's poll found (RFC 8628 section 3.5): ``grant_id`` only for the one poll
    that redeems an approval."""

    outcome: Literal["unknown", "pending", "slow_down", "denied", "expired", "redeemed"]
    grant_id: int | None = None
    interval: int = 0


def poll(session: Session, device_code: str, *, client_pk: int, now: datetime) -> Poll:
    """One poll by the client ``client_pk`` with ``device_code``.

    An approval is redeemed by one conditional UPDATE: of parallel polls, one gets the
    grant and the others find it redeemed (``unknown``: the code works once). A pending
    authorization polled sooner than its interval after the last poll answers
    ``slow_down`` and adds five seconds to the interval; every pending poll is recorded."""
    row = session.scalars(
        select(DeviceAuthorization).where(
            DeviceAuthorization.device_code_hash == token_digest(device_code),
            DeviceAuthorization.client_id == client_pk,
        )
    ).one_or_none()
    if row is None or row.redeemed_at is not None:
        return Poll("unknown")
    if row.expires_at <= now:
        return Poll("expired")
    if row.status == DENIED:
        return Poll("denied")
    if row.status == APPROVED:
        redeemed = session.execute(
            update(DeviceAuthorization)
            .where(DeviceAuthorization.id == row.id, DeviceAuthorization.redeemed_at.is_(None))
            .values(redeemed_at=now)
            .returning(DeviceAuthorization.grant_id)
            .execution_options(synchronize_session=False)
        ).scalar_one_or_none()
        return Poll("redeemed", grant_id=redeemed) if redeemed is not None else Poll("unknown")
    too_soon = row.last_polled_at is not None and now - row.last_polled_at < timedelta(
        seconds=row.interval
    )
    interval = row.interval + SLOW_DOWN_STEP if too_soon else row.interval
    session.execute(
        update(DeviceAuthorization)
        .where(DeviceAuthorization.id == row.id)
        .values(last_polled_at=now, interval=interval)
        .execution_options(synchronize_session=False)
    )
    return Poll("slow_down" if too_soon else "pending", interval=interval)


def purge_device_authorizations(session: Session, now: datetime) -> int:
    """Delete up to a batch of device authorizations past their retention (the housekeeping
    job runs it); how many went."""
    return purge_expired(
        session, DeviceAuthorization, DeviceAuthorization.expires_at < now - RETENTION
    )
