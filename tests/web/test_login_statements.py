"""A complete login (authorize, PIN login, consent, code exchange) stays within its statement
budget, step by step, on the real app and database; no step reads the same record twice, and
no connection checkout costs a round trip of its own."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from digital_id.config import Settings
from tests.web.conftest import Provider, pkce_pair, query_of

# Each step's statements on PostgreSQL, where they come from (no purge: rows nobody needs any
# more are the housekeeping job's, web.housekeeping):
BUDGETS = {
    # whether the nonce was used before (the agency's registration is in the process's cache,
    # as it is for any agency a serving process has seen in the last second; the first flow
    # of an agency new to the process reads it once more: see the test below)
    "authorize": 1,
    # the rate-limit charge (committed early); the citizen with their account, the recognised
    # browser the cookie names, the one rule's facts and their consent to the agency, in one
    # statement (accounts.pin_login); the new recognised browser; the session; the audit (the
    # nonce is asked only if this step answers the agency: oidc.authorization)
    "login": 5,
    # the session with its citizen, the one rule's facts and the consent row for the agency
    # (accounts.session_standing); the nonce; the consent's insert or update; its receipt;
    # the grant with its code (one INSERT under a WITH, grants.codes.create_grant_with_code);
    # the audit
    "consent": 6,
    # the code redeemed, returning its grant (UPDATE … FROM … RETURNING); the grant's
    # standing in one joined read (its agency, the citizen, the one rule's facts, the
    # consent, and the session with its sid: accounts.grant_standing); the audit
    "token": 3,
}
# SQLite writes a transaction's audit events in two statements where PostgreSQL needs one,
# inserts a grant and its code apart (it has no INSERT inside a WITH), and reads the redeemed
# code's grant apart (its RETURNING may not name an UPDATE's FROM table).
EXTRA = {
    "postgresql": dict.fromkeys(BUDGETS, 0),
    "sqlite": {"authorize": 0, "login": 1, "consent": 2, "token": 2},
}


# The server's own threads, whose rounds may fall within a step (the rate limits' round is
# every half second).
BACKGROUND = {"logout-courier", "rate-limit-sync", "audit-checkpoints", "housekeeping"}


class Statements:
    """The statements the app's requests run (not the background threads' rounds), and the
    pool's pre-pings, per step."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self.steps: dict[str, list[str]] = {}
        self.pings: dict[str, int] = {}
        self._step: str | None = None
        event.listen(engine, "before_cursor_execute", self._count)
        ping = engine.dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            if self._step is not None:
                self.pings[self._step] += 1
            return bool(ping(dbapi_connection))

        monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)

    def _count(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self._step is not None and threading.current_thread().name not in BACKGROUND:
            self.steps[self._step].append(statement)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.steps[name], self.pings[name] = [], 0
        self._step = name
        try:
            yield
        finally:
            self._step = None

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Client registrations cached as a server caches them (the other web tests re-read them
    on every request, to see changes they make in SQL at once); here the registry's version
    is checked once a minute rather than every second, so that the check, one statement per
    second per process, cannot fall within a counted step on a slow machine."""
    return settings.model_copy(update={"clients_reload_seconds": 60})


@pytest.fixture
def statements(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> Iterator[Statements]:
    counter = Statements(provider.http.app.state.services.engine, monkeypatch)
    yield counter
    counter.close()


# The budget for a whole flow (part 3 of 6): at most 15 statements.
FLOW_BUDGET = 15


def _complete_login(provider: Provider, statements: Statements, agency: Any = None) -> None:
    citizen = provider.citizen()
    agency = agency or provider.agency()
    verifier, challenge = pkce_pair()
    run: Callable[[str, Callable[[], httpx.Response]], httpx.Response]

    def run(name: str, request: Callable[[], httpx.Response]) -> httpx.Response:
        with statements.step(name):
            return request()

    page = run(
        "authorize",
        lambda: provider.authorize(agency, code_challenge=challenge, code_challenge_method="S256"),
    )
    page = run("login", lambda: provider.log_in(page, citizen["nik"]))
    answer = run("consent", lambda: provider.decide(page))
    code = query_of(answer.headers["location"])["code"]
    response = run("token", lambda: provider.token(agency, code, verifier))
    assert response.status_code == 200, response.text


def _reads_of(table: str, step: list[str]) -> int:
    """How many statements load ``table``'s rows (the one rule's own check, which selects a
    few columns of the citizen's, is not a load of the record)."""
    return sum(1 for statement in step if re.match(rf"SELECT {table}\.id, ", statement))


def test_each_step_of_a_complete_login_stays_within_its_statement_budget(
    provider, statements, database_url
):
    # The first audited transaction of a process makes the audit chain it then reuses, and
    # the agency's first request puts its registration in the cache; the budget is a flow's
    # in a process already serving that agency (each step's count is the last flow's).
    agency = provider.agency()
    _complete_login(provider, statements, agency)
    provider.http.cookies.clear()  # a second citizen, in a browser of their own
    _complete_login(provider, statements, agency)
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    counts = {name: len(step) for name, step in statements.steps.items()}
    budgets = {name: budget + EXTRA[backend][name] for name, budget in BUDGETS.items()}
    assert all(counts[name] <= budgets[name] for name in BUDGETS), (counts, budgets)
    assert sum(counts.values()) <= sum(budgets.values())
    if backend == "postgresql":
        assert sum(counts.values()) <= FLOW_BUDGET, counts


def test_an_agency_new_to_the_process_costs_its_first_flow_one_read_of_its_registration(
    provider, statements
):
    _complete_login(provider, statements)  # the audit chain's first use, and the cache's
    provider.http.cookies.clear()
    _complete_login(provider, statements)  # an agency this process has not seen
    clients = [s for s in statements.steps["authorize"] if s.startswith("SELECT clients.")]
    assert len(clients) == 1
    assert len(statements.steps["authorize"]) == BUDGETS["authorize"] + 1


def test_no_step_of_a_login_reads_the_client_consent_or_citizen_twice(provider, statements):
    _complete_login(provider, statements)
    for name, step in statements.steps.items():
        for table in ("clients", "consents", "citizens"):
            assert _reads_of(table, step) <= 1, (name, table, step)


def test_a_connection_checkout_costs_no_round_trip(provider, statements):
    _complete_login(provider, statements)
    assert statements.pings == dict.fromkeys(BUDGETS, 0)


def test_no_step_of_a_login_purges_anything(provider, statements):
    # Rows nobody needs any more are the housekeeping job's (web.housekeeping), not a request's.
    _complete_login(provider, statements)
    for name, step in statements.steps.items():
        assert not [statement for statement in step if statement.startswith("DELETE")], name
