"""The scopes and claims agencies integrate against, released from the register.

Only what a scope names leaves the register, and age scopes release booleans, never the
birth date (data minimisation under UU PDP No. 27/2022).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from digital_id.oidc import verified_claims
from digital_id.oidc.jwt_policy import UnacceptableJsonError, load_json
from digital_id.oidc.requests import PARAMETER_LIMITS, describable
from digital_id.registry.models import Citizen
from digital_id.registry.regions import RegionTable
from digital_id.registry.service import age_on

SCOPE_CLAIMS: Final[dict[str, tuple[str, ...]]] = {
    "openid": ("sub",),
    "profile": ("name", "gender", "birthdate"),
    "nik": ("nik",),
    "birth": ("birthdate", "place_of_birth"),
    "address": ("address",),
    "family": ("kk_number",),
    "age": ("age_over_17", "age_over_18", "age_over_21", "age_over_60"),
}
AGE_THRESHOLDS: Final = (17, 18, 21, 60)
# OpenID Connect Core 11: the scope asking for a refresh token; consented to like a claim.
OFFLINE_ACCESS: Final = "offline_access"
SUPPORTED_CLAIMS: Final = tuple(
    dict.fromkeys(c for claims in SCOPE_CLAIMS.values() for c in claims)
)


def claims_of_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The claims the given scopes release, in a stable order, without ``sub``."""
    granted = set(scopes)
    return tuple(
        claim
        for scope, claims in SCOPE_CLAIMS.items()
        if scope in granted
        for claim in claims
        if claim != "sub"
    )


def claim_values(
    citizen: Citizen, claims: Iterable[str], *, regions: RegionTable, today: date
) -> dict[str, Any]:
    """The values of ``claims`` for ``citizen``; claims not in the contract are ignored."""
    values: dict[str, Any] = {}
    age = age_on(citizen.birth_date, today)
    wanted = list(dict.fromkeys(claims))
    verified = [
        c.removeprefix(verified_claims.PREFIX)
        for c in wanted
        if c.startswith(verified_claims.PREFIX)
    ]
    if verified and (proven := claim_values(citizen, verified, regions=regions, today=today)):
        values["verified_claims"] = {
            "verification": verified_claims.verification(citizen),
            "claims": proven,
        }
    for claim in wanted:
        if claim == "name":
            values[claim] = citizen.full_name
        elif claim == "gender":
            values[claim] = "male" if citizen.sex == "L" else "female"
        elif claim == "birthdate":
            values[claim] = citizen.birth_date.isoformat()
        elif claim == "place_of_birth":
            values[claim] = citizen.birth_place
        elif claim == "nik":
            values[claim] = citizen.nik
        elif claim == "kk_number":
            values[claim] = citizen.kk_number
        elif claim == "address":
            values[claim] = _address(citizen, regions)
        elif (
            claim.startswith("age_over_") and int(claim.removeprefix("age_over_")) in AGE_THRESHOLDS
        ):
            values[claim] = age >= int(claim.removeprefix("age_over_"))
    return values


def _address(citizen: Citizen, regions: RegionTable) -> dict[str, str]:
    """OpenID Connect Core 5.1.1 address, plus the Indonesian administrative levels."""
    resolved = regions.resolve(citizen.district_code)
    district = resolved.district.name if resolved else ""
    regency = resolved.regency.name if resolved else ""
    province = resolved.province.name if resolved else ""
    neighbourhood = f"RT {citizen.rt}/RW {citizen.rw}"
    lines = [citizen.street, neighbourhood, citizen.village, district, regency, province]
    return {
        "formatted": ", ".join(part for part in lines if part),
        "street_address": f"{citizen.street}, {neighbourhood}",
        "locality": regency,
        "region": province,
        "country": "ID",
        "rt": citizen.rt,
        "rw": citizen.rw,
        "village": citizen.village,
        "district": district,
        "regency": regency,
        "province": province,
        "district_code": citizen.district_code,
    }


class InvalidClaimsRequestError(ValueError):
    """The ``claims`` parameter is not the JSON object OpenID Connect Core 5.5 describes."""


@dataclass(frozen=True)
class ClaimsRequest:
    """What an authorization request asks to release, limited to the agency's registration:
    the claims of its scopes (at UserInfo), single claims by the ``claims`` parameter (at
    UserInfo or in the ID token), and which of those the agency marked essential."""

    userinfo: tuple[str, ...]
    id_token: tuple[str, ...]
    essential: frozenset[str]
    offline_access: bool = False
    # Asked for inside verified_claims (OpenID Connect for Identity Assurance 1.0).
    verified_userinfo: tuple[str, ...] = ()
    verified_id_token: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(
                (*self.userinfo, *self.id_token, *self.verified_userinfo, *self.verified_id_token)
            )
        )

    @property
    def userinfo_release(self) -> tuple[str, ...]:
        """What a grant keeps to release at UserInfo, verified claims marked as such."""
        return (*self.userinfo, *(verified_claims.PREFIX + c for c in self.verified_userinfo))

    @property
    def id_token_release(self) -> tuple[str, ...]:
        """What a grant keeps to release in the ID token, verified claims marked as such."""
        return (*self.id_token, *(verified_claims.PREFIX + c for c in self.verified_id_token))

    @property
    def consent_items(self) -> tuple[str, ...]:
        """What the citizen is asked to agree to: the claims, and offline access if asked."""
        return (*self.all, OFFLINE_ACCESS) if self.offline_access else self.all


def resolve_claims_request(
    scopes: Iterable[str], claims_parameter: str | None, *, registered_scopes: Iterable[str]
) -> ClaimsRequest:
    allowed = set(claims_of_scopes(registered_scopes))
    userinfo = list(claims_of_scopes(scopes))
    id_token: list[str] = []
    essential: set[str] = set()
    verified: dict[str, list[str]] = {"userinfo": [], "id_token": []}
    if claims_parameter:
        try:
            parsed = load_json(claims_parameter, max_length=PARAMETER_LIMITS["claims"])
        except UnacceptableJsonError as exc:
            raise InvalidClaimsRequestError(f"the claims parameter: {exc}") from None
        except ValueError:
            raise InvalidClaimsRequestError("the claims parameter is not valid JSON") from None
        if not isinstance(parsed, dict):
            raise InvalidClaimsRequestError("the claims parameter must be a JSON object")
        for target, into in (("userinfo", userinfo), ("id_token", id_token)):
            members = parsed.get(target) or {}
            if not isinstance(members, dict):
                raise InvalidClaimsRequestError(f"claims.{target} must be a JSON object")
            for name, request in members.items():
                if name == "verified_claims":
                    try:
                        names, needed = verified_claims.requested(request, allowed, target=target)
                    except verified_claims.MalformedVerifiedClaimsError as exc:
                        raise InvalidClaimsRequestError(str(exc)) from None
                    verified[target] += names
                    essential |= needed
                    continue
                if request is not None and not isinstance(request, dict):
                    raise InvalidClaimsRequestError(
                        f"claims.{target}.{describable(name)} must be null or an object"
                    )
                # Claims outside the agency's registration are ignored, as Core 5.5 allows.
                if name not in allowed:
                    continue
                into.append(name)
                if request and request.get("essential") is True:
                    essential.add(name)
    return ClaimsRequest(
        userinfo=tuple(c for c in dict.fromkeys(userinfo) if c in allowed),
        id_token=tuple(dict.fromkeys(id_token)),
        essential=frozenset(essential),
        verified_userinfo=tuple(dict.fromkeys(verified["userinfo"])),
        verified_id_token=tuple(dict.fromkeys(verified["id_token"])),
    )
