"""The web application: built by ``create_app(settings)``; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from digital_id import __version__
from digital_id.config import Settings, load_settings
from digital_id.db.engine import create_engine_for
from digital_id.db.migrate import ensure_current


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    engine = create_engine_for(settings.database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Refuse to serve a schema this code does not know (the CLI checks first, with a
        # friendlier message; this guards other ways of starting the app).
        ensure_current(engine)
        yield
        engine.dispose()

    app = FastAPI(
        title="Digital ID",
        version=__version__,
        summary="OpenID Connect provider for Indonesia's national digital identity.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is up.")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness: the database answers.")
    def readyz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
