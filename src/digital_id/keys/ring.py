"""A running server's view of the key store, refreshed when the CLI changes it.

Every worker process holds its own ring. At most every ``check_interval`` seconds a request
stats the manifest (cheap); only when it has changed (a rename gives it a new inode) does the
worker decrypt the keys again. So a `digital-id keys ...` change reaches every worker within
a few seconds, with no restart and no coordination between workers.
"""

from __future__ import annotations

import os
import threading
import time

from digital_id.keys.errors import KeyStoreError
from digital_id.keys.store import KeySnapshot, KeyStore


class KeyRing:
    def __init__(self, store: KeyStore, *, check_interval: float = 2.0) -> None:
        self.store = store
        self.check_interval = check_interval
        self._lock = threading.Lock()
        self._snapshot: KeySnapshot | None = None
        self._signature: tuple[int, int, int] | None = None
        self._checked_at = 0.0

    def current(self) -> KeySnapshot:
        now = time.monotonic()
        if self._snapshot is not None and now - self._checked_at < self.check_interval:
            return self._snapshot
        with self._lock:
            if self._snapshot is None or now - self._checked_at >= self.check_interval:
                signature = self._manifest_signature()
                if self._snapshot is None or signature != self._signature:
                    self._snapshot = self._load()
                    self._signature = signature
                self._checked_at = now
            return self._snapshot

    def fresh(self) -> KeySnapshot | None:
        """The snapshot held while no look at the store is due; None when ``current()`` would
        stat the manifest and perhaps decrypt the keys (scrypt), which an event loop must hand
        to a thread."""
        if self._snapshot is not None and time.monotonic() - self._checked_at < self.check_interval:
            return self._snapshot
        return None

    def _load(self) -> KeySnapshot:
        try:
            return self.store.snapshot()
        except KeyStoreError:
            # A prune or revoke in another process can remove a key file between our reading
            # the manifest and the file; the manifest that removed it is on disk by now.
            return self.store.snapshot()

    def _manifest_signature(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.store.manifest_path)
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size
