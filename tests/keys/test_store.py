"""The key store on disk: lifecycle, safety rules, crash safety, permissions, passphrase."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from joserfc import jwt

from digital_id.keys import (
    KeyRuleError,
    KeyState,
    KeyStore,
    KeyStoreError,
    UnknownKeyError,
    WrongPassphraseError,
)
from tests.conftest import TEST_PASSPHRASE

CACHE = timedelta(hours=1)
GRACE = timedelta(hours=2)


def states(store: KeyStore) -> dict[str, str]:
    return {r.kid: r.state.value for r in store.records()}


def test_first_key_of_an_algorithm_is_active_at_once_later_ones_next(key_store):
    first = key_store.generate("RS256", size=2048)
    second = key_store.generate("RS256", size=2048)
    other = key_store.generate("ES256")
    assert (first.state, second.state, other.state) == (
        KeyState.ACTIVE,
        KeyState.NEXT,
        KeyState.ACTIVE,
    )
    assert first.activated_at == first.created_at


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256"])
def test_the_kid_in_a_signed_token_is_the_key_that_signed_it(key_store, alg):
    record = key_store.generate(alg, size=None if alg == "ES256" else 2048)
    snapshot = key_store.snapshot()
    token = snapshot.sign({"iss": "https://id.example"}, alg)
    header = jwt.decode(token, snapshot.verification_keys(), algorithms=[alg]).header
    assert header["kid"] == record.kid
    assert header["alg"] == alg
    published = {k["kid"]: k for k in snapshot.public_jwks()["keys"]}
    assert published[record.kid]["alg"] == alg
    assert published[record.kid]["use"] == "sig"


def test_published_keys_never_carry_private_parameters(key_store):
    key_store.generate("RS256", size=2048)
    key_store.generate("ES256")
    for key in key_store.snapshot().public_jwks()["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_rotate_refuses_a_key_published_for_less_than_the_jwks_cache_lifetime(key_store, clock):
    key_store.generate("RS256", size=2048)
    waiting = key_store.generate("RS256", size=2048)
    clock.advance(minutes=59)
    with pytest.raises(
        KeyRuleError, match="published for 59 min, less than the JWKS cache lifetime"
    ):
        key_store.rotate("RS256", min_published=CACHE)
    assert states(key_store)[waiting.kid] == "next"


def test_rotate_promotes_the_oldest_next_key_and_retires_the_active_one(key_store, clock):
    first = key_store.generate("RS256", size=2048)
    oldest = key_store.generate("RS256", size=2048)
    clock.advance(minutes=5)
    newer = key_store.generate("RS256", size=2048)
    clock.advance(hours=1)

    active, retired = key_store.rotate("RS256", min_published=CACHE)

    assert (active.kid, retired.kid if retired else None) == (oldest.kid, first.kid)
    assert states(key_store) == {first.kid: "retired", oldest.kid: "active", newer.kid: "next"}
    assert key_store.snapshot().active("RS256").kid == oldest.kid


def test_rotate_without_a_next_key_needs_force_then_generates_one(key_store):
    first = key_store.generate("RS256", size=2048)
    with pytest.raises(KeyRuleError, match="no next RS256 key to promote"):
        key_store.rotate("RS256", min_published=CACHE)
    active, retired = key_store.rotate("RS256", min_published=CACHE, force=True)
    assert retired is not None
    assert retired.kid == first.kid
    assert active.kid != first.kid


def test_force_activates_a_freshly_published_key(key_store):
    key_store.generate("ES256")
    waiting = key_store.generate("ES256")
    active, _ = key_store.rotate("ES256", min_published=CACHE, force=True)
    assert active.kid == waiting.kid


def test_retiring_the_active_key_is_refused(key_store):
    active = key_store.generate("ES256")
    with pytest.raises(KeyRuleError, match="would leave ES256 without one"):
        key_store.retire(active.kid)
    assert states(key_store)[active.kid] == "active"


def test_a_retired_next_key_stays_published_until_pruned(key_store, clock, keys_dir):
    key_store.generate("ES256")
    spare = key_store.generate("ES256")
    key_store.retire(spare.kid)
    assert spare.kid in {k["kid"] for k in key_store.snapshot().public_jwks()["keys"]}
    clock.advance(hours=1)
    assert key_store.prune(GRACE) == []
    clock.advance(hours=1, seconds=1)
    assert [r.kid for r in key_store.prune(GRACE)] == [spare.kid]
    assert spare.kid not in states(key_store)
    assert not (keys_dir / f"{spare.kid}.key").exists()


def test_revoke_unpublishes_at_once_and_replaces_an_active_key(key_store, keys_dir):
    compromised = key_store.generate("ES256")
    revoked, replacement = key_store.revoke(compromised.kid)
    assert revoked.kid == compromised.kid
    assert replacement is not None
    assert replacement.state == KeyState.ACTIVE
    assert states(key_store) == {replacement.kid: "active"}
    assert not (keys_dir / f"{compromised.kid}.key").exists()


def test_unknown_kid_algorithm_and_size_are_clear_errors(key_store):
    with pytest.raises(UnknownKeyError, match="no key with kid nope"):
        key_store.retire("nope")
    with pytest.raises(KeyStoreError, match="unsupported algorithm 'HS256'"):
        key_store.generate("HS256")
    with pytest.raises(KeyStoreError, match="RSA keys are 2048 or 3072 bits, not 1024"):
        key_store.generate("RS256", size=1024)


def test_files_are_private_to_the_service_user(key_store, keys_dir):
    key_store.generate("ES256")
    key_store.secret("pin_pepper")
    assert oct(keys_dir.stat().st_mode & 0o777) == "0o700"
    for path in keys_dir.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600", path.name


def test_private_keys_and_secrets_are_encrypted_at_rest(key_store, keys_dir):
    record = key_store.generate("ES256")
    secret = key_store.secret("pairwise_subject")
    private_d = key_store.snapshot().keys[record.kid].as_dict(private=True)["d"]
    for path in keys_dir.iterdir():
        content = path.read_bytes()
        assert private_d.encode() not in content
        assert secret not in content


def test_an_existing_open_directory_is_made_private(keys_dir, clock):
    keys_dir.mkdir(mode=0o755)
    KeyStore(keys_dir, TEST_PASSPHRASE, clock=clock).generate("ES256")
    assert oct(keys_dir.stat().st_mode & 0o777) == "0o700"


def test_a_wrong_passphrase_is_a_clear_error(key_store, keys_dir):
    key_store.generate("ES256")
    with pytest.raises(
        WrongPassphraseError, match="DIGITAL_ID_KEYS_PASSPHRASE does not open the key store"
    ):
        KeyStore(keys_dir, "not-the-passphrase-at-all").snapshot()


def test_secrets_are_created_once_and_stay_the_same(key_store, keys_dir):
    pepper = key_store.secret("pin_pepper")
    assert len(pepper) == 32
    assert KeyStore(keys_dir, TEST_PASSPHRASE).secret("pin_pepper") == pepper
    assert key_store.secret("pairwise_subject") != pepper


def test_a_crash_between_write_and_rename_leaves_the_previous_key_set(
    key_store, keys_dir, monkeypatch
):
    kept = key_store.generate("ES256")
    real_replace = os.replace

    def crash_on_manifest(source, target):
        if str(target).endswith("manifest.json"):
            raise SystemExit("power cut")  # the process dies after writing the temp file
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_manifest)
    with pytest.raises(SystemExit):
        key_store.generate("ES256")
    monkeypatch.setattr(os, "replace", real_replace)

    reopened = KeyStore(keys_dir, TEST_PASSPHRASE)
    assert states(reopened) == {kept.kid: "active"}
    assert reopened.snapshot().signing_key("ES256").kid == kept.kid
    assert not list(keys_dir.glob(".*.tmp"))
    reopened.generate("ES256")  # and the store keeps working
    assert len(reopened.records()) == 2


def test_two_processes_changing_the_store_at_once_lose_nothing(keys_dir):
    program = (
        "import sys; from pathlib import Path; from digital_id.keys import KeyStore\n"
        "store = KeyStore(Path(sys.argv[1]), sys.argv[2])\n"
        "for _ in range(4): store.generate('ES256')\n"
    )
    KeyStore(keys_dir, TEST_PASSPHRASE).generate("ES256")  # create the store first
    processes = [
        subprocess.Popen([sys.executable, "-c", program, str(keys_dir), TEST_PASSPHRASE])
        for _ in range(3)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0]
    records = KeyStore(keys_dir, TEST_PASSPHRASE).records()
    assert len(records) == 13
    assert len(list(keys_dir.glob("*.key"))) == 13
    assert [r.state for r in records].count(KeyState.ACTIVE) == 1
