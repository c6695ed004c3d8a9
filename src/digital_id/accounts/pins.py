"""PIN rules and PIN hashing.

A PIN is six digits, so it is guessable offline from its hash alone; the pepper (kept in the
key store, not the database) makes a database dump useless on its own: the hash is argon2id
over HMAC-SHA256(pepper, PIN).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

PIN_LENGTH = 6


class InvalidPinError(ValueError):
    """The chosen PIN breaks a rule; ``rule`` names it for the page's message catalogue."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def check_pin_rules(pin: str, *, birth_date: date) -> None:
    if len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        raise InvalidPinError("format", "the PIN must be exactly 6 digits")
    if len(set(pin)) == 1:
        raise InvalidPinError("repeated", "the PIN must not be one digit repeated")
    if pin in "0123456789" or pin in "9876543210":
        raise InvalidPinError(
            "sequence", "the PIN must not be a straight run such as 123456 or 654321"
        )
    if pin == birth_date.strftime("%d%m%y"):
        raise InvalidPinError("birth_date", "the PIN must not be your birth date")


def check_chosen_pin(pin: str, confirmation: str, *, birth_date: date) -> None:
    """A PIN the citizen chose, typed twice: the two must match, and the PIN keep the rules."""
    if pin != confirmation:
        raise InvalidPinError("mismatch", "the two PINs are not the same")
    check_pin_rules(pin, birth_date=birth_date)


class PinHasher:
    """argon2id over the peppered PIN, computed on at most ``concurrency`` threads (one per
    core by default) whichever thread asks.

    Each hash takes ``memory_kib`` (19 MiB in production) for its duration, and the C
    allocator keeps such a block in the arena of the thread that freed it for that thread's
    next use. A server worker answers requests on up to 40 threads: letting each hash on its
    own thread grew a worker past 300 MB after a minute of logins. On a few threads of their
    own the hashes reuse a few blocks; more hashes at once than cores would not finish
    sooner anyway, as each keeps a core busy (argon2-cffi releases the GIL)."""

    def __init__(
        self,
        pepper: bytes,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int = 1,
        concurrency: int | None = None,
    ) -> None:
        self._pepper = pepper
        self._argon2 = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._threads = ThreadPoolExecutor(
            max_workers=concurrency or os.cpu_count() or 1, thread_name_prefix="argon2"
        )
        # Verified against when there is no account, so a wrong NIK costs what a wrong PIN does.
        self._dummy_hash = self.hash("000000")

    def hash(self, pin: str) -> str:
        return self._threads.submit(self._argon2.hash, self._peppered(pin)).result()

    def verify(self, stored_hash: str | None, pin: str) -> bool:
        try:
            return (
                self._threads.submit(
                    self._argon2.verify, stored_hash or self._dummy_hash, self._peppered(pin)
                ).result()
                and stored_hash is not None
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._argon2.check_needs_rehash(stored_hash)

    def _peppered(self, pin: str) -> bytes:
        return hmac.new(self._pepper, pin.encode("utf-8"), hashlib.sha256).digest()
