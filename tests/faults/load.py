"""Citizens logging in over and over through a real server while a test breaks something,
with every response (or connection failure) recorded and timed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.web.conftest import Agency, Provider

OFFLINE = "openid profile offline_access"


@dataclass(frozen=True)
class Exchange:
    at: float  # time.monotonic() when the request was sent
    seconds: float
    method: str
    path: str
    status: int | None  # None: the connection failed
    body: str = ""  # kept for server errors and outage answers only
    retry_after: str | None = None


class RecordingClient(httpx.Client):
    """An httpx client that records every exchange in a shared list."""

    def __init__(self, log: list[Exchange], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exchanges = log

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        try:
            response = super().send(request, **kwargs)
        except httpx.TransportError:
            self._record(started, request, None)
            raise
        self._record(started, request, response)
        return response

    def _record(
        self, started: float, request: httpx.Request, response: httpx.Response | None
    ) -> None:
        status = response.status_code if response is not None else None
        body = response.text[:4000] if response is not None and response.status_code >= 500 else ""
        self.exchanges.append(
            Exchange(
                started,
                time.monotonic() - started,
                request.method,
                request.url.path,
                status,
                body,
                response.headers.get("retry-after") if response is not None else None,
            )
        )


@dataclass
class Load:
    """``browsers`` threads, each a citizen logging in to ``agency`` and calling UserInfo,
    again and again; a flow broken by the fault is abandoned and the next one started."""

    base_url: str
    arranging: dict[str, Any]
    agency: Agency
    niks: list[str]
    exchanges: list[Exchange] = field(default_factory=list)
    completed: list[float] = field(default_factory=list)  # when each whole flow finished
    _stop: threading.Event = field(default_factory=threading.Event)

    def browser(self) -> Provider:
        client = RecordingClient(self.exchanges, base_url=self.base_url, timeout=10)
        return Provider(client, **self.arranging)  # type: ignore[arg-type]

    def flow(self, browser: Provider, nik: str) -> None:
        tokens = browser.tokens_for(self.agency, nik, scope=OFFLINE)
        assert browser.userinfo(tokens["access_token"]).status_code == 200
        self.completed.append(time.monotonic())

    def _run(self, nik: str) -> None:
        while not self._stop.is_set():
            browser = self.browser()  # a fresh browser each time: a full login every flow
            try:
                self.flow(browser, nik)
            except (AssertionError, httpx.HTTPError, KeyError):
                time.sleep(0.05)  # broken by the fault; start again
            finally:
                browser.http.close()

    @contextmanager
    def running(self) -> Iterator[Load]:
        threads = [
            threading.Thread(target=self._run, args=(nik,), daemon=True) for nik in self.niks
        ]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(30)
        assert not any(thread.is_alive() for thread in threads), "a load thread hung"

    def between(self, start: float, end: float) -> list[Exchange]:
        return [e for e in self.exchanges if start <= e.at < end]

    def completed_between(self, start: float, end: float) -> int:
        return sum(1 for moment in self.completed if start <= moment < end)
