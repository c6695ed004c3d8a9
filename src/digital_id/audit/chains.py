"""Each process's pool of audit chains, so concurrent transactions append to different chains.

A transaction that records events takes a chain from its process's pool as it appends
(at commit, or at once inside a savepoint) and gives it back when it ends. A chain nobody
in the process holds is reused; when all are held a new chain is made, a new head row whose
id the database generates, so chains never collide between processes or servers. The head
row is still locked for each append, so a chain stays one line even if two processes were
ever to share it (a pool with a ``limit`` does so on purpose, to bound how many chains a
process makes: with ``limit=1`` every transaction of the process queues on one chain, as the
single-chain trail did).

A process that ends leaves its chains behind, complete: they simply grow no further.
"""

from __future__ import annotations

import threading
import weakref

from sqlalchemy import Engine


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
