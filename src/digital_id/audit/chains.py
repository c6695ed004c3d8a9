"""Each process's pool of audit chains, so concurrent transactions append to different chains.

A transaction that records events takes a chain from its process's pool as it appends
(at commit, or at once inside a savepoint) and gives it back when it ends. A chain nobody
in the process holds is reused; when all are held a new chain is made, a new head row whose
id the database generates, so chains never collide between processes or servers. The head
row is still locked for each append, so a chain stays one line even if two processes were
ever to share it (a pool with a ``limit`` does so on purpose, to bound how many chains a
process makes: with ``limit=1`` every transaction of the process queues on one chain, as the
single-chain trail did).

A process that ends leaves its chains behind, complete. So that restarts do not add chains
without end, a process that needs a chain first takes one nobody has appended to for
``ABANDONED_AFTER`` (``take_chain``); were its old owner still alive, merely idle all that
time, the two would share it, which the head row lock keeps correct.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from digital_id.audit.models import AuditChain

GENESIS = "0" * 64  # the previous hash of every chain's first event
ABANDONED_AFTER = timedelta(hours=1)


class ChainPool:
    """The chains one process appends to through one engine, and how many transactions hold
    each at this moment."""

    def __init__(self, *, limit: int | None = None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._holders: dict[int, int] = {}

    def checkout(self) -> int | None:
        """A chain for a transaction to append to, or None when it should make a new one
        (and ``adopt`` it)."""
        with self._lock:
            if not self._holders:
                return None
            chain, holders = min(self._holders.items(), key=lambda item: item[1])
            if holders and (self.limit is None or len(self._holders) < self.limit):
                return None
            self._holders[chain] = holders + 1
            return chain

    def adopt(self, chain: int) -> None:
        """A chain just made by a transaction that now holds it."""
        with self._lock:
            self._holders[chain] = self._holders.get(chain, 0) + 1

    def checkin(self, chain: int) -> None:
        with self._lock:
            if chain in self._holders:
                self._holders[chain] = max(self._holders[chain] - 1, 0)

    def forget(self, chain: int) -> None:
        """A chain whose head row is gone: made in a transaction that rolled back, or
        deleted (which ``audit verify`` reports where a checkpoint covered it)."""
        with self._lock:
            self._holders.pop(chain, None)

    def chains(self) -> list[int]:
        with self._lock:
            return sorted(self._holders)


_pools: weakref.WeakKeyDictionary[Engine, ChainPool] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def pool_for(engine: Engine) -> ChainPool:
    """This process's chains in ``engine``'s database (one pool per engine object)."""
    pool = _pools.get(engine)
    if pool is None:
        with _pools_lock:
            pool = _pools.setdefault(engine, ChainPool())
    return pool


# The longest idle chain no other transaction has locked (SKIP LOCKED; SQLite has one writer
# anyway and renders no locking clause).
_IDLE_CHAIN = (
    select(AuditChain.id)
    .where(AuditChain.appended_at < bindparam("idle_before"))
    .order_by(AuditChain.appended_at)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_ADOPT_CHAIN = (
    update(AuditChain)
    .where(AuditChain.id == _IDLE_CHAIN)
    .values(appended_at=bindparam("now"))
    .returning(AuditChain.id)
)
_MAKE_CHAIN = (
    insert(AuditChain)
    .values(sequence=0, hash=GENESIS, appended_at=bindparam("now"))
    .returning(AuditChain.id)
)


def take_chain(connection: Connection, now: datetime) -> tuple[int, bool]:
    """A chain for this process: an abandoned one, or else a new one (whose id the database
    generates, so chains made by different processes never collide). Returns its id and
    whether it was made (then it goes if the transaction rolls back)."""
    adopted = connection.execute(
        _ADOPT_CHAIN, {"idle_before": now - ABANDONED_AFTER, "now": now}
    ).scalar()
    if adopted is not None:
        return int(adopted), False
    return int(connection.execute(_MAKE_CHAIN, {"now": now}).scalar_one()), True
