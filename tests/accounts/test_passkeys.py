"""Passkey ceremonies (WebAuthn Level 3, on py_webauthn) with responses a software
authenticator records, on SQLite and PostgreSQL: challenges work once and for five minutes,
user verification is required, the origin and RP ID must be ours, the signature counter must
grow (a regression is refused and audited), and a passkey logs in only its own citizen."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_id.accounts import passkeys
from digital_id.accounts.activation import set_pin
from digital_id.accounts.models import CitizenAccount, Passkey, PasskeyChallenge
from digital_id.accounts.pins import PinHasher
from digital_id.audit.models import AuditEvent
from digital_id.audit.trail import EventContext
from digital_id.grants.digests import token_digest
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from digital_id.registry.service import find_by_nik
from tests.factories import citizen_row
from tests.passkey_authenticator import SoftPasskey

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
RP = passkeys.relying_party("https://id.example.go.id")
EVENTS = EventContext(actor="citizen")


@pytest.fixture
def citizens(engine, tmp_path):
    rows = [citizen_row(birth_date=date(1990, 10, 20 - i), serial=1) for i in range(2)]
    CitizenImporter(engine).run(
        iter(enumerate(rows, start=2)),
        RecordValidator(load_regions()),
        RejectReport(tmp_path / "r"),
    )
    hasher = PinHasher(b"pepper" * 6, memory_kib=64, time_cost=1)
    with Session(engine) as session, session.begin():
        ids = []
        for row in rows:
            set_pin(session, hasher, nik=row["nik"], pin="246810", now=NOW)
            ids.append(find_by_nik(session, row["nik"]).id)
    return ids


def enrolled(engine, citizen_id: int, **authenticator) -> SoftPasskey:
    device = SoftPasskey(rp_id=RP.rp_id, origin=RP.origin, **authenticator)
    with Session(engine) as session, session.begin():
        citizen, account = _citizen_and_account(session, citizen_id)
        options = passkeys.enrolment_options(session, RP, citizen, account, NOW)
    response = device.create(options)
    with Session(engine) as session, session.begin():
        passkeys.enrol(
            session, RP, citizen_id, response, name="Ponsel saya", now=NOW, events=EVENTS
        )
    return device


def _citizen_and_account(session, citizen_id):
    from digital_id.registry.models import Citizen

    citizen = session.get_one(Citizen, citizen_id)
    account = session.scalars(
        select(CitizenAccount).where(CitizenAccount.citizen_id == citizen_id)
    ).one()
    return citizen, account


def log_in(engine, device: SoftPasskey, *, citizen_id=None, now=NOW, **response):
    with Session(engine) as session, session.begin():
        options = passkeys.login_options(session, RP, now, citizen_id=citizen_id)
    answer = device.get(options, **response)
    with Session(engine) as session, session.begin():
        return passkeys.authenticate(
            session, RP, answer, now=now, events=EVENTS, citizen_id=citizen_id
        )


def count(engine, model, *where) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_the_relying_party_is_the_issuers_host_and_origin():
    rp = passkeys.relying_party("https://id.example.go.id:8443/")
    assert rp.rp_id == "id.example.go.id"
    assert rp.origin == "https://id.example.go.id:8443"


def test_enrolment_options_ask_for_a_discoverable_user_verified_credential(engine, citizens):
    with Session(engine) as session, session.begin():
        citizen, account = _citizen_and_account(session, citizens[0])
        options = json.loads(passkeys.enrolment_options(session, RP, citizen, account, NOW))
        nik, name = citizen.nik, citizen.full_name
    assert options["rp"] == {"id": "id.example.go.id", "name": "Identitas Digital"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["timeout"] == 300_000
    assert nik not in json.dumps(options)  # the NIK is masked; the handle is random
    assert options["user"]["displayName"] == name


def test_an_enrolled_passkey_logs_in_its_citizen_with_hwk_or_swk(engine, citizens):
    bound = enrolled(engine, citizens[0])
    synced = enrolled(engine, citizens[1], synced=True)
    first = log_in(engine, bound)
    assert first.citizen_id == citizens[0]
    assert first.amr == ["hwk", "user"]
    second = log_in(engine, synced)
    assert second.citizen_id == citizens[1]
    assert second.amr == ["swk", "user"]
    with Session(engine) as session:
        kept = session.scalars(select(Passkey).where(Passkey.citizen_id == citizens[0])).one()
        assert kept.name == "Ponsel saya"
        assert kept.sign_count == 1
        assert kept.last_used_at == NOW


def test_a_challenge_works_once(engine, citizens):
    device = enrolled(engine, citizens[0])
    with Session(engine) as session, session.begin():
        options = passkeys.login_options(session, RP, NOW)
    answer = device.get(options)
    with Session(engine) as session, session.begin():
        passkeys.authenticate(session, RP, answer, now=NOW, events=EVENTS)
    replayed = device.get(options)  # the same challenge, signed again with a higher counter
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.authenticate(session, RP, replayed, now=NOW, events=EVENTS)


def test_a_challenge_expires_after_five_minutes(engine, citizens):
    device = enrolled(engine, citizens[0])
    with Session(engine) as session, session.begin():
        options = passkeys.login_options(session, RP, NOW)
    late = NOW + timedelta(minutes=5, seconds=1)
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.authenticate(session, RP, device.get(options), now=late, events=EVENTS)


def test_user_verification_is_required(engine, citizens):
    device = enrolled(engine, citizens[0])
    with pytest.raises(passkeys.PasskeyError):
        log_in(engine, device, verified=False)
    unverified = SoftPasskey(rp_id=RP.rp_id, origin=RP.origin)
    with Session(engine) as session, session.begin():
        citizen, account = _citizen_and_account(session, citizens[1])
        options = passkeys.enrolment_options(session, RP, citizen, account, NOW)
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.enrol(
            session, RP, citizens[1], unverified.create(options, verified=False),
            name="x", now=NOW, events=EVENTS,
        )  # fmt: skip


def test_another_origin_is_refused(engine, citizens):
    device = enrolled(engine, citizens[0])
    with pytest.raises(passkeys.PasskeyError):
        log_in(engine, device, origin="https://id.example.go.id.evil.example")


def test_a_regressed_counter_is_refused_and_audited(engine, citizens):
    device = enrolled(engine, citizens[0])
    log_in(engine, device, counter=7)
    with Session(engine) as session, session.begin():
        options = passkeys.login_options(session, RP, NOW)
    answer = device.get(options, counter=7)
    # As a page does: the refusal is answered, and what it recorded is committed.
    with Session(engine) as session:
        with pytest.raises(passkeys.PasskeyError, match="counter"):
            passkeys.authenticate(session, RP, answer, now=NOW, events=EVENTS)
        session.commit()
    assert count(engine, AuditEvent, AuditEvent.tag == "passkey:counter_regressed") == 1
    with Session(engine) as session:
        assert session.scalars(select(Passkey)).one().sign_count == 7


def test_counters_that_stay_at_zero_are_accepted():
    # Synced passkeys (Apple's, Google's) report 0 every time (WebAuthn section 6.1.1).
    assert not passkeys.counter_regressed(0, 0)
    assert passkeys.counter_regressed(3, 3)
    assert passkeys.counter_regressed(3, 0)
    assert not passkeys.counter_regressed(3, 4)


def test_a_step_up_accepts_only_the_citizens_own_passkey(engine, citizens):
    mine = enrolled(engine, citizens[0])
    enrolled(engine, citizens[1])
    assert log_in(engine, mine, citizen_id=citizens[0]).citizen_id == citizens[0]
    with pytest.raises(passkeys.PasskeyError):
        log_in(engine, mine, citizen_id=citizens[1])


def test_a_user_handle_of_another_citizen_is_refused(engine, citizens):
    device = enrolled(engine, citizens[0])
    other = enrolled(engine, citizens[1])
    with pytest.raises(passkeys.PasskeyError):
        log_in(engine, device, user_handle=other.user_handle)


def test_an_enrolment_challenge_is_only_for_its_citizen(engine, citizens):
    device = SoftPasskey(rp_id=RP.rp_id, origin=RP.origin)
    with Session(engine) as session, session.begin():
        citizen, account = _citizen_and_account(session, citizens[0])
        options = passkeys.enrolment_options(session, RP, citizen, account, NOW)
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.enrol(
            session, RP, citizens[1], device.create(options), name="x", now=NOW, events=EVENTS
        )
    assert count(engine, Passkey) == 0


@pytest.mark.parametrize(
    "garbage", ["", "[]", "{}", "not json", '{"id": 1}', "x" * 20000, "[" * 16000, '{"a":' * 3000]
)
def test_malformed_credentials_are_refused(engine, citizens, garbage):
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.authenticate(session, RP, garbage, now=NOW, events=EVENTS)


def test_a_passkey_is_removed_only_by_its_citizen(engine, citizens):
    enrolled(engine, citizens[0])
    with Session(engine) as session:
        passkey_id = session.scalars(select(Passkey.id)).one()
    with Session(engine) as session, session.begin():
        assert not passkeys.remove(session, citizens[1], passkey_id, now=NOW, events=EVENTS)
        assert passkeys.remove(session, citizens[0], passkey_id, now=NOW, events=EVENTS)
    assert count(engine, Passkey) == 0
    assert count(engine, AuditEvent, AuditEvent.tag == "passkey:removed") == 1


def test_expired_challenges_are_purged(engine, citizens):
    with Session(engine) as session, session.begin():
        passkeys.login_options(session, RP, NOW)
    with Session(engine) as session, session.begin():
        assert passkeys.purge_challenges(session, NOW + timedelta(minutes=6)) == 1
    assert count(engine, PasskeyChallenge) == 0


# --- responses recorded from Chromium's virtual authenticator (data/chromium_passkey.json) ---

RECORDED = json.loads((Path(__file__).parent / "data" / "chromium_passkey.json").read_text())


def hand_out(engine, challenge: str, purpose: str, citizen_id: int | None) -> None:
    """The challenge the recording signed, stored as the server stores the ones it gives out."""
    with Session(engine) as session, session.begin():
        session.add(
            PasskeyChallenge(
                challenge_hash=token_digest(challenge),
                purpose=purpose,
                citizen_id=citizen_id,
                expires_at=NOW + timedelta(minutes=5),
            )
        )


def test_a_recorded_chromium_enrolment_and_login_pass_and_the_login_works_once(engine, citizens):
    rp = passkeys.relying_party(RECORDED["origin"])
    with Session(engine) as session, session.begin():
        _, account = _citizen_and_account(session, citizens[0])
        account.passkey_user_handle = RECORDED["user_handle"]
    hand_out(engine, RECORDED["enrol_challenge"], passkeys.ENROL, citizens[0])
    with Session(engine) as session, session.begin():
        passkeys.enrol(
            session, rp, citizens[0], json.dumps(RECORDED["created"]), name="Chromium",
            now=NOW, events=EVENTS,
        )  # fmt: skip
    hand_out(engine, RECORDED["login_challenge"], passkeys.LOGIN, None)
    asserted = json.dumps(RECORDED["asserted"])
    with Session(engine) as session, session.begin():
        login = passkeys.authenticate(session, rp, asserted, now=NOW, events=EVENTS)
    assert login.citizen_id == citizens[0]
    assert login.amr == ["hwk", "user"]  # Chromium's virtual authenticator is not synced
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.authenticate(session, rp, asserted, now=NOW, events=EVENTS)


def test_a_recorded_login_for_another_site_is_refused(engine, citizens):
    hand_out(engine, RECORDED["enrol_challenge"], passkeys.ENROL, citizens[0])
    with Session(engine) as session, session.begin():
        _, account = _citizen_and_account(session, citizens[0])
        account.passkey_user_handle = RECORDED["user_handle"]
        passkeys.enrol(
            session, passkeys.relying_party(RECORDED["origin"]), citizens[0],
            json.dumps(RECORDED["created"]), name="Chromium", now=NOW, events=EVENTS,
        )  # fmt: skip
    hand_out(engine, RECORDED["login_challenge"], passkeys.LOGIN, None)
    elsewhere = passkeys.relying_party("http://localhost:1")  # another origin
    with Session(engine) as session, session.begin(), pytest.raises(passkeys.PasskeyError):
        passkeys.authenticate(
            session, elsewhere, json.dumps(RECORDED["asserted"]), now=NOW, events=EVENTS
        )
