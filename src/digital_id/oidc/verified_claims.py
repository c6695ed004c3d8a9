"""Verified claims (OpenID Connect for Identity Assurance 1.0): the register's claims with the
evidence behind them, as eSignet offers them. The population register is an official record,
so a claim verified here names that register as its trust framework, the time the record was
last updated, and evidence of type ``electronic_record`` naming the register and the record's
version.

Requested through the ``claims`` parameter (``{"id_token": {"verified_claims": {...}}}``, or
``userinfo``); what is asked is kept in the grant as ``verified_claims:<claim>`` entries and
answered by ``oidc.claims.claim_values``. This module reads requests and says what the
verification is; it knows nothing of the plain claims."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from digital_id.registry.models import Citizen

TRUST_FRAMEWORK: Final = "id_dukcapil"
EVIDENCE: Final = "electronic_record"
# How a grant records a claim asked for inside verified_claims.
PREFIX: Final = "verified_claims:"
REGISTER: Final = {
    "name": "Direktorat Jenderal Kependudukan dan Pencatatan Sipil",
    "country_code": "IDN",
}


class MalformedVerifiedClaimsError(ValueError):
    """A ``verified_claims`` request that is not what OpenID Connect for Identity Assurance
    1.0 section 5 describes (the message names what is wrong)."""


def requested(member: Any, allowed: Iterable[str], *, target: str) -> tuple[list[str], set[str]]:
    """The claims a ``verified_claims`` request member (an object, or an array of them) asks
    for and this agency may receive, and those of them marked essential.

    Unknown claims are ignored. A claim asked for with a ``value`` or ``values`` is omitted:
    the register's value is released as it is, never matched against a guess. A request for
    another trust framework gets nothing, and so does one with no claim left."""
    requests = member if isinstance(member, list) else [member]
    names: list[str] = []
    essential: set[str] = set()
    permitted = set(allowed)
    for index, request in enumerate(requests):
        where = f"claims.{target}.verified_claims" + (
            f"[{index}]" if isinstance(member, list) else ""
        )
        if not isinstance(request, dict):
            raise MalformedVerifiedClaimsError(f"{where} must be an object")
        verification, claims = request.get("verification"), request.get("claims")
        if not isinstance(verification, dict):
            raise MalformedVerifiedClaimsError(f"{where}.verification must be an object")
        if not isinstance(claims, dict) or not claims:
            raise MalformedVerifiedClaimsError(f"{where}.claims must be a non-empty object")
        if not _framework_fits(verification.get("trust_framework")):
            continue
        for name, constraint in claims.items():
            if constraint is not None and not isinstance(constraint, dict):
                raise MalformedVerifiedClaimsError(
                    f"{where}.claims members must be null or objects"
                )
            if name not in permitted or (constraint and {"value", "values"} & set(constraint)):
                continue
            names.append(name)
            if constraint and constraint.get("essential") is True:
                essential.add(name)
    return list(dict.fromkeys(names)), essential


def verification(citizen: Citizen) -> dict[str, Any]:
    """How the register's claims about ``citizen`` were verified (section 5.1)."""
    return {
        "trust_framework": TRUST_FRAMEWORK,
        "time": citizen.updated_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "evidence": [
            {
                "type": EVIDENCE,
                "record": {
                    "type": "population_register",
                    "source": REGISTER,
                    "version": str(citizen.record_version),
                },
            }
        ],
    }


def _framework_fits(constraint: Any) -> bool:
    if not isinstance(constraint, dict):
        return True  # null, or absent: any framework will do
    if "value" in constraint:
        return bool(constraint["value"] == TRUST_FRAMEWORK)
    if isinstance(constraint.get("values"), list):
        return TRUST_FRAMEWORK in constraint["values"]
    return True
