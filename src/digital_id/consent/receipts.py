"""Consent receipts: each decision (grant or withdrawal) as a JWT signed with Digital ID's
active key, which the citizen can keep and anyone can check against the public JWKS.

The receipt names the citizen only by the pairwise ``sub`` that agency knows, so a receipt
shown to the agency reveals nothing it did not already know. A guardian's decision for a
child names both: the child as ``sub``, the guardian as ``act.sub`` (RFC 8693 section 4.1),
each by their pairwise ``sub`` at the agency.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from digital_id.consent.models import ConsentReceipt
from digital_id.keys.store import KeySnapshot

RECEIPT_TYPE = "consent-receipt+jwt"
RECEIPT_ALGORITHM = "RS256"


@dataclass(frozen=True)
class Actor:
    """The guardian deciding for the citizen, a child: who they are, and their pairwise
    ``sub`` at the agency."""

    citizen_id: int
    subject: str


class InvalidReceiptError(Exception):
    """The receipt is not one Digital ID signed, or it was altered."""


def issue(
    session: Session,
    keys: KeySnapshot,
    *,
    issuer: str,
    citizen_id: int,
    client_pk: int,
    client_id: str,
    agency_name: str,
    subject: str,
    decision: str,
    claims: Collection[str],
    purpose: str | None,
    now: datetime,
    actor: Actor | None = None,
) -> ConsentReceipt:
    receipt_id = secrets.token_hex(16)
    body: dict[str, Any] = {
        "iss": issuer,
        "jti": receipt_id,
        "iat": int(now.timestamp()),
        "sub": subject,
        "decision": decision,
        "agency": {"client_id": client_id, "name": agency_name},
        "claims": sorted(claims),
        "decided_at": now.isoformat(timespec="seconds"),
    }
    if purpose:
        body["purpose"] = purpose
    if actor is not None:
        body["act"] = {"sub": actor.subject}
    token = keys.sign(body, RECEIPT_ALGORITHM, header={"typ": RECEIPT_TYPE})
    receipt = ConsentReceipt(
        receipt_id=receipt_id,
        citizen_id=citizen_id,
        client_id=client_pk,
        decision=decision,
        issued_at=now,
        token=token,
        actor_citizen_id=actor.citizen_id if actor is not None else None,
    )
    session.add(receipt)
    session.flush()
    return receipt


def verify(token: str, jwks: KeySet, *, issuer: str | None = None) -> dict[str, Any]:
    """The receipt's contents if its signature checks out against ``jwks``."""
    try:
        decoded = jwt.decode(token.strip(), jwks, algorithms=[RECEIPT_ALGORITHM, "PS256", "ES256"])
    except (JoseError, ValueError) as exc:
        raise InvalidReceiptError(
            f"the signature does not verify ({exc.__class__.__name__})"
        ) from None
    if decoded.header.get("typ") != RECEIPT_TYPE:
        raise InvalidReceiptError("this is not a consent receipt")
    claims = dict(decoded.claims)
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidReceiptError(f"issued by {claims.get('iss')!r}, not {issuer!r}")
    return claims
