"""The key store: signing keys and server secrets on disk, encrypted, with a lifecycle.

Layout of the keys directory (mode 0700, every file 0600):

* ``manifest.json``: the key-derivation parameters, a passphrase check value, and for each
  key its kid, algorithm, state and timestamps; the names of the secrets. Writing the
  manifest is the commit point of every change: key files are written first, removed after.
* ``<kid>.key``: one private JWK, sealed (see ``envelope.py``).
* ``secret-<name>.key``: one server secret (the PIN pepper, the pairwise-subject secret).

Lifecycle: ``next`` (published, not signing) → ``active`` (signs; one per algorithm) →
``retired`` (published so tokens it signed still verify) → removed by ``prune`` once the
grace period has passed. ``revoke`` removes a key at once, for emergencies.
"""

from __future__ import annotations

import json
import secrets as random_secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Final

from joserfc import jwt
from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey

from digital_id.db.types import utc_now
from digital_id.keys.envelope import DecryptionError, Envelope, KdfParameters
from digital_id.keys.errors import (
    KeyRuleError,
    KeyStoreError,
    WrongPassphraseError,
)
from digital_id.keys.files import ensure_private_directory, exclusive_lock, write_atomic
from digital_id.keys.records import (
    KeyRecord,
    KeyState,
    find_record,
    oldest_next,
    records_in,
    rotation_problem,
)

ALGORITHMS: Final = ("RS256", "PS256", "ES256")
RSA_SIZES: Final = (2048, 3072)
DEFAULT_RSA_SIZE: Final = 3072
SECRET_NAMES: Final = ("pin_pepper", "pairwise_subject", "csrf", "totp", "recognised_browser")
MANIFEST = "manifest.json"
_CHECK_LABEL = "manifest-check"
_CHECK_TEXT = b"digital-id key store"

SigningKey = RSAKey | ECKey
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class KeySnapshot:
    """One consistent view of the published keys, with the private keys loaded."""

    records: tuple[KeyRecord, ...]
    keys: dict[str, SigningKey]

    def active(self, alg: str) -> KeyRecord | None:
        return next((r for r in self.records if r.alg == alg and r.state == KeyState.ACTIVE), None)

    def signing_key(self, alg: str) -> SigningKey:
        record = self.active(alg)
        if record is None:
            raise KeyStoreError(
                f"no active {alg} signing key; run `digital-id keys generate --alg {alg}`"
            )
        return self.keys[record.kid]

    def signing_key_set(self, alg: str) -> KeySet:
        """The active ``alg`` key as a key set (what authlib's token generators sign with),
        built once per snapshot rather than per token."""
        built = self._signing_key_sets.get(alg)
        if built is None:
            built = self._signing_key_sets[alg] = KeySet([self.signing_key(alg)])
        return built

    @cached_property
    def _signing_key_sets(self) -> dict[str, KeySet]:
        return {}

    def sign(
        self, claims: dict[str, Any], alg: str = "RS256", header: dict[str, Any] | None = None
    ) -> str:
        """A signed JWT whose ``kid`` is the key that signed it."""
        key = self.signing_key(alg)
        return jwt.encode(
            {**(header or {}), "alg": alg, "kid": key.kid}, claims, key, algorithms=[alg]
        )

    def public_jwks(self) -> dict[str, Any]:
        """Every published key (next, active, retired), public parameters only."""
        return {"keys": [self.keys[r.kid].as_dict(private=False) for r in self.records]}

    @cached_property
    def public_jwks_json(self) -> bytes:
        """``public_jwks`` as the JWKS endpoint sends it, built once per snapshot."""
        return json.dumps(self.public_jwks(), separators=(",", ":")).encode()

    def verification_keys(self) -> KeySet:
        return self._verification_keys

    @cached_property
    def _verification_keys(self) -> KeySet:
        return KeySet([self.keys[r.kid] for r in self.records])


class KeyStore:
    def __init__(self, directory: Path, passphrase: str, *, clock: Clock = utc_now) -> None:
        self.directory = directory
        self._passphrase = passphrase
        self._clock = clock
        self._envelopes: dict[str, Envelope] = {}

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    # --- reading ---------------------------------------------------------------------------

    def records(self) -> tuple[KeyRecord, ...]:
        manifest = self._read_manifest()
        if manifest is None:
            return ()
        self._envelope(manifest)  # a wrong passphrase fails here, before anything else
        return tuple(KeyRecord.from_dict(k) for k in manifest["keys"])

    def snapshot(self) -> KeySnapshot:
        manifest = self._read_manifest()
        if manifest is None:
            return KeySnapshot((), {})
        envelope = self._envelope(manifest)
        records = tuple(KeyRecord.from_dict(k) for k in manifest["keys"])
        return KeySnapshot(records, {r.kid: self._load_key(envelope, r) for r in records})

    # --- lifecycle -------------------------------------------------------------------------

    def generate(self, alg: str, *, size: int | None = None) -> KeyRecord:
        """Add a key: ``next``, or ``active`` at once if the algorithm has no key yet."""
        key = _new_key(alg, size)
        with self._changing() as (manifest, envelope):
            now = self._clock()
            records = records_in(manifest)
            first = not any(r.alg == alg for r in records)
            record = KeyRecord(
                kid=key.kid or "",
                alg=alg,
                state=KeyState.ACTIVE if first else KeyState.NEXT,
                created_at=now,
                activated_at=now if first else None,
            )
            self._write_sealed(
                envelope,
                f"{record.kid}.key",
                record.kid,
                json.dumps(key.as_dict(private=True)).encode(),
            )
            manifest["keys"].append(record.as_dict())
        return record

    def ensure_active(self, alg: str, *, size: int | None = None) -> KeyRecord | None:
        """Generate a key for ``alg`` if it has none yet (a new store); return it, or None."""
        if any(r.alg == alg and r.state == KeyState.ACTIVE for r in self.records()):
            return None
        return self.generate(alg, size=size)

    def rotation_problem(self, alg: str, *, min_published: timedelta) -> str | None:
        """Why ``rotate(alg)`` without ``force`` would be refused, or None if it would not."""
        _check_algorithm(alg)
        return rotation_problem(list(self.records()), alg, self._clock(), min_published)

    def rotate(
        self, alg: str, *, min_published: timedelta, force: bool = False
    ) -> tuple[KeyRecord, KeyRecord | None]:
        """Promote the oldest ``next`` key to ``active``; the previous active key retires.

        A key must have been published for ``min_published`` (the JWKS cache lifetime) so
        relying parties can have fetched it. ``force`` overrides that, and with no ``next``
        key at all generates one and activates it at once.
        """
        _check_algorithm(alg)
        if force and oldest_next(list(self.records()), alg) is None:
            fresh = self.generate(alg)
            if fresh.state == KeyState.ACTIVE:
                return fresh, None
        with self._changing() as (manifest, _):
            now = self._clock()
            records = records_in(manifest)
            problem = rotation_problem(records, alg, now, min_published)
            if problem is not None and not force:
                raise KeyRuleError(problem)
            promoted = oldest_next(records, alg)
            assert promoted is not None
            previous = next(
                (r for r in records if r.alg == alg and r.state == KeyState.ACTIVE), None
            )
            updated = {promoted.kid: replace(promoted, state=KeyState.ACTIVE, activated_at=now)}
            if previous is not None:
                updated[previous.kid] = replace(previous, state=KeyState.RETIRED, retired_at=now)
            manifest["keys"] = [updated.get(r.kid, r).as_dict() for r in records]
        return updated[promoted.kid], updated.get(previous.kid) if previous else None

    def retire(self, kid: str) -> KeyRecord:
        """Stop publishing a ``next`` key for signing; an active key retires only by rotation."""
        with self._changing() as (manifest, _):
            records = records_in(manifest)
            record = find_record(records, kid)
            if record.state == KeyState.ACTIVE:
                raise KeyRuleError(
                    f"key {kid} is the active {record.alg} key; retiring it would leave {record.alg} "
                    f"without one. Use `digital-id keys rotate --alg {record.alg}` instead"
                )
            if record.state == KeyState.RETIRED:
                return record
            retired = replace(record, state=KeyState.RETIRED, retired_at=self._clock())
            manifest["keys"] = [(retired if r.kid == kid else r).as_dict() for r in records]
        return retired

    def prune(self, grace: timedelta) -> list[KeyRecord]:
        """Remove retired keys whose grace period has passed; return them."""
        with self._changing() as (manifest, _):
            now = self._clock()
            records = records_in(manifest)
            removed = [
                r
                for r in records
                if r.state == KeyState.RETIRED and (r.removable_after(grace) or now) <= now
            ]
            manifest["keys"] = [r.as_dict() for r in records if r not in removed]
        self._delete_key_files(removed)
        return removed

    def revoke(self, kid: str) -> tuple[KeyRecord, KeyRecord | None]:
        """Unpublish a key now (it is compromised). An active key is replaced at once."""
        record = find_record(list(self.records()), kid)
        replacement: KeyRecord | None = None
        if record.state == KeyState.ACTIVE:
            replacement, _ = self.rotate(record.alg, min_published=timedelta(0), force=True)
        with self._changing() as (manifest, _):
            records = records_in(manifest)
            find_record(records, kid)
            manifest["keys"] = [r.as_dict() for r in records if r.kid != kid]
        self._delete_key_files([record])
        return record, replacement

    # --- secrets ---------------------------------------------------------------------------

    def secret(self, name: str) -> bytes:
        """A 32-byte server secret, created (once, under the lock) on first use."""
        if name not in SECRET_NAMES:
            raise KeyStoreError(f"unknown secret {name!r}")
        manifest = self._read_manifest()
        if manifest is not None and name in manifest.get("secrets", {}):
            return self._envelope(manifest).open(self._read_sealed(f"secret-{name}.key"), name)
        with self._changing() as (manifest, envelope):
            if name not in manifest["secrets"]:
                self._write_sealed(
                    envelope, f"secret-{name}.key", name, random_secrets.token_bytes(32)
                )
                manifest["secrets"][name] = self._clock().isoformat()
        return self.secret(name)

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _changing(self) -> Iterator[tuple[dict[str, Any], Envelope]]:
        """Read-modify-write the manifest under the lock; write it only if the block succeeds."""
        ensure_private_directory(self.directory)
        with exclusive_lock(self.directory / ".lock"):
            for stale in self.directory.glob(".*.tmp"):  # left by a writer that crashed
                stale.unlink(missing_ok=True)
            existing = self._read_manifest()
            manifest = existing or self._new_manifest()
            envelope = self._envelope(manifest)
            if existing is not None:  # without a manifest, key files are evidence, not orphans
                self._delete_orphans(existing)
            before = json.dumps(manifest, sort_keys=True)
            yield manifest, envelope
            if json.dumps(manifest, sort_keys=True) != before or not self.manifest_path.exists():
                manifest["generation"] = manifest.get("generation", 0) + 1
                write_atomic(self.manifest_path, json.dumps(manifest, indent=2).encode("utf-8"))

    def _new_manifest(self) -> dict[str, Any]:
        kdf = KdfParameters.fresh()
        envelope = Envelope(self._passphrase, kdf)
        self._envelopes[kdf.salt] = envelope
        return {
            "format": 1,
            "kdf": kdf.as_dict(),
            "check": envelope.seal(_CHECK_TEXT, _CHECK_LABEL),
            "generation": 0,
            "keys": [],
            "secrets": {},
        }

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            data = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest: dict[str, Any] = json.loads(data)
        except json.JSONDecodeError as exc:
            raise KeyStoreError(
                f"{self.manifest_path} is not valid JSON ({exc.msg}); restore it from backup"
            ) from None
        return manifest

    def _envelope(self, manifest: dict[str, Any]) -> Envelope:
        kdf = manifest["kdf"]
        envelope = self._envelopes.get(kdf["salt"])
        if envelope is None:
            envelope = Envelope(
                self._passphrase, KdfParameters(kdf["salt"], kdf["n"], kdf["r"], kdf["p"])
            )
            try:
                envelope.open(manifest["check"], _CHECK_LABEL)
            except DecryptionError:
                raise WrongPassphraseError(
                    f"DIGITAL_ID_KEYS_PASSPHRASE does not open the key store in {self.directory} "
                    "(it was created with a different passphrase)"
                ) from None
            self._envelopes[kdf["salt"]] = envelope
        return envelope

    def _write_sealed(
        self, envelope: Envelope, filename: str, label: str, plaintext: bytes
    ) -> None:
        body = {"format": 1, "label": label, "sealed": envelope.seal(plaintext, label)}
        write_atomic(self.directory / filename, json.dumps(body).encode("utf-8"))

    def _read_sealed(self, filename: str) -> str:
        path = self.directory / filename
        try:
            sealed: str = json.loads(path.read_bytes())["sealed"]
        except FileNotFoundError:
            raise KeyStoreError(
                f"{path} is listed in the manifest but missing; restore it from backup"
            ) from None
        return sealed

    def _load_key(self, envelope: Envelope, record: KeyRecord) -> SigningKey:
        try:
            jwk = json.loads(envelope.open(self._read_sealed(f"{record.kid}.key"), record.kid))
        except DecryptionError:
            raise KeyStoreError(
                f"key file {record.kid}.key does not decrypt; it was altered or swapped"
            ) from None
        key: SigningKey = ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)
        if key.thumbprint() != record.kid:
            raise KeyStoreError(
                f"key file {record.kid}.key holds a different key; restore it from backup"
            )
        return key

    def _delete_orphans(self, manifest: dict[str, Any]) -> None:
        """Key files no manifest lists: a writer crashed after writing one and before its
        manifest (the commit point). Under the lock no live writer can own one."""
        listed = {f"{k['kid']}.key" for k in manifest["keys"]}
        listed |= {f"secret-{name}.key" for name in SECRET_NAMES}
        for path in self.directory.glob("*.key"):
            if path.name not in listed:
                path.unlink(missing_ok=True)

    def _delete_key_files(self, records: list[KeyRecord]) -> None:
        for record in records:
            (self.directory / f"{record.kid}.key").unlink(missing_ok=True)


def _new_key(alg: str, size: int | None) -> SigningKey:
    _check_algorithm(alg)
    parameters: KeyParameters = {"alg": alg, "use": "sig"}
    key: SigningKey
    if alg == "ES256":
        if size is not None:
            raise KeyStoreError("--size applies to RSA keys (RS256, PS256) only")
        key = ECKey.generate_key("P-256", parameters=parameters, private=True)
    else:
        size = size or DEFAULT_RSA_SIZE
        if size not in RSA_SIZES:
            raise KeyStoreError(f"RSA keys are {' or '.join(map(str, RSA_SIZES))} bits, not {size}")
        key = RSAKey.generate_key(size, parameters=parameters, private=True)
    key.ensure_kid()  # the RFC 7638 thumbprint
    return key


def _check_algorithm(alg: str) -> None:
    if alg not in ALGORITHMS:
        raise KeyStoreError(f"unsupported algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")
