"""A rotation killed between any two of its file-system steps leaves a usable key set: the
store opens, RS256 signs, the JWKS is valid and verifies what it signs, and rotating again
works.

The rotation (generate the next key, then promote it) runs in a child process whose ``os``
functions for the steps that change the disk (fsync, rename, unlink) count their calls and
SIGKILL the process just before the Nth; every N the rotation reaches is tried. No hook in
the key store: the kill is real, at every point between steps.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import KeySet

from digital_id.keys import KeyStore
from tests.conftest import TEST_PASSPHRASE

ROTATION = """
import os, signal, sys
from datetime import timedelta
from pathlib import Path

kill_before = int(sys.argv[2])
steps = 0


def counted(step):
    def run(*args, **kwargs):
        global steps
        steps += 1
        if steps == kill_before:
            os.kill(os.getpid(), signal.SIGKILL)
        return step(*args, **kwargs)
    return run


for name in ("fsync", "replace", "rename", "unlink"):
    setattr(os, name, counted(getattr(os, name)))

from digital_id.keys import KeyStore

store = KeyStore(Path(sys.argv[1]), sys.argv[3])
store.generate("RS256", size=2048)
store.rotate("RS256", min_published=timedelta(0))
print(steps)
"""


def _rotate_in_child(directory: Path, kill_before: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ROTATION, str(directory), str(kill_before), TEST_PASSPHRASE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_rotation_killed_between_any_two_steps_leaves_a_usable_key_set(tmp_path):
    template = tmp_path / "template"
    original = KeyStore(template, TEST_PASSPHRASE).generate("RS256", size=2048)

    dry_run = _rotate_in_child(shutil.copytree(template, tmp_path / "dry-run"), 0)
    assert dry_run.returncode == 0, dry_run.stderr
    steps = int(dry_run.stdout.strip())
    assert steps >= 6  # two atomic writes at least, each a write, a rename and fsyncs

    for kill_before in range(1, steps + 1):
        directory = shutil.copytree(template, tmp_path / f"killed-before-step-{kill_before}")
        killed = _rotate_in_child(directory, kill_before)
        assert killed.returncode == -9, (kill_before, killed.stderr)

        store = KeyStore(directory, TEST_PASSPHRASE)
        snapshot = store.snapshot()
        active = snapshot.active("RS256")
        assert active is not None, kill_before
        # Whether the rotation committed or not, the old key is still published (retired
        # at most), so what it signed still verifies.
        assert original.kid in {r.kid for r in snapshot.records}, kill_before
        published = KeySet.import_key_set(snapshot.public_jwks())
        assert all(not key.is_private for key in published.keys), kill_before
        token = snapshot.sign({"sub": "fault-test"}, "RS256")
        assert jwt.decode(token, published, algorithms=["RS256"]).claims["sub"] == "fault-test"

        # And the next rotation, by a process that is not killed, completes.
        store.generate("RS256", size=2048)
        rotated, retired = store.rotate("RS256", min_published=timedelta(0))
        assert retired is not None
        assert retired.kid == active.kid, kill_before
        assert KeyStore(directory, TEST_PASSPHRASE).snapshot().active("RS256") == rotated
        assert not list(directory.glob(".*.tmp")), "a crashed writer's temp file was left"
        listed = {f"{r.kid}.key" for r in store.records()}
        assert {p.name for p in directory.glob("*.key") if not p.name.startswith("secret-")} == (
            listed
        ), "a crashed writer's key file was left"
