"""Activation, login and lockout, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from digital_id.accounts import activation, lockout, operator_actions, pin_login, second_factor
from digital_id.accounts.pins import InvalidPinError, PinHasher
from digital_id.accounts.totp import TotpCipher
from digital_id.registry.importer import CitizenImporter
from digital_id.registry.records import RecordValidator
from digital_id.registry.regions import load_regions
from digital_id.registry.register_files import RejectReport
from digital_id.registry.service import find_by_nik
from tests.factories import citizen_row

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
POLICY = lockout.LockoutPolicy(threshold=5, first_lock=timedelta(minutes=15))
PIN = "246810"


@pytest.fixture
def hasher():
    return PinHasher(b"pepper" * 6, memory_kib=64, time_cost=1)


@pytest.fixture
def citizens(engine, tmp_path):
    rows = {
        "active": citizen_row(birth_date=date(1990, 10, 20), serial=1),
        "deceased": citizen_row(birth_date=date(1950, 1, 2), serial=1, status="deceased"),
        "blocked": citizen_row(birth_date=date(1970, 3, 4), serial=1, status="active"),
    }
    validator = RecordValidator(load_regions())
    records = iter((i, row) for i, row in enumerate(rows.values(), start=2))
    CitizenImporter(engine).run(records, validator, RejectReport(tmp_path / "r.csv"))
    return {name: row["nik"] for name, row in rows.items()}


def with_pin(engine, hasher, nik, pin=PIN):
    with Session(engine) as session, session.begin():
        activation.set_pin(session, hasher, nik=nik, pin=pin, now=NOW)


def login(engine, hasher, nik, pin=PIN, now=NOW) -> pin_login.LoginOutcome:
    with Session(engine) as session, session.begin():
        return pin_login.authenticate(session, hasher, nik=nik, pin=pin, policy=POLICY, now=now)


def test_activation_code_works_once_and_is_stored_hashed(engine, hasher, citizens):
    nik = citizens["active"]
    with Session(engine) as session, session.begin():
        code = activation.issue_activation_code(session, nik, now=NOW)
    assert len(code) == 14
    with engine.connect() as connection:
        assert code not in str(connection.execute(text("SELECT * FROM citizen_accounts")).all())

    with Session(engine) as session, session.begin():
        activation.activate(
            session,
            hasher,
            nik=nik,
            code=code.lower().replace("-", " "),
            pin=PIN,
            pin_confirm=PIN,
            now=NOW,
        )
    assert login(engine, hasher, nik).succeeded

    with Session(engine) as session, pytest.raises(activation.ActivationError):
        activation.activate(
            session, hasher, nik=nik, code=code, pin="135792", pin_confirm="135792", now=NOW
        )


@pytest.mark.parametrize("case", ["wrong code", "expired", "other nik"])
def test_activation_refuses_a_wrong_or_expired_code(engine, hasher, citizens, case):
    with Session(engine) as session, session.begin():
        code = activation.issue_activation_code(session, citizens["active"], now=NOW)
    nik, when = citizens["active"], NOW
    if case == "wrong code":
        code = "0000-0000-0000"
    elif case == "expired":
        when = NOW + timedelta(hours=24)
    else:
        nik = citizens["blocked"]
    with Session(engine) as session, pytest.raises(activation.ActivationError):
        activation.activate(session, hasher, nik=nik, code=code, pin=PIN, pin_confirm=PIN, now=when)


def test_activation_checks_the_pin_twice_and_against_the_rules(engine, hasher, citizens):
    nik = citizens["active"]
    with Session(engine) as session, session.begin():
        code = activation.issue_activation_code(session, nik, now=NOW)
    with Session(engine) as session:
        with pytest.raises(InvalidPinError) as mismatch:
            activation.activate(
                session, hasher, nik=nik, code=code, pin=PIN, pin_confirm="135792", now=NOW
            )
        assert mismatch.value.rule == "mismatch"
        with pytest.raises(InvalidPinError) as birth:
            activation.activate(
                session, hasher, nik=nik, code=code, pin="201090", pin_confirm="201090", now=NOW
            )
        assert birth.value.rule == "birth_date"


def test_a_deceased_record_cannot_be_activated(engine, citizens):
    with Session(engine) as session, pytest.raises(activation.ActivationError, match="deceased"):
        activation.issue_activation_code(session, citizens["deceased"], now=NOW)


def test_every_kind_of_failure_looks_the_same(engine, hasher, citizens):
    with_pin(engine, hasher, citizens["active"])
    with_pin(engine, hasher, citizens["blocked"])
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE citizens SET status = 'blocked' WHERE nik = :nik"),
            {"nik": citizens["blocked"]},
        )
    outcomes = [
        login(engine, hasher, "3273052010909999"),  # unknown NIK
        login(engine, hasher, citizens["active"], pin="135792"),  # wrong PIN
        login(engine, hasher, citizens["deceased"]),  # deceased (and never activated)
        login(engine, hasher, citizens["blocked"]),  # blocked after activation
        login(engine, hasher, "not-a-nik"),
    ]
    assert [o.succeeded for o in outcomes] == [False] * 5
    assert [o.citizen for o in outcomes] == [None] * 5
    assert [o.reason for o in outcomes] == [
        "unknown",
        "wrong_pin",
        "deceased",
        "register_blocked",
        "unknown",
    ]


def test_five_failures_lock_for_15_minutes_then_30(engine, hasher, citizens):
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    for _ in range(5):
        assert login(engine, hasher, nik, pin="135792").reason == "wrong_pin"
    assert login(engine, hasher, nik).reason == "locked", (
        "even the right PIN is refused while locked"
    )
    assert login(engine, hasher, nik, now=NOW + timedelta(minutes=14)).reason == "locked"

    later = NOW + timedelta(minutes=15)
    for _ in range(5):
        login(engine, hasher, nik, pin="135792", now=later)
    assert login(engine, hasher, nik, now=later + timedelta(minutes=29)).reason == "locked"
    assert login(engine, hasher, nik, now=later + timedelta(minutes=30)).succeeded


def test_a_successful_login_resets_the_counter(engine, hasher, citizens):
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    for _ in range(4):
        login(engine, hasher, nik, pin="135792")
    assert login(engine, hasher, nik).succeeded
    for _ in range(4):
        login(engine, hasher, nik, pin="135792")
    assert login(engine, hasher, nik).succeeded


def test_parallel_failures_each_count(engine, hasher, citizens):
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    barrier = threading.Barrier(5)
    errors: list[BaseException] = []

    def attempt():
        try:
            barrier.wait()
            login(engine, hasher, nik, pin="135792")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert login(engine, hasher, nik).reason == "locked"


def test_each_lock_doubles_up_to_the_longest():
    policy = lockout.LockoutPolicy(
        threshold=5, first_lock=timedelta(minutes=15), longest_lock=timedelta(hours=4)
    )
    durations = [policy.lock_duration(count) for count in (1, 2, 3, 4, 5, 6, 50, 10**6)]
    assert durations[:5] == [timedelta(minutes=m) for m in (15, 30, 60, 120, 240)]
    assert durations[5:] == [timedelta(hours=4)] * 3


# --- the second factor's own lockout -----------------------------------------------------

CIPHER = TotpCipher(b"k" * 32)


def enrolled(engine, nik) -> str:
    """An authenticator enrolled at NOW; its secret."""
    with Session(engine) as session, session.begin():
        citizen = find_by_nik(session, nik)
        assert citizen is not None
        secret = second_factor.begin_totp_enrolment(
            session, CIPHER, citizen, issuer_name="Digital ID", now=NOW
        ).secret
        first = pyotp.TOTP(secret).at(NOW)
        assert second_factor.verify_totp(session, CIPHER, citizen, first, policy=POLICY, now=NOW)
    return secret


def code_passes(engine, nik, code, now) -> bool:
    with Session(engine) as session, session.begin():
        citizen = find_by_nik(session, nik)
        assert citizen is not None
        return second_factor.verify_totp(session, CIPHER, citizen, code, policy=POLICY, now=now)


def wrong_code(secret: str, now: datetime) -> str:
    near = {pyotp.TOTP(secret).at(now + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in near)


def test_a_correct_pin_does_not_reset_the_count_of_wrong_codes(engine, hasher, citizens):
    """Else whoever has the PIN gets four code guesses per login, thousands a day."""
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    secret = enrolled(engine, nik)
    now = NOW + timedelta(minutes=1)
    for _ in range(5):
        assert login(engine, hasher, nik, now=now).succeeded
        assert not code_passes(engine, nik, wrong_code(secret, now), now)
    assert login(engine, hasher, nik, now=now).reason == "otp_locked"
    assert not code_passes(engine, nik, pyotp.TOTP(secret).at(now), now), (
        "even the right code is refused while locked"
    )


def test_five_wrong_codes_lock_for_15_minutes_then_30(engine, hasher, citizens):
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    secret = enrolled(engine, nik)
    first = NOW + timedelta(minutes=1)
    for _ in range(5):
        assert not code_passes(engine, nik, wrong_code(secret, first), first)
    assert login(engine, hasher, nik, now=first + timedelta(minutes=14)).reason == "otp_locked"

    later = first + timedelta(minutes=15)
    assert login(engine, hasher, nik, now=later).succeeded  # the PIN still stands
    for _ in range(5):
        assert not code_passes(engine, nik, wrong_code(secret, later), later)
    locked = login(engine, hasher, nik, now=later + timedelta(minutes=29))
    assert locked.reason == "otp_locked"
    assert login(engine, hasher, nik, now=later + timedelta(minutes=30)).succeeded


def test_a_correct_code_resets_the_count_of_wrong_codes(engine, hasher, citizens):
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    secret = enrolled(engine, nik)
    now = NOW + timedelta(minutes=1)
    for _ in range(4):
        assert not code_passes(engine, nik, wrong_code(secret, now), now)
    assert code_passes(engine, nik, pyotp.TOTP(secret).at(now), now)
    later = now + timedelta(minutes=1)
    for _ in range(4):
        assert not code_passes(engine, nik, wrong_code(secret, later), later)
    assert code_passes(engine, nik, pyotp.TOTP(secret).at(later), later)


def test_wrong_codes_do_not_count_towards_the_pin_lockout(engine, hasher, citizens):
    """Each factor has its own counter: four wrong PINs and four wrong codes lock nothing."""
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    secret = enrolled(engine, nik)
    now = NOW + timedelta(minutes=1)
    for _ in range(4):
        login(engine, hasher, nik, pin="135792", now=now)
        assert not code_passes(engine, nik, wrong_code(secret, now), now)
    assert login(engine, hasher, nik, now=now).succeeded


def test_an_operator_unlock_lifts_the_second_factors_lock(engine, hasher, citizens):
    nik = citizens["active"]
    with_pin(engine, hasher, nik)
    secret = enrolled(engine, nik)
    now = NOW + timedelta(minutes=1)
    for _ in range(5):
        code_passes(engine, nik, wrong_code(secret, now), now)
    with Session(engine) as session, session.begin():
        operator_actions.unlock(session, nik, now=now)
    assert login(engine, hasher, nik, now=now).succeeded
    assert code_passes(engine, nik, pyotp.TOTP(secret).at(now), now)
