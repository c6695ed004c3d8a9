"""Each process's pool of audit chains, so concurrent transactions append to different chains.

A transaction that records events takes a chain from its process's pool as it appends
(at commit, or at once inside a savepoint) and gives it back when it ends. A chain nobody
in the process holds is reused; when all are held a new chain is made, a new head row whose
id the database generates, so chains never collide between processes or servers. The head
row is still locked for each append, so a chain stays one line even if two processes were
ever to share it (a pool with a ``limit`` does so on purpose, to bound how many chains a
process makes: with ``limit=1`` every transaction of the process queues on one chain, as the
single-chain trail did).

The pool also remembers each chain's head (sequence number and hash) as its last committed
append in this process left it, so the next append can link its events without reading
the head first. That memory is only a guess: the append writes on condition that the head
row still holds it, and reads the row again (locked) when it does not.

A process that ends leaves its chains behind, complete. So that restarts do not add chains
without end, a process that needs a chain first takes one nobody has appended to for
``ABANDONED_AFTER`` (``take_chain``); were its old owner still alive, merely idle all that
time, the two would share it, which the head row lock keeps correct.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from digital_id.audit.models import AuditChain

GENESIS = "0" * 64  # the previous hash of every chain's first event
ABANDONED_AFTER = timedelta(hours=1)


class Head(NamedTuple):
    """A chain's last sequence number and the hash of its last event."""

    sequence: int
    hash: str


class TakenChain(NamedTuple):
    """A chain taken by a transaction (its head row now locked by it), its head, and whether
    the transaction made it (then the head row goes if the transaction rolls back)."""

    id: int
    head: Head
    made: bool


class ChainPool:
    """The chains one process appends to through one engine, and how many transactions hold
    each at this moment."""

    def __init__(self, *, limit: int | None = None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._holders: dict[int, int] = {}
        self._heads: dict[int, Head] = {}

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

    def head(self, chain: int) -> Head | None:
        """The head the last committed append to ``chain`` in this process left, taken out of
        the pool's memory (a second transaction sharing the chain reads it from the row);
        None if not known."""
        with self._lock:
            return self._heads.pop(chain, None)

    def checkin(self, chain: int, head: Head | None = None) -> None:
        """A transaction no longer holds ``chain``; ``head`` is the head it committed or
        found (None if it does not know it, as after a rollback of its appends)."""
        with self._lock:
            if chain in self._holders:
                self._holders[chain] = max(self._holders[chain] - 1, 0)
                if head is not None:
                    self._heads[chain] = head

    def forget(self, chain: int) -> None:
        """A chain whose head row is gone: made in a transaction that rolled back, or
        deleted (which ``audit verify`` reports where a checkpoint covered it)."""
        with self._lock:
            self._holders.pop(chain, None)
            self._heads.pop(chain, None)

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
    .returning(AuditChain.id, AuditChain.sequence, AuditChain.hash)
)
_MAKE_CHAIN = (
    insert(AuditChain)
    .values(sequence=0, hash=GENESIS, appended_at=bindparam("now"))
    .returning(AuditChain.id)
)


def take_chain(connection: Connection, now: datetime) -> TakenChain:
    """A chain for this process: an abandoned one, or else a new one (whose id the database
    generates, so chains made by different processes never collide)."""
    adopted = connection.execute(
        _ADOPT_CHAIN, {"idle_before": now - ABANDONED_AFTER, "now": now}
    ).first()
    if adopted is not None:
        return TakenChain(int(adopted[0]), Head(int(adopted[1]), str(adopted[2])), made=False)
    made = int(connection.execute(_MAKE_CHAIN, {"now": now}).scalar_one())
    return TakenChain(made, Head(0, GENESIS), made=True)
