"""Levels of assurance (``acr``) and the authentication methods behind them (RFC 8176 ``amr``).

A request names the levels it accepts (``acr_values``, or an ``acr`` claim in the ``claims``
parameter); the lowest of those we support is what it needs. An agency may be registered
with ``default_acr_values``; its lowest level is enforced whatever the request says. A
session below what is needed is stepped up, never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from digital_id.oidc.jwt_policy import load_json
from digital_id.oidc.requests import PARAMETER_LIMITS

LOA_LOW: Final = "urn:digital-id:loa:low"
LOA_SUBSTANTIAL: Final = "urn:digital-id:loa:substantial"
ACR_VALUES: Final = (LOA_LOW, LOA_SUBSTANTIAL)
_RANK: Final = {acr: rank for rank, acr in enumerate(ACR_VALUES)}
METHODS: Final = {LOA_LOW: ["pin"], LOA_SUBSTANTIAL: ["pin", "otp", "mfa"]}


def satisfies(acr: str, required: str) -> bool:
    return _RANK.get(acr, -1) >= _RANK[required]


def required_level(parameters: Mapping[str, str], registration: Mapping[str, Any]) -> str:
    requested = _lowest(_requested(parameters))
    minimum = _lowest(registration.get("default_acr_values") or [])
    return max(requested or LOA_LOW, minimum or LOA_LOW, key=_RANK.__getitem__)


def _requested(parameters: Mapping[str, str]) -> list[str]:
    values = parameters.get("acr_values", "").split()
    try:
        claims = load_json(parameters.get("claims") or "{}", max_length=PARAMETER_LIMITS["claims"])
        acr = claims.get("id_token", {}).get("acr") or {}
    except (ValueError, AttributeError):
        return values  # a malformed claims parameter is refused elsewhere
    if isinstance(acr, dict):
        if isinstance(acr.get("value"), str):
            values.append(acr["value"])
        if isinstance(acr.get("values"), list):
            values.extend(v for v in acr["values"] if isinstance(v, str))
    return values


def _lowest(values: Iterable[str]) -> str | None:
    known = [value for value in values if value in _RANK]
    return min(known, key=_RANK.__getitem__) if known else None
