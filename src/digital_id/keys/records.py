"""Key records as the manifest lists them: their states (next, active, retired), and the rules
for moving a key from one to the next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from digital_id.keys.errors import UnknownKeyError


class KeyState(StrEnum):
    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class KeyRecord:
    kid: str
    alg: str
    state: KeyState
    created_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None

    def removable_after(self, grace: timedelta) -> datetime | None:
        return self.retired_at + grace if self.retired_at is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "state": self.state.value,
            "created_at": self.created_at.isoformat(),
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRecord:
        def moment(name: str) -> datetime | None:
            value = data.get(name)
            return datetime.fromisoformat(value) if value else None

        created = moment("created_at")
        assert created is not None
        return cls(
            kid=data["kid"],
            alg=data["alg"],
            state=KeyState(data["state"]),
            created_at=created,
            activated_at=moment("activated_at"),
            retired_at=moment("retired_at"),
        )


def records_in(manifest: dict[str, Any]) -> list[KeyRecord]:
    return [KeyRecord.from_dict(k) for k in manifest["keys"]]


def oldest_next(records: list[KeyRecord], alg: str) -> KeyRecord | None:
    waiting = [r for r in records if r.alg == alg and r.state == KeyState.NEXT]
    return min(waiting, key=lambda r: r.created_at, default=None)


def rotation_problem(
    records: list[KeyRecord], alg: str, now: datetime, min_published: timedelta
) -> str | None:
    candidate = oldest_next(records, alg)
    if candidate is None:
        return (
            f"no next {alg} key to promote; run `digital-id keys generate --alg {alg}`, wait "
            f"{_duration(min_published)} for relying parties to fetch it, then rotate "
            "(or rotate --force to activate a brand-new key now)"
        )
    published_for = now - candidate.created_at
    if published_for < min_published:
        return (
            f"{alg} key {candidate.kid} has been published for {_duration(published_for)}, less than "
            f"the JWKS cache lifetime ({_duration(min_published)}); relying parties may not have it "
            "yet. Wait, or pass --force"
        )
    return None


def find_record(records: list[KeyRecord], kid: str) -> KeyRecord:
    for record in records:
        if record.kid == kid:
            return record
    raise UnknownKeyError(f"no key with kid {kid} in the key store")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
