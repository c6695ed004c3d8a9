"""Signed checkpoints over every audit chain's head.

A checkpoint is a JWS (a JWT of type ``audit-checkpoint+jwt``) signed with the key store's
active signing key, whose claims list each chain's last sequence number and hash at that
moment. Heads only ever grow, so each chain must later still reach the checkpointed event
with the same hash: a tail cut back, a chain deleted, or a chain rewritten from an event
before the checkpoint (even with every hash recomputed, which needs no secret) no longer
matches. Anyone with the published JWKS can check the signatures offline.

Writing a checkpoint also records an ``audit:checkpoint`` event naming it and its digest,
so a checkpoint row deleted later is missed by the chains (as long as that event is).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.audit.models import AuditChain, AuditCheckpoint
from digital_id.db.types import utc_now

TOKEN_TYPE = "audit-checkpoint+jwt"  # noqa: S105 (a JWT "typ", not a secret)
TAG = "audit:checkpoint"
SIGNING_ALGORITHMS = ["RS256", "ES256"]
# Every server holds an active RS256 key (ID tokens need it), and a checkpoint is evidence
# kept for years: the longer key.
CHECKPOINT_ALGORITHM = "RS256"


class CheckpointError(Exception):
    """A checkpoint whose signature, type or content cannot be trusted."""


@dataclass(frozen=True)
class Head:
    chain: int
    sequence: int
    hash: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def write(
    session: Session, key: RSAKey | ECKey, alg: str, *, now: datetime | None = None
) -> AuditCheckpoint:
    """Sign every non-empty chain's head as committed now, in the caller's transaction."""
    now = now or utc_now()
    heads = session.execute(
        select(AuditChain.id, AuditChain.sequence, AuditChain.hash)
        .where(AuditChain.sequence > 0)
        .order_by(AuditChain.id)
    ).all()
    claims = {"iat": int(now.timestamp()), "chains": [[c, s, h] for c, s, h in heads]}
    header = {"alg": alg, "kid": key.kid, "typ": TOKEN_TYPE}
    token = jwt.encode(header, claims, key, algorithms=[alg])
    checkpoint = AuditCheckpoint(created_at=now, token=token)
    session.add(checkpoint)
    session.flush()
    trail.record(
        session,
        TAG,
        details={"checkpoint": checkpoint.id, "chains": len(heads), "digest": digest(token)},
        now=now,
    )
    return checkpoint


def write_if_due(
    session: Session, key: RSAKey | ECKey, alg: str, *, every: timedelta, now: datetime
) -> AuditCheckpoint | None:
    """A checkpoint unless one younger than ``every`` exists (any worker's)."""
    latest = session.scalar(select(func.max(AuditCheckpoint.created_at)))
    if latest is not None and now - latest < every:
        return None
    return write(session, key, alg, now=now)


def heads_in(token: str, keys: KeySet | None) -> list[Head]:
    """The heads a checkpoint records; its signature is checked against ``keys`` (without
    keys, only its content is read)."""
    try:
        if keys is None:
            header, claims = _unverified(token)
        else:
            decoded = jwt.decode(token, keys, algorithms=SIGNING_ALGORITHMS)
            header, claims = decoded.header, decoded.claims
    except InvalidKeyIdError as exc:
        # A pruned key: its checkpoints verify with a JWKS kept from when it was published.
        raise CheckpointError(
            "it is signed by a key that is not published (pruned? check with --jwks and a "
            "JWKS that holds it)"
        ) from exc
    except (JoseError, ValueError) as exc:
        raise CheckpointError(f"its signature does not verify ({type(exc).__name__})") from exc
    if header.get("typ") != TOKEN_TYPE:
        raise CheckpointError("it is not an audit checkpoint")
    try:
        return [Head(int(c), int(s), str(h)) for c, s, h in claims["chains"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError("its list of chains is malformed") from exc


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    compact = jws.extract_compact(token.encode("ascii"))
    return dict(compact.protected), json.loads(compact.payload)
