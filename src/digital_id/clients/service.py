"""Registering and managing agency clients.

Functions take a SQLAlchemy session and leave committing to the caller, so a refused change
(invalid metadata, a missing signing key) changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit import trail
from digital_id.clients.metadata import CALLED_URIS, ClientMetadata, validate_metadata
from digital_id.clients.metadata_fields import InvalidClientMetadataError
from digital_id.clients.models import Client
from digital_id.db.types import storable, utc_now
from digital_id.outbound import Outbound, OutboundError

CLIENT_ID_PREFIX = "dgid_"
CLIENT_SECRET_PREFIX = "dgid_cs_"  # noqa: S105 (a prefix, recognisable in a leaked config file or a secret scanner)


class ClientError(Exception):
    """A client operation was refused; the message says why."""


class UnknownClientError(ClientError):
    """No client with that client_id is registered."""


class NoClientSecretError(ClientError):
    """The client authenticates without a client secret, so it has none to rotate."""


@dataclass(frozen=True)
class Registered:
    client: Client
    client_secret: str | None  # shown to the operator once, never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def verify_secret(client: Client, presented: str) -> bool:
    if client.client_secret_hash is None:
        hash_secret(presented)  # same work either way
        return False
    return hmac.compare_digest(client.client_secret_hash, hash_secret(presented))


def register(
    session: Session,
    data: dict[str, Any],
    *,
    production: bool,
    active_algorithms: Collection[str],
    outbound: Outbound | None = None,
) -> Registered:
    metadata = _validated(data, production, active_algorithms, outbound)
    now = utc_now()
    secret = _new_secret() if metadata.uses_client_secret else None
    client = Client(
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(18),
        client_name=metadata.display_name,
        registration=metadata.to_registration(),
        client_secret_hash=hash_secret(secret) if secret else None,
        enabled=True,
        created_at=now,
        updated_at=now,
        secret_rotated_at=now if secret else None,
    )
    session.add(client)
    session.flush()
    _recorded(session, "client:registered", client)
    return Registered(client, secret)


def update(
    session: Session,
    client_id: str,
    data: dict[str, Any],
    *,
    production: bool,
    active_algorithms: Collection[str],
    outbound: Outbound | None = None,
) -> Registered:
    """Replace a client's metadata. A secret is kept while the method still uses one, issued
    when the client moves to a secret method, and dropped when it moves away from one."""
    client = get(session, client_id)
    metadata = _validated(data, production, active_algorithms, outbound)
    secret = None
    if not metadata.uses_client_secret:
        client.client_secret_hash = None
        client.secret_rotated_at = None
    elif client.client_secret_hash is None:
        secret = _new_secret()
        client.client_secret_hash = hash_secret(secret)
        client.secret_rotated_at = utc_now()
    client.registration = metadata.to_registration()
    client.client_name = metadata.display_name
    client.updated_at = utc_now()
    session.flush()
    _recorded(session, "client:updated", client)
    return Registered(client, secret)


def rotate_secret(session: Session, client_id: str) -> Registered:
    client = get(session, client_id)
    if client.registration["token_endpoint_auth_method"] not in (
        "client_secret_basic",
        "client_secret_post",
    ):
        raise NoClientSecretError(
            f"client {client_id} authenticates with {client.registration['token_endpoint_auth_method']}, "
            "not a client secret"
        )
    secret = _new_secret()
    client.client_secret_hash = hash_secret(secret)
    client.secret_rotated_at = client.updated_at = utc_now()
    session.flush()
    _recorded(session, "client:secret_rotated", client)
    return Registered(client, secret)


def set_enabled(session: Session, client_id: str, enabled: bool) -> Client:
    client = get(session, client_id)
    if client.enabled != enabled:
        client.enabled = enabled
        client.updated_at = utc_now()
        session.flush()
        _recorded(session, "client:enabled" if enabled else "client:disabled", client)
    return client


def get(session: Session, client_id: str) -> Client:
    client = session.scalars(select(Client).where(Client.client_id == client_id)).one_or_none()
    if client is None:
        raise UnknownClientError(f"no client with client_id {client_id}")
    return client


def all_clients(session: Session) -> list[Client]:
    return list(session.scalars(select(Client).order_by(Client.created_at, Client.id)))


def used_algorithms(session: Session) -> set[str]:
    """Every signing algorithm an enabled client's tokens are signed with."""
    algorithms: set[str] = set()
    for registration in session.scalars(
        select(Client.registration).where(Client.enabled.is_(True))
    ):
        algorithms.add(registration["id_token_signed_response_alg"])
        if registration.get("userinfo_signed_response_alg"):
            algorithms.add(registration["userinfo_signed_response_alg"])
    return algorithms


def registration_document(client: Client, secret: str | None = None) -> dict[str, Any]:
    """RFC 7591 section 3.2.1 client information: the metadata plus what the server assigned."""
    document: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
    }
    if secret is not None:
        document["client_secret"] = secret
        document["client_secret_expires_at"] = 0  # does not expire; rotate with rotate-secret
    document.update(client.registration)
    document["enabled"] = client.enabled
    return document


def _validated(
    data: dict[str, Any],
    production: bool,
    active_algorithms: Collection[str],
    outbound: Outbound | None,
) -> ClientMetadata:
    metadata = validate_metadata(data, production=production)
    outbound = outbound or Outbound(deadline_seconds=5.0, allow_loopback=not production)
    for name in CALLED_URIS:
        uri = metadata.uris.get(name)
        problem = outbound.target_problem(uri, resolve=True) if uri else None
        if problem is not None:
            raise InvalidClientMetadataError(name, f"{problem} (its host name resolves to one)")
    if "sector_identifier_uri" in metadata.uris:
        _check_sector(metadata, outbound, production)
    missing = sorted(metadata.signing_algorithms - set(active_algorithms))
    if missing:
        field = (
            "id_token_signed_response_alg"
            if metadata.id_token_signed_response_alg in missing
            else "userinfo_signed_response_alg"
        )
        raise InvalidClientMetadataError(
            field,
            f"no active {missing[0]} signing key; run `digital-id keys generate --alg {missing[0]}` first",
        )
    return metadata


def _check_sector(metadata: ClientMetadata, outbound: Outbound, production: bool) -> None:
    """OpenID Connect Core 1.0 section 8.1: the sector identifier URI is fetched and must hold
    a JSON array listing every redirect URI of the client. Otherwise any client could name
    another agency's sector and be given the same pairwise subjects as that agency."""
    uri = metadata.uris["sector_identifier_uri"]
    parts = urlsplit(uri)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and (production or not loopback):
        raise InvalidClientMetadataError(
            "sector_identifier_uri", "must use https (http only for loopback in development)"
        )
    try:
        answer = outbound.get(uri)
    except OutboundError as exc:
        raise InvalidClientMetadataError(
            "sector_identifier_uri", f"could not be fetched: {exc}"
        ) from None
    if answer.status != 200:
        raise InvalidClientMetadataError(
            "sector_identifier_uri", f"could not be fetched: HTTP {answer.status}"
        )
    try:
        listed = json.loads(answer.body)
    except ValueError:
        listed = None
    if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
        raise InvalidClientMetadataError(
            "sector_identifier_uri", "must serve a JSON array of redirect URIs"
        )
    for uri_listed in metadata.redirect_uris:
        if uri_listed not in listed:
            raise InvalidClientMetadataError(
                "sector_identifier_uri",
                f"does not list the redirect URI {uri_listed} "
                "(OpenID Connect Core 1.0, section 8.1)",
            )


def _recorded(session: Session, tag: str, client: Client) -> None:
    trail.record(
        session,
        tag,
        actor="operator",
        client_id=client.client_id,
        details={"scope": client.registration.get("scope"), "enabled": client.enabled},
    )


def _new_secret() -> str:
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


def find(session: Session, client_id: str) -> Client | None:
    """The client with this client_id, or None (also for one no column could hold)."""
    if not storable(client_id):
        return None
    return session.scalars(select(Client).where(Client.client_id == client_id)).one_or_none()


def names(session: Session) -> dict[str, str]:
    """Every client's name by client_id."""
    return dict(session.execute(select(Client.client_id, Client.client_name)).all())
