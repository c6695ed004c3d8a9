"""Prometheus metrics: requests, logins, tokens, lockouts and the database pool.

The metric objects are declarations, as prometheus-client expects; they hold counts, never
a NIK, a code or a token, and every label has a small fixed set of values (anything else
becomes ``other``), so a caller cannot blow up the series count.

They are served on a listener of their own (``serve_metrics``, started by ``digital-id
serve`` on loopback by default), never on the public port: a counter that moves right after
someone's login would tell anyone who can reach it what that login found.

With several worker processes (``digital-id serve --workers N``) prometheus-client's
multiprocess mode is on: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory
before the workers start, each worker writes its values to files there, and the metrics
listener, in the supervising process, reads them all, so it reports every worker on the host.
Gauges are summed over the live workers. In one process the library keeps the values in
memory and none of that applies.

Logins, lockouts and tokens are counted from the audit events that record them
(``count_when_committed``), when their transaction commits: the metrics then agree with the
trail, and work rolled back is not counted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any, Final, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
    values,
)
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import QueuePool

HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A failed login is counted as just that: the login page says the same whether the NIK is
# unknown, not activated, locked or the PIN wrong, and so must the metrics. The audit trail
# keeps the reason.
LOGIN_OUTCOMES: Final = ("success", "failed")
GRANT_TYPES: Final = frozenset({"authorization_code", "refresh_token", "client_credentials"})

HTTP_REQUESTS = Counter(
    "digital_id_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "digital_id_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by route template.",
    ["method", "route"],
)
LOGINS = Counter(
    "digital_id_logins",
    "PIN logins by outcome: success or failed (the audit trail has each failure's reason).",
    ["outcome"],
)
SECOND_FACTOR = Counter(
    "digital_id_second_factor_checks",
    "One-time codes checked, by outcome (passed or failed).",
    ["outcome"],
)
LOCKOUTS = Counter(
    "digital_id_lockouts",
    "Accounts locked after too many failed PINs or one-time codes.",
)
TOKENS_ISSUED = Counter(
    "digital_id_tokens_issued",
    "Token responses issued at the token endpoint, by grant type.",
    ["grant_type"],
)
DB_POOL_SIZE = Gauge(
    "digital_id_db_pool_size",
    "Configured size of the database connection pool (summed over worker processes).",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "digital_id_db_pool_checked_out",
    "Database connections in use right now (summed over worker processes).",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "digital_id_db_pool_overflow",
    "Connections open beyond the pool size, as of the last checkout (summed over workers).",
    multiprocess_mode="livesum",
)

_PENDING = "digital_id.telemetry.pending_counts"
_LISTENING = threading.Lock()


class _Countable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


def multiprocess_mode() -> bool:
    """Whether prometheus-client runs in multiprocess mode in this process (it decides once,
    on import, from ``PROMETHEUS_MULTIPROC_DIR``; we ask it rather than guess)."""
    return values.ValueClass is not values.MutexValue


def serve_metrics(host: str, port: int, *, workers_directory: str | None = None) -> WSGIServer:
    """Answer scrapes on ``host``:``port`` from a daemon thread, until ``shutdown()``; OSError
    if the address cannot be bound. With ``workers_directory``, the counts every worker
    process writes there (multiprocess mode); else this process's own. Reads memory or those
    files, never the database."""
    server, _ = start_http_server(port, addr=host, registry=_registry(workers_directory))
    return server


def _registry(workers_directory: str | None) -> CollectorRegistry:
    if workers_directory is None and not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=workers_directory)  # type: ignore[no-untyped-call]
    return registry


def forget_this_process() -> None:
    """A worker stopping: its gauges leave the sums (its counters stay, as Prometheus expects)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


def watch_pool(engine: Engine) -> None:
    """Keep the pool gauges current from the engine's pool events (any pool class counts
    checkouts; size and overflow exist only for a QueuePool, which SQLite files use too)."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        DB_POOL_SIZE.set(pool.size())

    def checked_out(*_: Any) -> None:
        DB_POOL_CHECKED_OUT.inc()
        current = engine.pool
        if isinstance(current, QueuePool):
            DB_POOL_OVERFLOW.set(max(current.overflow(), 0))

    def checked_in(*_: Any) -> None:
        DB_POOL_CHECKED_OUT.dec()

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)


def count_when_committed(session: Session, tag: str, details: Mapping[str, Any]) -> None:
    """Count what an audit event records, once the session's transaction commits."""
    counter = _counter_for(tag, details)
    if counter is None:
        return
    _listen_to_sessions()
    session.info.setdefault(_PENDING, []).append(counter)


def _listen_to_sessions() -> None:
    # Once per process, on the Session class: adding listeners to each session cost ~95 us a
    # request (timeit, this project's dev machine), the class-wide check ~2 us.
    with _LISTENING:
        if not event.contains(Session, "after_commit", _count_pending):
            event.listen(Session, "after_commit", _count_pending)
            event.listen(Session, "after_transaction_end", _drop_pending)


def _counter_for(tag: str, details: Mapping[str, Any]) -> _Countable | None:
    reason = details.get("reason")
    grant_type = details.get("grant_type")
    counter: _Countable | None = None
    if tag == "auth:login":
        counter = LOGINS.labels(outcome="success")
    elif tag == "auth:pin:failed" and reason != "pin_change":  # portal PIN change, not a login
        counter = LOGINS.labels(outcome="failed")
    elif tag == "auth:locked":
        counter = LOCKOUTS
    elif tag in ("auth:otp:passed", "auth:otp:failed"):
        counter = SECOND_FACTOR.labels(outcome=tag.rsplit(":", 1)[1])
    elif tag == "token:issued":
        counter = TOKENS_ISSUED.labels(
            grant_type=grant_type if grant_type in GRANT_TYPES else "other"
        )
    return counter


def _count_pending(session: Session) -> None:
    pending: list[_Countable] | None = session.info.get(_PENDING)
    if not pending or session.get_nested_transaction() is not None:
        return  # nothing to count, or a savepoint committed and the outer work may roll back
    for counter in pending:
        counter.inc()
    pending.clear()


def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    # After a commit the list is empty already; after a rollback or a close it is discarded.
    pending: list[_Countable] | None = session.info.get(_PENDING)
    if pending and transaction.parent is None:
        pending.clear()
