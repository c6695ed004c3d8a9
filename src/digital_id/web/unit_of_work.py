"""The request's database session as one unit of work: committed when the page answers,
rolled back when it raises; and the one early commit a page may make (its rate limits)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from digital_id.db.types import utc_now
from digital_id.throttle.limiter import Charge, RateLimitedError
from digital_id.web.services import Services, services

T = TypeVar("T")


def unit_of_work(request: Request) -> Iterator[Session]:
    """The session of a page: what the page wrote is committed once it has its answer (before
    the answer is sent, so a failed commit is answered as an outage), and nothing is kept if
    it raises. A page that answers with an error page (a wrong PIN, a wrong code) commits too:
    failed-attempt counters and audit events must hold."""
    with Session(services(request).engine, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        session.commit()


# scope="function": the commit runs before the response is sent, not after it.
UnitOfWork = Annotated[Session, Depends(unit_of_work, scope="function")]


async def in_unit_of_work(services: Services, work: Callable[[Session], T]) -> T:
    """``work`` in a unit of work as ``UnitOfWork`` gives a page (committed once it has its
    answer, nothing kept if it raises), all of it on one worker thread. A sync route with the
    ``UnitOfWork`` dependency is three hand-offs to the thread pool (opening the session, the
    route, the commit); the machine-to-machine endpoints, the busiest, make one."""
    return await run_in_threadpool(_within_unit_of_work, services, work)


def _within_unit_of_work(services: Services, work: Callable[[Session], T]) -> T:
    with Session(services.engine, expire_on_commit=False) as session:
        try:
            answer = work(session)
        except BaseException:
            session.rollback()
            raise
        session.commit()
        return answer


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the session commits: the logout courier reads in a session of its
    own, so waking it before the queued logouts are committed would find nothing."""
    event.listen(session, "after_commit", lambda _session: action(), once=True)


def commit_charges_early(
    session: Session, services: Services, *charges: Charge
) -> RateLimitedError | None:
    """Charge a page's rate limits and commit them at once, ahead of the unit of work: the
    charges must count even if the page fails later, and no counter row may stay locked
    through the slow work that follows (a PIN hash). A refusal keeps nothing and is
    returned for the page to show."""
    try:
        services.rate_limiter.charge(session, charges, now=utc_now())
    except RateLimitedError as refused:
        session.rollback()
        return refused
    session.commit()  # the one early commit: see the docstring
    return None
