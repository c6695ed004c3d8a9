"""Many audit chains, on SQLite and PostgreSQL: transactions at once append to different
chains, every chain verifies on its own, and signed checkpoints over the heads catch a tail
cut back with its head, a chain deleted, a chain rewritten, or a forged checkpoint."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from digital_id.audit import chains, checkpoints, trail, verification
from digital_id.audit.chains import ChainPool, pool_for
from digital_id.audit.models import AuditChain, AuditCheckpoint, AuditEvent
from digital_id.cli import app
from digital_id.db.engine import create_engine_for
from tests.conftest import TEST_PASSPHRASE


def append(engine, count, tag="test:event"):
    with Session(engine) as session, session.begin():
        for index in range(count):
            trail.record(session, tag, subject=f"citizen:{index}", details={"n": index})


def verify(engine, keys=None):
    with Session(engine) as session:
        return verification.verify(session, keys=keys)


@pytest.fixture
def signing_key(key_store):
    key_store.generate("RS256")
    return key_store.snapshot().signing_key("RS256")


@pytest.fixture
def published(key_store, signing_key):
    return key_store.snapshot().verification_keys


def checkpoint(engine, key):
    with Session(engine) as session, session.begin():
        return checkpoints.write(session, key, "RS256").id


def two_chains(engine):
    """Events in two chains, as two processes (each with its own engine) leave them."""
    other = create_engine_for(engine.url.render_as_string(hide_password=False))
    try:
        append(engine, 1, tag="test:one")
        append(other, 3, tag="test:other")
    finally:
        other.dispose()
    with Session(engine) as session:
        found = session.scalars(select(AuditEvent.chain).distinct()).all()
    assert len(found) == 2
    return sorted(found)


def test_two_processes_append_to_chains_of_their_own(engine):
    two_chains(engine)
    result = verify(engine)
    assert result.intact
    assert (result.count, result.chains) == (4, 2)


def test_a_transaction_appends_to_a_chain_no_other_transaction_holds(engine):
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: a second transaction waits for the first")
    with Session(engine) as holding:
        with holding.begin_nested():
            trail.record(holding, "test:holding")
        append(engine, 3, tag="test:other")  # does not wait for the holder's chain
        holding.commit()
    with Session(engine) as session:
        assert len(session.scalars(select(AuditEvent.chain).distinct()).all()) == 2
    assert verify(engine).intact


@pytest.fixture
def process(engine):
    """An engine as a newly started process has it: no chains from earlier tests (whose rows
    are gone) in its pool."""
    engine = create_engine_for(engine.url.render_as_string(hide_password=False))
    yield engine
    engine.dispose()


def test_one_transaction_after_another_reuses_the_same_chain(engine, process):
    append(process, 2)
    append(process, 3)
    with Session(engine) as session:
        assert session.scalar(select(func.count(AuditEvent.chain.distinct()))) == 1
        assert session.scalars(select(AuditChain.sequence)).all() == [5]


def test_a_new_process_takes_a_chain_left_idle_by_one_that_ended(engine, process):
    append(engine, 2)
    with engine.begin() as connection:
        left = connection.scalar(select(AuditChain.id))
        connection.execute(
            text("UPDATE audit_chains SET appended_at = :t"),
            {"t": datetime.now(UTC) - chains.ABANDONED_AFTER - timedelta(minutes=1)},
        )
    append(process, 1)
    with Session(engine) as session:
        assert session.scalars(select(AuditEvent.chain).distinct()).all() == [left]
    assert pool_for(process).chains() == [left]
    result = verify(engine)
    assert result.intact
    assert (result.count, result.chains) == (3, 1)


def test_a_chain_appended_to_recently_is_not_taken(engine, process):
    append(engine, 1)
    append(process, 1)
    with Session(engine) as session:
        assert len(session.scalars(select(AuditEvent.chain).distinct()).all()) == 2


def test_a_pool_with_a_limit_shares_its_chains():
    pool = ChainPool(limit=1)
    assert pool.checkout() is None
    pool.adopt(7)
    assert pool.checkout() == 7  # held by two transactions: the head row lock queues them
    pool.checkin(7)
    pool.checkin(7)
    assert ChainPool().checkout() is None


def test_a_chain_made_by_a_transaction_that_rolled_back_is_not_reused(engine, process):
    with Session(process) as session:
        trail.record(session, "test:gone")
        session.flush()
        with session.begin_nested():
            trail.record(session, "test:gone-too")
        made = pool_for(process).chains()
        session.rollback()
    assert len(made) == 1
    assert pool_for(process).chains() == []
    append(process, 1)
    assert verify(engine).intact


def test_sixteen_concurrent_writers_leave_valid_chains(engine):
    errors = []

    def writer():
        try:
            for count in (1, 3, 1, 2, 1, 1, 1):
                append(engine, count)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    result = verify(engine)
    assert result.intact
    assert result.count == 160
    with Session(engine) as session:
        heads = session.scalar(select(func.sum(AuditChain.sequence)))
    assert heads == 160


def test_verify_names_the_chain_and_its_first_broken_event(engine):
    first, second = two_chains(engine)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_events SET actor = 'x' WHERE chain = :chain AND sequence = 2"),
            {"chain": second},
        )
    result = verify(engine)
    assert (result.chain, result.broken_at) == (second, 2)
    assert result.problem == "the event was altered"
    assert result.count == 1 + (first < second)  # the chain before it, then its first event


def test_a_tail_cut_back_with_its_head_is_caught_by_a_checkpoint(engine, signing_key, published):
    append(engine, 5)
    checkpoint(engine, signing_key)
    with engine.begin() as connection:
        chain = connection.scalar(text("SELECT chain FROM audit_events WHERE sequence = 5"))
        hash_ = connection.scalar(
            text("SELECT hash FROM audit_events WHERE chain = :c AND sequence = 3"), {"c": chain}
        )
        connection.execute(
            text("DELETE FROM audit_events WHERE chain = :c AND sequence > 3"), {"c": chain}
        )
        connection.execute(
            text("UPDATE audit_chains SET sequence = 3, hash = :h WHERE id = :c"),
            {"c": chain, "h": hash_},
        )
    result = verify(engine, published)
    assert (result.chain, result.broken_at) == (chain, 4)
    assert "checkpoint" in (result.problem or "")


def test_a_deleted_chain_is_caught_by_a_checkpoint(engine, signing_key, published):
    first, _ = two_chains(engine)
    checkpoint(engine, signing_key)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE chain = :c"), {"c": first})
        connection.execute(text("DELETE FROM audit_chains WHERE id = :c"), {"c": first})
    result = verify(engine, published)
    assert not result.intact
    assert result.chain == first
    assert result.problem.startswith("the chain is missing")


def test_a_chain_rewritten_with_recomputed_hashes_is_caught_by_a_checkpoint(
    engine, signing_key, published
):
    append(engine, 3)
    checkpoint(engine, signing_key)
    with Session(engine) as session, session.begin():
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.tag == "test:event").order_by(AuditEvent.sequence)
        ).all()
        events[1].subject = "citizen:someone-else"
        previous = chains.GENESIS
        for event in events:  # every hash recomputed: the chain alone no longer shows it
            event.previous_hash = previous
            event.hash = previous = trail.event_hash(event)
        chain = events[0].chain
        session.execute(
            text("UPDATE audit_chains SET hash = :h WHERE id = :c"), {"h": previous, "c": chain}
        )
    result = verify(engine, published)
    assert (result.chain, result.broken_at) == (chain, 3)
    assert result.problem.startswith("the event differs from checkpoint")


def test_a_checkpoint_signed_by_another_key_is_caught(engine, signing_key, published):
    append(engine, 2)
    number = checkpoint(engine, signing_key)
    forger = RSAKey.generate_key(2048, parameters={"kid": signing_key.kid})
    with Session(engine) as session, session.begin():
        row = session.get(AuditCheckpoint, number)
        claims = jwt.decode(row.token, signing_key).claims
        claims["chains"] = []  # pretend no chain existed
        row.token = jwt.encode(
            {"alg": "RS256", "kid": signing_key.kid, "typ": checkpoints.TOKEN_TYPE}, claims, forger
        )
    result = verify(engine, published)
    assert not result.intact
    assert result.problem.startswith(f"checkpoint {number} cannot be trusted")


def test_a_checkpoint_by_a_key_no_longer_published_is_not_trusted(engine, signing_key):
    append(engine, 1)
    number = checkpoint(engine, signing_key)
    other = RSAKey.generate_key(2048, auto_kid=True)
    result = verify(engine, lambda: KeySet([other]))
    assert result.problem.startswith(f"checkpoint {number} cannot be trusted: it is signed by")


def test_a_checkpoint_is_written_only_when_none_is_recent(engine, signing_key, clock):
    append(engine, 1)
    with Session(engine) as session, session.begin():
        first = checkpoints.write_if_due(
            session, signing_key, "RS256", every=timedelta(minutes=5), now=clock.now
        )
    with Session(engine) as session, session.begin():
        again = checkpoints.write_if_due(
            session, signing_key, "RS256", every=timedelta(minutes=5), now=clock.now
        )
        later = checkpoints.write_if_due(
            session, signing_key, "RS256", every=timedelta(minutes=5),
            now=clock.now + timedelta(minutes=5),
        )  # fmt: skip
    assert first is not None
    assert again is None
    assert later is not None
    assert verify(engine).checkpoints == 2


def test_a_deleted_checkpoint_is_missed_by_the_event_that_recorded_it(engine, signing_key):
    append(engine, 2)
    number = checkpoint(engine, signing_key)
    assert verify(engine).intact
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_checkpoints WHERE id = :n"), {"n": number})
    result = verify(engine)
    assert result.problem == (
        f"checkpoint {number}, which this event records, is missing or altered"
    )


def test_an_untouched_trail_with_checkpoints_verifies(engine, signing_key, published):
    two_chains(engine)
    checkpoint(engine, signing_key)
    append(engine, 2)
    checkpoint(engine, signing_key)
    result = verify(engine, published)
    assert result.intact
    assert result.checkpoints == 2
    assert result.count == 4 + 2 + 2  # and the two checkpoints' own events


def test_export_lists_every_chain_by_time_then_chain_then_sequence(engine):
    two_chains(engine)
    with Session(engine) as session:
        exported = list(verification.export(session))
    assert len(exported) == 4
    keys = [(e["occurred_at"], e["chain"], e["sequence"]) for e in exported]
    assert keys == sorted(keys)


def test_the_cli_signs_a_checkpoint_and_verifies_it_with_the_published_jwks(
    engine, cli_env, key_store, signing_key, keys_dir, monkeypatch, tmp_path
):
    monkeypatch.setenv("DIGITAL_ID_KEYS_DIR", str(keys_dir))
    monkeypatch.setenv("DIGITAL_ID_KEYS_PASSPHRASE", TEST_PASSPHRASE)
    append(engine, 3)
    runner = CliRunner()
    signed = runner.invoke(app, ["audit", "checkpoint"])
    assert signed.exit_code == 0, signed.output
    assert "over 1 chains" in signed.output
    jwks = tmp_path / "jwks.json"
    jwks.write_text(key_store.snapshot().public_jwks_json.decode())
    ok = runner.invoke(app, ["audit", "verify", "--jwks", str(jwks)])
    assert ok.exit_code == 0, ok.output
    # The command's own process appended the checkpoint's event to a chain of its own.
    assert "4 events in 2 chains, 1 signed checkpoints" in ok.output
    with engine.begin() as connection:
        chain = connection.scalar(text("SELECT chain FROM audit_events WHERE sequence = 3"))
        connection.execute(
            text("DELETE FROM audit_events WHERE chain = :c AND sequence = 3"), {"c": chain}
        )
        connection.execute(
            text(
                "UPDATE audit_chains SET sequence = 2, hash = (SELECT hash FROM audit_events "
                "WHERE chain = :c AND sequence = 2) WHERE id = :c"
            ),
            {"c": chain},
        )
    broken = runner.invoke(app, ["audit", "verify", "--jwks", str(jwks)])
    assert broken.exit_code == 1
    assert f"audit chain {chain} is broken at event 3" in broken.output
