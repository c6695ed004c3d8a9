"""Every mapped model, imported once so ``Base.metadata`` is complete for Alembic and tests."""

from digital_id.accounts.models import (
    CitizenAccount,
    Passkey,
    PasskeyChallenge,
    RecognisedBrowser,
)
from digital_id.audit.models import AuditChain, AuditCheckpoint, AuditEvent
from digital_id.clients.models import Client
from digital_id.consent.models import Consent, ConsentReceipt
from digital_id.db.base import Base
from digital_id.grants.models import (
    AuthorizationCode,
    AuthorizationGrant,
    DeviceAuthorization,
    RefreshToken,
    RevokedAccessToken,
)
from digital_id.oidc.models import SeenClientAssertion
from digital_id.registry.models import Citizen
from digital_id.sessions.models import BrowserSession, LogoutDelivery
from digital_id.throttle.models import RateLimitWindow

metadata = Base.metadata

__all__ = [
    "AuditChain",
    "AuditCheckpoint",
    "AuditEvent",
    "AuthorizationCode",
    "AuthorizationGrant",
    "BrowserSession",
    "Citizen",
    "CitizenAccount",
    "Client",
    "Consent",
    "ConsentReceipt",
    "DeviceAuthorization",
    "LogoutDelivery",
    "Passkey",
    "PasskeyChallenge",
    "RateLimitWindow",
    "RecognisedBrowser",
    "RefreshToken",
    "RevokedAccessToken",
    "SeenClientAssertion",
    "metadata",
]
