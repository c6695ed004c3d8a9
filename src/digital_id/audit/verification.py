"""Checking the audit trail, and exporting it for a SIEM.

``verify`` walks every chain from its start and reports the first broken link (with its
chain): a missing, inserted, edited or reordered event, a head row that does not match its
chain's last event (a cut tail), and anything a signed checkpoint contradicts (a tail cut
back together with its head row, a chain deleted, a chain rewritten with recomputed hashes,
a checkpoint whose signature does not verify, a checkpoint row deleted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from joserfc.jwk import KeySet
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from digital_id.audit import checkpoints
from digital_id.audit.chains import GENESIS
from digital_id.audit.models import AuditChain, AuditCheckpoint, AuditEvent
from digital_id.audit.trail import event_hash


@dataclass(frozen=True)
class Verification:
    count: int  # events verified before the first problem, in every chain
    head: str  # SHA-256 over every chain's (id, sequence, hash), in chain order
    chains: int = 0
    checkpoints: int = 0
    chain: int | None = None  # the chain of the first problem
    broken_at: int | None = None  # the sequence number of the first bad link in that chain
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


class _BrokenError(Exception):
    def __init__(self, problem: str, chain: int | None = None, at: int | None = None) -> None:
        super().__init__(problem)
        self.problem, self.chain, self.at = problem, chain, at


@dataclass
class _Walk:
    """What the walk has seen so far, and what the checkpoints expect of it."""

    expected: dict[int, tuple[int, str, int]]  # chain -> (sequence, hash, checkpoint id)
    digests: dict[int, str]  # checkpoint id -> digest of its token
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)
    count: int = 0
    chains: int = 0


def verify(
    session: Session, *, keys: Callable[[], KeySet] | None = None, batch: int = 5000
) -> Verification:
    """Walk every chain from the start. With ``keys`` (giving the published signing keys,
    asked for only if there is a checkpoint) each checkpoint's signature is checked too;
    without, only what the checkpoints record."""
    heads = {row.id: (row.sequence, row.hash) for row in session.scalars(select(AuditChain))}
    walk = _Walk(expected={}, digests={}, heads=dict(heads))
    try:
        _read_checkpoints(session, keys, walk)
        _walk_chains(session, batch, walk)
        _check_rest(walk)
    except _BrokenError as broken:
        return Verification(
            walk.count, "", walk.chains, len(walk.digests), broken.chain, broken.at,
            broken.problem,
        )  # fmt: skip
    return Verification(walk.count, _digest_of(heads), walk.chains, len(walk.digests))


def _read_checkpoints(session: Session, keys: Callable[[], KeySet] | None, walk: _Walk) -> None:
    key_set: KeySet | None = None
    for checkpoint in session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        walk.digests[checkpoint.id] = checkpoints.digest(checkpoint.token)
        if keys is not None and key_set is None:
            key_set = keys()
        try:
            recorded = checkpoints.heads_in(checkpoint.token, key_set)
        except checkpoints.CheckpointError as exc:
            raise _BrokenError(f"checkpoint {checkpoint.id} cannot be trusted: {exc}") from exc
        for head in recorded:
            if head.sequence >= walk.expected.get(head.chain, (0, "", 0))[0]:
                walk.expected[head.chain] = (head.sequence, head.hash, checkpoint.id)
        session.expunge(checkpoint)


def _walk_chains(session: Session, batch: int, walk: _Walk) -> None:
    chain, previous, count = 0, GENESIS, 0
    for event in _in_order(session, batch):
        if event.chain != chain:
            if chain:
                _end_chain(walk, chain, count, previous)
            chain, previous, count = event.chain, GENESIS, 0
            walk.chains += 1
        if event.sequence != count + 1:
            raise _BrokenError("an event is missing", chain, count + 1)
        if event.previous_hash != previous:
            raise _BrokenError("the link to the previous event is broken", chain, event.sequence)
        if event_hash(event) != event.hash:
            raise _BrokenError("the event was altered", chain, event.sequence)
        sequence, hash_, checkpoint = walk.expected.get(chain, (0, "", 0))
        if event.sequence == sequence and event.hash != hash_:
            raise _BrokenError(f"the event differs from checkpoint {checkpoint}", chain, sequence)
        if event.tag == checkpoints.TAG:
            _check_checkpoint_event(walk, event)
        previous = event.hash
        count += 1
        walk.count += 1
    if chain:
        _end_chain(walk, chain, count, previous)


def _end_chain(walk: _Walk, chain: int, count: int, last_hash: str) -> None:
    head = walk.heads.pop(chain, None)
    if head is None:
        raise _BrokenError("the chain's head record is missing", chain, count + 1)
    if head != (count, last_hash):
        raise _BrokenError("events after this one were removed", chain, count + 1)
    sequence, _, checkpoint = walk.expected.pop(chain, (0, "", 0))
    if sequence > count:
        raise _BrokenError(
            f"events after this one were removed (checkpoint {checkpoint} saw {sequence})",
            chain,
            count + 1,
        )


def _check_checkpoint_event(walk: _Walk, event: AuditEvent) -> None:
    number = event.details.get("checkpoint")
    if not isinstance(number, int) or walk.digests.get(number) != event.details.get("digest"):
        raise _BrokenError(f"checkpoint {number}, which this event records, is missing or altered",
                      event.chain, event.sequence)  # fmt: skip


def _check_rest(walk: _Walk) -> None:
    """Chains with a head but no events, and checkpointed chains that were not walked."""
    for chain, (sequence, _) in sorted(walk.heads.items()):
        if sequence > 0:
            raise _BrokenError("events after this one were removed", chain, 1)
    for chain, (sequence, _, checkpoint) in sorted(walk.expected.items()):
        if sequence > 0:
            raise _BrokenError(f"the chain is missing (checkpoint {checkpoint} saw it)", chain, 1)


def _digest_of(heads: dict[int, tuple[int, str]]) -> str:
    listed = [[chain, sequence, hash_] for chain, (sequence, hash_) in sorted(heads.items())]
    return hashlib.sha256(json.dumps(listed, separators=(",", ":")).encode()).hexdigest()


def _in_order(session: Session, batch: int) -> Iterator[AuditEvent]:
    """Every event by chain, then sequence; pages by the last (chain, sequence) seen."""
    last = (0, 0)
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(tuple_(AuditEvent.chain, AuditEvent.sequence) > tuple_(*last))
            .order_by(AuditEvent.chain, AuditEvent.sequence)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = (rows[-1].chain, rows[-1].sequence)
        session.expunge_all()


def export(session: Session, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """Every event, by time, then chain, then sequence, with its chain and hashes."""
    query = select(AuditEvent).order_by(
        AuditEvent.occurred_at, AuditEvent.chain, AuditEvent.sequence
    )
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    for event in session.scalars(query.execution_options(yield_per=1000)):
        yield {
            "chain": event.chain,
            "sequence": event.sequence,
            "occurred_at": event.occurred_at.isoformat(),
            "tag": event.tag,
            "actor": event.actor,
            "client_id": event.client_id,
            "subject": event.subject,
            "request_id": event.request_id,
            "ip": event.ip,
            "details": event.details,
            "previous_hash": event.previous_hash,
            "hash": event.hash,
        }
