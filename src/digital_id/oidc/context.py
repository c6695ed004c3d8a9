"""What one request's protocol work needs (``ProviderContext``), the response handed back
to the web layer, and how authlib's grants and endpoints find the request's context."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from digital_id.audit.trail import EventContext
from digital_id.clients.jwks import ClientKeyResolver
from digital_id.config import Settings
from digital_id.keys.store import KeySnapshot
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.dpop import DPoPNonces, Proof
from digital_id.registry.regions import RegionTable
from digital_id.throttle.fleet import FleetLimiter
from digital_id.throttle.limiter import Limits


@dataclass
class NonceChecks:
    """Whether a (client, nonce) was used before, as this request's checks found it. authlib
    validates the authorization request again as it answers it, and nothing in between
    issues a code, so one answer serves both. While ``deferred``, a validation does not ask:
    the step answers the agency only through that second validation, which then asks."""

    known: dict[tuple[int, str], bool] = field(default_factory=dict)
    deferred: bool = False


@dataclass
class Issuing:
    """What the access token this request is issued is bound to, as the request's checks
    found it: the DPoP key it proved it holds (``jkt``, RFC 9449), and the resource it is for
    (``resource``, RFC 8707; its ``aud``). None: no proof; the client itself."""

    jkt: str | None = None
    resource: str | None = None
    # The proof, until the client has authenticated and it is spent (``dpop.spend``).
    unspent_proof: Proof | None = None


@dataclass(frozen=True)
class ProviderContext:
    """What one request's protocol work needs: its database session, time and caller, and
    the process's keys, secrets and limits it works with."""

    session: Session
    settings: Settings
    keys: KeySnapshot
    pairwise_secret: bytes
    regions: RegionTable
    client_keys: ClientKeyResolver
    now: datetime
    events: EventContext = field(default_factory=EventContext)
    # The token path's limits: counted in memory, synchronised with the fleet in the background.
    rate_limiter: FleetLimiter | None = None
    limits: Limits | None = None
    # The agencies this request looked up (authlib asks for the same one several times).
    clients: dict[str, AgencyClient | None] = field(default_factory=dict)
    # Whether a (client, nonce) was used before, asked at most once a request.
    nonces: NonceChecks = field(default_factory=NonceChecks)
    # Server nonces DPoP proofs at the token endpoint must carry; None when none are asked.
    dpop_nonces: DPoPNonces | None = None
    issuing: Issuing = field(default_factory=Issuing)

    @property
    def token_endpoint(self) -> str:
        return self.settings.issuer.rstrip("/") + "/token"


@dataclass(frozen=True)
class OAuthResponse:
    """A response as authlib produces it, for the web layer to send."""

    status: int
    body: Any
    headers: list[tuple[str, str]]

    @property
    def location(self) -> str | None:
        return next((value for name, value in self.headers if name.lower() == "location"), None)


class OnServer:
    """For authlib grants and endpoints: the request's context, from the server they serve."""

    server: Any

    @property
    def context(self) -> ProviderContext:
        context: ProviderContext = self.server.context
        return context
