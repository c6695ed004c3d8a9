"""Subject identifiers (OpenID Connect Core 1.0, section 8).

Pairwise by default: ``sub`` is an HMAC of the citizen's internal id under the client's
sector, keyed by the pairwise-subject secret from the key store, so two agencies in different
sectors cannot join their users, and nobody without the secret can map a ``sub`` back. Public
clients get one stable opaque identifier per citizen. The NIK never enters a ``sub``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit

from digital_id.clients.models import Client


def sector_of(
    *, client_id: str, redirect_uris: Iterable[str], sector_identifier_uri: str | None
) -> str:
    """The sector a pairwise ``sub`` is computed for: the host of the sector identifier URI,
    else the single host of the redirect URIs, else (no browser flow) the client itself."""
    if sector_identifier_uri:
        # The host name alone, as for redirect URIs: a port or user part in the URI must not
        # make a sector of its own (OpenID Connect Core 1.0, section 8.1).
        return _host(sector_identifier_uri)
    hosts = {_host(uri) for uri in redirect_uris}
    if len(hosts) > 1:
        raise ValueError(
            "redirect URIs span several hosts; the client needs a sector_identifier_uri"
        )
    return hosts.pop() if hosts else f"client:{client_id}"


def subject_for(client: Client, citizen_id: int, pairwise_secret: bytes) -> str:
    """The ``sub`` by which ``client`` knows the citizen: public if it registered so, else
    pairwise for its sector."""
    registration = client.registration
    if registration.get("subject_type") == "public":
        return public_subject(pairwise_secret, citizen_id=citizen_id)
    sector = sector_of(
        client_id=client.client_id,
        redirect_uris=registration.get("redirect_uris", []),
        sector_identifier_uri=registration.get("sector_identifier_uri"),
    )
    return pairwise_subject(pairwise_secret, sector=sector, citizen_id=citizen_id)


def pairwise_subject(secret: bytes, *, sector: str, citizen_id: int) -> str:
    return _opaque(secret, f"pairwise|{sector}|{citizen_id}")


def public_subject(secret: bytes, *, citizen_id: int) -> str:
    return _opaque(secret, f"public|{citizen_id}")


def _opaque(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _host(uri: str) -> str:
    parts = urlsplit(uri)
    # Native apps (RFC 8252) use a private-use scheme; the scheme names the app.
    return (parts.hostname or parts.scheme).lower()
