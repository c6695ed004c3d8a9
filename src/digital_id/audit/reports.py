"""What an agency received, from the trail: the semester report a data-sharing agreement asks
of the agency (releases by claim and month, distinct citizens), generated from the
``claims:released`` events instead of written by the agency."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit.models import AuditEvent
from digital_id.db.types import WIB


@dataclass
class ReleaseReport:
    """Releases to one agency since a time: per month (WIB) and claim, how many releases
    and how many distinct citizens; and the distinct citizens over the whole period."""

    client_id: str
    since: datetime
    releases: Counter[tuple[str, str]] = field(default_factory=Counter)
    citizens: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    everyone: set[str] = field(default_factory=set)
    events: int = 0

    def rows(self) -> list[dict[str, str | int]]:
        """One row per (month, claim), in order, then the whole period's total."""
        rows: list[dict[str, str | int]] = [
            {"month": month, "claim": claim, "releases": count,
             "citizens": len(self.citizens[month, claim])}
            for (month, claim), count in sorted(self.releases.items())
        ]  # fmt: skip
        rows.append(
            {
                "month": "total",
                "claim": "*",
                "releases": self.events,
                "citizens": len(self.everyone),
            }
        )
        return rows


def releases_report(session: Session, client_id: str, *, since: datetime) -> ReleaseReport:
    """Every release to ``client_id`` (at the token endpoint and at UserInfo) since
    ``since``, counted; citizens are counted by their internal reference, never named."""
    report = ReleaseReport(client_id, since)
    events = session.execute(
        select(AuditEvent.occurred_at, AuditEvent.subject, AuditEvent.details)
        .where(
            AuditEvent.tag == "claims:released",
            AuditEvent.client_id == client_id,
            AuditEvent.occurred_at >= since,
        )
        .order_by(AuditEvent.occurred_at)
        .execution_options(yield_per=1000)
    )
    for occurred_at, subject, details in events:
        month = occurred_at.astimezone(WIB).strftime("%Y-%m")
        report.events += 1
        if subject:
            report.everyone.add(subject)
        for claim in details.get("claims", []):
            report.releases[month, claim] += 1
            if subject:
                report.citizens[month, claim].add(subject)
    return report
