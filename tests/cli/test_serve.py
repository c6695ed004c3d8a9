"""``digital-id serve``: how it refuses to start."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from tests.conftest import TEST_PASSPHRASE


def test_serve_with_workers_refuses_a_port_another_program_listens_on(database_url, keys_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environment = {
            name: value for name, value in os.environ.items() if not name.startswith("DIGITAL_ID_")
        } | {
            "DIGITAL_ID_DATABASE_URL": database_url,
            "DIGITAL_ID_KEYS_DIR": str(keys_dir),
            "DIGITAL_ID_KEYS_PASSPHRASE": TEST_PASSPHRASE,
            "DIGITAL_ID_METRICS_ENABLED": "false",
        }
        result = subprocess.run(
            [sys.executable, "-m", "digital_id", "serve", "--workers", "2", "--port", str(port)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
