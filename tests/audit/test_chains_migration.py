"""A trail written by the single-chain schema still verifies after the migration to many
chains: its events become chain 1, its head row chain 1's head, and new events go on in
chains of their own."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from digital_id.audit import trail, verification
from digital_id.db import migrate
from digital_id.db.engine import create_engine_for

BEFORE_CHAINS = "e5b2c8d4f716"

# The single-chain code's one PostgreSQL statement (before the migration): lock the one head
# row, hash in the database, advance the head and insert the event.
OLD_APPEND_ON_POSTGRESQL = text(
    "WITH head AS (SELECT sequence, hash FROM audit_head WHERE id = 1 FOR UPDATE), "
    "linked AS (SELECT sequence + 1 AS sequence, hash AS previous_hash, "
    "encode(sha256(convert_to(hash || CAST(:before_sequence AS text) "
    "|| CAST(sequence + 1 AS text) || CAST(:after_sequence AS text), 'UTF8')), 'hex') "
    "AS hash FROM head), "
    "advanced AS (UPDATE audit_head SET sequence = linked.sequence, hash = linked.hash "
    "FROM linked WHERE audit_head.id = 1) "
    "INSERT INTO audit_events (sequence, occurred_at, tag, actor, client_id, subject, "
    "request_id, ip, details, previous_hash, hash) "
    "SELECT linked.sequence, :occurred_at, :tag, :actor, NULL, :subject, NULL, NULL, "
    "CAST(:details AS jsonb), linked.previous_hash, linked.hash FROM linked"
)


class _Fields:
    """An event's fields as the old code hashed them (no chain)."""

    def __init__(self, number: int, sequence: int = 0, previous_hash: str = "") -> None:
        self.occurred_at = datetime(2026, 11, 30, 8, number, tzinfo=UTC)
        self.tag, self.actor, self.client_id = "auth:login", "citizen", None
        self.subject, self.request_id, self.ip = f"citizen:{number}", None, None
        self.details = {"n": number, "nama": "Siti \u00e9"}
        self.sequence, self.previous_hash = sequence, previous_hash


def old_canonical_around_sequence(fields: _Fields) -> tuple[str, str]:
    """The canonical JSON around the sequence number as the old code wrote it (dictionaries
    through json.dumps), kept here so that the trail's own way of writing it must match."""

    def canonical(values: dict) -> str:
        return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    before = canonical(
        {
            "actor": fields.actor, "client_id": fields.client_id, "details": fields.details,
            "ip": fields.ip, "occurred_at": fields.occurred_at.isoformat(),
            "request_id": fields.request_id,
        }
    )  # fmt: skip
    after = canonical({"subject": fields.subject, "tag": fields.tag})
    return before[:-1] + ',"sequence":', "," + after[1:]


def write_old_trail(engine, count: int) -> None:
    with engine.begin() as connection:
        for number in range(1, count + 1):
            fields = _Fields(number)
            if engine.dialect.name == "postgresql":
                before, after = old_canonical_around_sequence(fields)
                connection.execute(
                    OLD_APPEND_ON_POSTGRESQL,
                    {
                        "before_sequence": before, "after_sequence": after,
                        "occurred_at": fields.occurred_at, "tag": fields.tag,
                        "actor": fields.actor, "subject": fields.subject,
                        "details": json.dumps(fields.details),
                    },
                )  # fmt: skip
                continue
            # The old SQLite path: advance the head, hash here, insert, set the head's hash.
            sequence, previous = connection.execute(
                text("UPDATE audit_head SET sequence = sequence + 1 WHERE id = 1 "
                     "RETURNING sequence, hash")
            ).one()  # fmt: skip
            fields.sequence, fields.previous_hash = sequence, previous
            before, after = old_canonical_around_sequence(fields)
            linked = previous + before + str(sequence) + after
            digest = hashlib.sha256(linked.encode("ascii")).hexdigest()
            connection.execute(
                text(
                    "INSERT INTO audit_events (sequence, occurred_at, tag, actor, subject, "
                    "details, previous_hash, hash) VALUES (:s, :o, :t, :a, :sub, :d, :p, :h)"
                ),
                {
                    "s": sequence, "o": fields.occurred_at.replace(tzinfo=None),
                    "t": fields.tag, "a": fields.actor, "sub": fields.subject,
                    "d": json.dumps(fields.details), "p": previous, "h": digest,
                },
            )  # fmt: skip
            connection.execute(text("UPDATE audit_head SET hash = :h WHERE id = 1"), {"h": digest})


def test_a_single_chain_trail_still_verifies_after_the_migration(empty_database_url):
    engine = create_engine_for(empty_database_url)
    try:
        migrate.upgrade(engine, BEFORE_CHAINS)
        write_old_trail(engine, 4)
        with engine.connect() as connection:
            old_head = connection.execute(text("SELECT sequence, hash FROM audit_head")).one()
        migrate.upgrade(engine)
        with engine.connect() as connection:
            chain_one = connection.execute(
                text("SELECT id, sequence, hash FROM audit_chains")
            ).all()
            chains = connection.scalars(text("SELECT DISTINCT chain FROM audit_events")).all()
        assert chain_one == [(1, old_head[0], old_head[1])]
        assert chains == [1]
        with Session(engine) as session:
            result = verification.verify(session)
        assert result.intact, result.problem
        assert (result.count, result.chains) == (4, 1)
        with Session(engine) as session, session.begin():
            trail.record(session, "test:after-the-migration")
        with Session(engine) as session:
            result = verification.verify(session)
        assert result.intact, result.problem
        assert (result.count, result.chains) == (5, 2)
    finally:
        engine.dispose()
