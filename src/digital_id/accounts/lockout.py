"""Lockout after failed PINs and one-time codes: the policy, and the counters it runs on.

Wrong PINs are counted per browser: those from browsers the citizen never logged in from
(strangers: anyone who read the NIK off a KTP) on the account, those from a recognised
browser (``accounts.browsers``) on that browser. So a stranger's lock does not keep the
citizen out of their own browsers, and guessing at a recognised browser locks that browser.
Wrong one-time codes count on the account's own code columns, with the same threshold and
doubling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from digital_id.accounts.models import CitizenAccount, RecognisedBrowser

# Past 2**20 doublings every sane setting is at its cap; stops the multiplication overflowing.
_MOST_DOUBLINGS = 20


@dataclass(frozen=True)
class LockoutPolicy:
    threshold: int = 5
    first_lock: timedelta = timedelta(minutes=15)
    longest_lock: timedelta = timedelta(hours=4)
    # How long a browser stays recognised after its latest successful login.
    recognition: timedelta = timedelta(days=90)

    def lock_duration(self, lock_count: int) -> timedelta:
        """15 minutes, then 30, 60, ... for each lock since the last successful login on the
        same side (strangers, or this recognised browser), never longer than ``longest_lock``:
        the stranger's count is not reset by the citizen's logins at their own browsers, so
        without a cap a patient stranger would lock the NIK for weeks."""
        doublings = min(max(lock_count - 1, 0), _MOST_DOUBLINGS)
        return min(self.first_lock * (1 << doublings), self.longest_lock)


def count_failure(
    session: Session,
    counter: CitizenAccount | RecognisedBrowser,
    policy: LockoutPolicy,
    now: datetime,
    *,
    factor: str = "",
) -> bool:
    """Count one failure on the stranger's side (the account) or on a recognised browser;
    True when it locked that side. ``factor="otp_"`` counts a wrong one-time code on the
    account's own code counters instead, with the same threshold and doubling."""
    table = type(counter)
    failed_attempts = getattr(table, f"{factor}failed_attempts")
    lock_count_column = getattr(table, f"{factor}lock_count")
    # One atomic UPDATE, so parallel failures in different workers each count.
    failed, lock_count = session.execute(
        update(table)
        .where(table.id == counter.id)
        .values({failed_attempts: failed_attempts + 1, table.updated_at: now})
        .returning(failed_attempts, lock_count_column)
    ).one()
    if failed >= policy.threshold:
        session.execute(
            update(table)
            .where(table.id == counter.id, failed_attempts >= policy.threshold)
            .values(
                {
                    failed_attempts: 0,
                    lock_count_column: lock_count + 1,
                    getattr(table, f"{factor}locked_until"): now
                    + policy.lock_duration(lock_count + 1),
                }
            )
        )
    session.expire_all()
    return bool(failed >= policy.threshold)


def clear_pin_failures(counter: CitizenAccount | RecognisedBrowser) -> None:
    counter.failed_attempts = 0
    counter.lock_count = 0
    counter.locked_until = None


def clear_code_failures(account: CitizenAccount) -> None:
    account.otp_failed_attempts = 0
    account.otp_lock_count = 0
    account.otp_locked_until = None
