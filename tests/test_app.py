import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digital_id.app import create_app
from digital_id.config import load_settings

OPENAPI_DOCUMENT = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


@pytest.fixture
def client(database_url):
    with TestClient(create_app(load_settings(database_url=database_url))) as client:
        yield client


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}


def test_committed_openapi_document_matches_the_app():
    """`openapi/openapi.json` is regenerated with `python -m digital_id.openapi` when routes change."""
    app = create_app(load_settings(database_url="sqlite:///:memory:"))
    assert json.loads(OPENAPI_DOCUMENT.read_text()) == app.openapi()
