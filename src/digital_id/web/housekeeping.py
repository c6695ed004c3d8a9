"""The background thread in each server process that purges rows nobody needs any more, so
no request pays for it: rate-limit windows that ended, recognised browsers whose recognition
lapsed, authorization codes past their retention, the ids of client assertions and request
objects and DPoP proofs that have expired (kept only to refuse a replay), pushed authorization requests no
flow can use any more, and revocation marks of access tokens that have expired. After the
purges, what guardians gave for children no longer in their care is withdrawn
(``accounts.delegation_ending``).

Every ``interval`` seconds each purge deletes batches of its rows until a batch comes back
short, each batch in a transaction of its own. Batches lock with ``SKIP LOCKED``
(``db.purge``), so the workers of a fleet purging at once share the rows instead of waiting on
each other. ``digital-id db purge`` runs the same round once, for an operator. Failures are
logged and retried at the next round; they never reach a citizen's request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from digital_id.accounts.passkeys import purge_challenges
from digital_id.accounts.pin_login import purge_lapsed_browsers
from digital_id.db.periodic import Periodic
from digital_id.db.purge import PURGE_BATCH
from digital_id.db.types import utc_now
from digital_id.grants.codes import purge_expired_codes
from digital_id.grants.device import purge_device_authorizations
from digital_id.grants.revocation import purge_expired_revocations
from digital_id.oidc.client_auth import purge_seen_assertions
from digital_id.oidc.dpop import purge_seen_proofs
from digital_id.oidc.pushed_requests import purge_pushed_requests
from digital_id.oidc.request_objects import purge_seen_request_objects
from digital_id.throttle.limiter import purge_ended

log = logging.getLogger(__name__)

Purge = Callable[[Session, datetime], int]
"""Deletes up to ``PURGE_BATCH`` rows that are done with at ``now``; how many went."""

PURGES: dict[str, Purge] = {
    "rate_limit_windows": purge_ended,
    "recognised_browsers": purge_lapsed_browsers,
    "passkey_challenges": purge_challenges,
    "authorization_codes": purge_expired_codes,
    "device_authorizations": purge_device_authorizations,
    "seen_client_assertions": purge_seen_assertions,
    "seen_request_objects": purge_seen_request_objects,
    "pushed_authorization_requests": purge_pushed_requests,
    "seen_dpop_proofs": purge_seen_proofs,
    "revoked_access_tokens": purge_expired_revocations,
}
# Batches one purge deletes in a round at most: a backlog (after downtime) is worked off
# over a few rounds rather than in one long burst.
MAX_BATCHES = 100


def purge_round(engine: Engine, now: datetime | None = None) -> dict[str, int]:
    """Run every purge once over what is done with at ``now``; rows deleted, per table."""
    now = now or utc_now()
    deleted: dict[str, int] = {}
    for table, purge in PURGES.items():
        deleted[table] = 0
        for _ in range(MAX_BATCHES):
            with Session(engine) as session, session.begin():
                batch = purge(session, now)
            deleted[table] += batch
            if batch < PURGE_BATCH:
                break
    return deleted


class HousekeepingThread(Periodic):
    """Every round: the purges, then ``also`` (the server's end of lapsed delegations,
    ``accounts.delegation_ending``)."""

    def __init__(
        self, engine: Engine, *, interval: float, also: Callable[[], object] | None = None
    ) -> None:
        def housekeeping_round() -> None:
            purge_round(engine)
            if also is not None:
                also()

        super().__init__(
            "housekeeping",
            housekeeping_round,
            interval=interval,
            log=log,
            label="housekeeping",
        )
