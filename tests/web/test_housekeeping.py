"""Rows nobody needs any more (ended rate-limit windows, lapsed recognised browsers, codes past
their retention) are purged by each server's housekeeping thread, not by requests: within one
interval, in batches, by several workers at once, keeping every row still needed."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, update

from digital_id.accounts.models import RecognisedBrowser
from digital_id.app import create_app
from digital_id.db.purge import PURGE_BATCH
from digital_id.db.types import utc_now
from digital_id.grants.codes import CODE_RETENTION
from digital_id.grants.models import AuthorizationCode
from digital_id.throttle.models import RateLimitWindow
from digital_id.web.housekeeping import purge_round
from tests.web.conftest import ISSUER

TABLES = {
    "rate_limit_windows": RateLimitWindow,
    "recognised_browsers": RecognisedBrowser,
    "authorization_codes": AuthorizationCode,
}


def stored(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: connection.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in TABLES.items()
        }


def age(engine: Engine, by: timedelta = timedelta(hours=1)) -> None:
    """Every window, recognition and code ended ``by`` ago."""
    long_ago = utc_now() - by
    with engine.begin() as connection:
        connection.execute(update(RateLimitWindow).values(window_ends_at=long_ago))
        connection.execute(update(RecognisedBrowser).values(expires_at=long_ago))
        connection.execute(update(AuthorizationCode).values(expires_at=long_ago))


def a_login(provider) -> None:
    provider.http.cookies.clear()  # each citizen in a browser of their own
    provider.tokens_for(provider.agency(), provider.citizen()["nik"])


def test_a_round_purges_what_ended_and_keeps_what_is_still_needed(provider):
    a_login(provider)
    age(provider.engine)
    a_login(provider)
    now = utc_now()
    purged = purge_round(provider.engine, now)
    assert purged["recognised_browsers"] == 1
    assert purged["authorization_codes"] == 1
    assert purged["rate_limit_windows"] >= 2  # the first login's per-address and per-NIK
    with provider.engine.connect() as connection:
        windows = connection.execute(select(RateLimitWindow.window_ends_at)).scalars().all()
        browsers = connection.execute(select(RecognisedBrowser.expires_at)).scalars().all()
        codes = connection.execute(select(AuthorizationCode.expires_at)).scalars().all()
    # The second login's rows stay: its windows, its browser's recognition, its code.
    assert windows
    assert all(ends > now for ends in windows)
    assert len(browsers) == len(codes) == 1
    assert browsers[0] > now
    assert codes[0] > now - CODE_RETENTION


def test_a_code_expired_moments_ago_is_kept_to_catch_its_reuse(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    code, verifier, _ = provider.code_for(agency, citizen["nik"])
    assert provider.token(agency, code, verifier).status_code == 200
    age(provider.engine, by=timedelta(minutes=1))
    assert purge_round(provider.engine)["authorization_codes"] == 0
    # Presented again: still known as redeemed, so refused (and what it issued revoked).
    assert provider.token(agency, code, verifier).json()["error"] == "invalid_grant"


def past_their_end(engine: Engine) -> dict[str, int]:
    """Rows nobody needs any more, per table (the token path's counts may add current ones
    at any moment, from this process's rate-limit synchronisation)."""
    now = utc_now()
    ended = {
        "rate_limit_windows": RateLimitWindow.window_ends_at <= now,
        "recognised_browsers": RecognisedBrowser.expires_at <= now,
        "authorization_codes": AuthorizationCode.expires_at < now - CODE_RETENTION,
    }
    with engine.connect() as connection:
        return {
            name: connection.execute(
                select(func.count()).select_from(TABLES[name]).where(condition)
            ).scalar_one()
            for name, condition in ended.items()
        }


def test_a_serving_process_purges_expired_rows_within_its_interval(provider):
    a_login(provider)
    age(provider.engine)
    assert all(past_their_end(provider.engine).values())
    settings = provider.settings.model_copy(update={"housekeeping_seconds": 0.1})
    with TestClient(create_app(settings), base_url=ISSUER):
        deadline = time.monotonic() + 10
        while any(past_their_end(provider.engine).values()) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert past_their_end(provider.engine) == dict.fromkeys(TABLES, 0)


def test_workers_purging_at_once_share_a_backlog_of_several_batches(engine):
    ended = utc_now() - timedelta(minutes=5)
    backlog = 3 * PURGE_BATCH + 7
    with engine.begin() as connection:
        connection.execute(
            insert(RateLimitWindow),
            [
                {
                    "subject_key": f"{n:064x}",
                    "window_ends_at": ended,
                    "scope": "login:ip",
                    "hits": 1,
                }
                for n in range(backlog)
            ],
        )
    purged: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            purged.append(purge_round(engine)["rate_limit_windows"])
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(30)
    assert errors == []
    assert sum(purged) == backlog
    assert stored(engine)["rate_limit_windows"] == 0


def test_replay_caches_and_revocation_marks_are_purged_once_expired(provider):
    """Kept only to refuse a replay or a revoked token until it expires: the round removes
    those past it and keeps the rest, so no request has to."""
    from digital_id.clients.models import Client
    from digital_id.grants.models import RevokedAccessToken
    from digital_id.oidc.models import SeenClientAssertion, SeenRequestObject

    agency = provider.agency()
    now = utc_now()
    with provider.engine.begin() as connection:
        client_pk = connection.execute(
            select(Client.id).where(Client.client_id == agency.client_id)
        ).scalar_one()
        for jti, expires_at in (
            ("gone", now - timedelta(seconds=1)),
            ("kept", now + timedelta(minutes=5)),
        ):
            connection.execute(
                insert(SeenClientAssertion).values(
                    client_id=client_pk, jti=jti, expires_at=expires_at
                )
            )
            connection.execute(
                insert(SeenRequestObject).values(
                    client_id=client_pk, jti=jti, expires_at=expires_at
                )
            )
            connection.execute(insert(RevokedAccessToken).values(jti=jti, expires_at=expires_at))
    purged = purge_round(provider.engine, now)
    assert purged["seen_client_assertions"] == purged["seen_request_objects"] == 1
    assert purged["revoked_access_tokens"] == 1
    with provider.engine.connect() as connection:
        for model in (SeenClientAssertion, SeenRequestObject, RevokedAccessToken):
            assert connection.execute(select(model.jti)).scalars().all() == ["kept"]
