"""Levels of assurance (``acr`` values) and the authentication methods behind each (RFC 8176
``amr``): the vocabulary registrations, sessions and tokens share, so it sits below them all."""

from __future__ import annotations

from typing import Final

LOA_LOW: Final = "urn:digital-id:loa:low"
LOA_SUBSTANTIAL: Final = "urn:digital-id:loa:substantial"
ACR_VALUES: Final = (LOA_LOW, LOA_SUBSTANTIAL)
RANK: Final = {acr: rank for rank, acr in enumerate(ACR_VALUES)}
METHODS: Final = {LOA_LOW: ["pin"], LOA_SUBSTANTIAL: ["pin", "otp", "mfa"]}


def satisfies(acr: str, required: str) -> bool:
    return RANK.get(acr, -1) >= RANK[required]
