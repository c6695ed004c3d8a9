"""Fixed-window rate limits counted in the database.

Each limit allows ``hits`` per window of ``window_seconds``, windows aligned to the epoch so
every worker agrees where one ends. A hit is one atomic upsert (``INSERT … ON CONFLICT DO
UPDATE SET hits = hits + 1 RETURNING hits``, on PostgreSQL and on SQLite ≥ 3.35), so
parallel hits from any number of workers are all counted and nothing is read first. Several
limits charged together (an IP address and a NIK) are one statement.

A fixed window lets a subject spend its budget at the end of one window and again at the
start of the next, twice the limit in a short burst; the limits here are abuse ceilings, not
quotas, and that costs less than a sliding window's second row or read per request.

Keys are HMAC-SHA256 of a key-store secret over ``scope:value``: the table never holds an
IP address, a NIK or a client id, and nobody without the secret can test a guess against it.

The database alone decides. Each process also remembers the windows the database has already
refused, until they end, so a subject that keeps knocking is turned away without another
statement; forgetting (a restart, another worker) only means asking the database again.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import TextClause, bindparam, delete, select, text, tuple_
from sqlalchemy.orm import Session

from digital_id.config import Settings
from digital_id.db.purge import PURGE_BATCH, deleted_count
from digital_id.db.types import UtcDateTime
from digital_id.throttle.models import RateLimitWindow

# Enough to remember every subject refused in a window under attack, small enough to not
# matter; past it the memory is simply dropped (the database still decides).
REMEMBERED_REFUSALS = 10_000


@dataclass(frozen=True)
class Limit:
    """At most ``hits`` per ``window_seconds`` for one subject; ``hits == 0`` turns it off."""

    scope: str
    hits: int
    window_seconds: int

    @property
    def enabled(self) -> bool:
        return self.hits > 0

    def window_end(self, now: datetime) -> datetime:
        epoch = math.floor(now.timestamp())
        return datetime.fromtimestamp(
            epoch - epoch % self.window_seconds + self.window_seconds, tz=UTC
        )


@dataclass(frozen=True)
class Limits:
    """Every limit the provider enforces, from the settings."""

    login_per_ip: Limit
    login_per_nik: Limit
    activation_per_ip: Limit
    activation_per_nik: Limit
    token_per_client: Limit
    client_auth_failures_per_ip: Limit
    request_objects_per_ip: Limit
    user_codes_per_ip: Limit
    user_codes_total: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            login_per_ip=Limit(
                "login:ip",
                settings.rate_limit_login_per_ip,
                settings.rate_limit_login_per_ip_seconds,
            ),
            login_per_nik=Limit(
                "login:nik",
                settings.rate_limit_login_per_nik,
                settings.rate_limit_login_per_nik_seconds,
            ),
            activation_per_ip=Limit(
                "activation:ip",
                settings.rate_limit_activation_per_ip,
                settings.rate_limit_activation_per_ip_seconds,
            ),
            activation_per_nik=Limit(
                "activation:nik",
                settings.rate_limit_activation_per_nik,
                settings.rate_limit_activation_per_nik_seconds,
            ),
            token_per_client=Limit(
                "token:client",
                settings.rate_limit_token_per_client,
                settings.rate_limit_token_per_client_seconds,
            ),
            client_auth_failures_per_ip=Limit(
                "token:client_auth_failed:ip",
                settings.rate_limit_client_auth_failures_per_ip,
                settings.rate_limit_client_auth_failures_per_ip_seconds,
            ),
            request_objects_per_ip=Limit(
                "authorize:request_object:ip",
                settings.rate_limit_request_objects_per_ip,
                settings.rate_limit_request_objects_per_ip_seconds,
            ),
            user_codes_per_ip=Limit(
                "device:user_code:ip",
                settings.rate_limit_user_codes_per_ip,
                settings.rate_limit_user_codes_per_ip_seconds,
            ),
            user_codes_total=Limit(
                "device:user_code:all",
                settings.rate_limit_user_codes_total,
                settings.rate_limit_user_codes_total_seconds,
            ),
        )

    def login(self, ip: str | None, nik: str, *, recognised: bool = False) -> tuple[Charge, ...]:
        """A login attempt (either login page) counts for its address and for the NIK; one
        from a browser recognised for that NIK only for its address, so strangers trying the
        NIK cannot spend the citizen's budget (that browser's own lock still bounds it)."""
        if recognised:
            return ((self.login_per_ip, address_subject(ip)),)
        return (self.login_per_ip, address_subject(ip)), (self.login_per_nik, nik)

    def activation(self, ip: str | None, nik: str) -> tuple[Charge, Charge]:
        return (self.activation_per_ip, address_subject(ip)), (self.activation_per_nik, nik)

    def user_code(self, ip: str | None) -> tuple[Charge, Charge]:
        """A user code typed at /device counts for its address and for everyone together:
        guessing codes from many addresses runs into the second."""
        return (self.user_codes_per_ip, address_subject(ip)), (self.user_codes_total, "*")

    def client_auth_failure(self, ip: str | None) -> Charge:
        return self.client_auth_failures_per_ip, address_subject(ip)

    def request_object(
        self, ip: str | None, parameters: Iterable[tuple[str, str]]
    ) -> tuple[Charge, ...]:
        """An authorization step carrying a request object (RFC 9101) counts for its address:
        each costs a signature check, perhaps a fetch of the agency's keys."""
        if any(name == "request" for name, _ in parameters):
            return ((self.request_objects_per_ip, address_subject(ip)),)
        return ()


def address_subject(ip: str | None) -> str:
    """What a per-address limit counts a client address as. An IPv6 address is its /64: one
    subscriber (a home, a phone) is given a whole /64 and may send from any of its 2^64
    addresses, so counting each alone would be no limit at all (RFC 6177 assigns end sites
    a /56 or more; /64 is the least any host gets). IPv4, and IPv4 mapped into IPv6, count
    as the address."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


Charge = tuple[Limit, str]
"""One limit and the subject it is charged to (an IP address, a NIK, a client id)."""


class RateLimitedError(Exception):
    """A limit is spent for this window; ``retry_after`` is the whole seconds until it frees."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"rate limit {scope} reached; retry after {retry_after} s")
        self.scope = scope
        self.retry_after = retry_after


class RateLimiter:
    """Charges hits against limits; one per process, shared by its threads."""

    def __init__(self, secret: bytes) -> None:
        # Domain separation: the secret given is also used for something else.
        self._secret = hmac.new(secret, b"digital-id|rate-limits", hashlib.sha256).digest()
        self._refused: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def subject_key(self, limit: Limit, value: str) -> str:
        message = f"{limit.scope}:{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def charge(self, session: Session, charges: Iterable[Charge], *, now: datetime) -> None:
        """Count one hit for each charge, in the caller's transaction; raise
        ``RateLimitedError`` if any limit is now past its budget. The caller commits the hits
        with its work, or rolls them back with a refusal (the window stays full either way)."""
        keyed = self._keyed(charges)
        if not keyed:
            return
        self._refuse_remembered(keyed, now)
        parameters: dict[str, object] = {}
        # Sorted, so two requests charging the same rows lock them in one order.
        for number, (key, (limit, _)) in enumerate(sorted(keyed.items())):
            parameters |= {
                f"key_{number}": key,
                f"ends_{number}": limit.window_end(now),
                f"scope_{number}": limit.scope,
            }
        statement = _hit_statement(len(keyed))
        rows = session.connection().execute(statement, parameters)
        counts = {row.subject_key: row.hits for row in rows}
        over = [limit for key, (limit, _) in keyed.items() if counts[key] > limit.hits]
        if over:
            with self._lock:
                if len(self._refused) >= REMEMBERED_REFUSALS:
                    self._refused.clear()
                for key, (limit, _) in keyed.items():
                    if counts[key] > limit.hits:
                        self._refused[key] = limit.window_end(now)
            raise refusal(over, now)

    def refuse_remembered(self, charges: Iterable[Charge], *, now: datetime) -> None:
        """Raise ``RateLimitedError`` if the database already refused one of these subjects in
        the current window (no statement: the check costs a hash)."""
        self._refuse_remembered(self._keyed(charges), now)

    def _refuse_remembered(self, keyed: dict[str, Charge], now: datetime) -> None:
        over = [
            limit
            for key, (limit, _) in keyed.items()
            if self._refused.get(key) == limit.window_end(now)
        ]
        if over:
            raise refusal(over, now)

    def _keyed(self, charges: Iterable[Charge]) -> dict[str, Charge]:
        return {
            self.subject_key(limit, value): (limit, value)
            for limit, value in charges
            if limit.enabled and value
        }


def refusal(over: Iterable[Limit], now: datetime) -> RateLimitedError:
    """The refusal for the spent limits ``over``: every one must free before another try
    can pass, so the latest window's end decides."""
    latest = max(over, key=lambda limit: limit.window_end(now))
    wait = (latest.window_end(now) - now).total_seconds()
    return RateLimitedError(latest.scope, max(1, math.ceil(wait)))


@functools.cache
def _hit_statement(rows: int) -> TextClause:
    """The upsert for ``rows`` subjects, built once per size. Written as SQL text because
    SQLAlchemy's insert construct costs several times the statement's own round trip on the
    token endpoint's hot path; the text is the same on PostgreSQL and SQLite (≥ 3.35)."""
    values = ", ".join(f"(:key_{n}, :ends_{n}, :scope_{n}, 1)" for n in range(rows))
    table = RateLimitWindow.__tablename__
    return text(
        f"INSERT INTO {table} (subject_key, window_ends_at, scope, hits) VALUES {values} "  # noqa: S608
        f"ON CONFLICT (subject_key, window_ends_at) DO UPDATE SET hits = {table}.hits + 1 "
        "RETURNING subject_key, hits"
    ).bindparams(*(bindparam(f"ends_{n}", type_=UtcDateTime()) for n in range(rows)))


def purge_ended(session: Session, now: datetime) -> int:
    """Delete up to ``PURGE_BATCH`` windows that have ended, skipping rows another worker is
    deleting right now; how many went. The housekeeping job runs it, not the charges, so a
    login pays for its own hit only."""
    doomed = (
        select(RateLimitWindow.subject_key, RateLimitWindow.window_ends_at)
        .where(RateLimitWindow.window_ends_at <= now)
        .limit(PURGE_BATCH)
        .with_for_update(skip_locked=True)
    )
    deleted = session.execute(
        delete(RateLimitWindow).where(
            tuple_(RateLimitWindow.subject_key, RateLimitWindow.window_ends_at).in_(doomed)
        )
    )
    return deleted_count(deleted)
