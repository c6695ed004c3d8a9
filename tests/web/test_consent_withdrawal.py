"""Withdrawing consent (what the portal's revoke button does): the agency loses access at once,
hears of it by back-channel logout, the citizen gets a receipt, and consent is asked again."""

from __future__ import annotations

from joserfc.jwk import KeySet
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.audit import verification
from digital_id.audit.models import AuditEvent
from digital_id.clients.models import Client
from digital_id.consent.models import ConsentReceipt
from digital_id.consent.receipts import verify
from digital_id.consent.withdrawal import withdraw_consent
from digital_id.db.types import utc_now
from digital_id.registry.service import find_by_nik
from tests.web.conftest import ISSUER
from tests.web.test_authorization_endpoint import pkce
from tests.web.test_logout import _LogoutReceiver
from tests.web.test_refresh_tokens import OFFLINE, offline_agency, refresh


def withdraw(provider, citizen, agency) -> bool:
    with Session(provider.engine) as session, session.begin():
        citizen_id = find_by_nik(session, citizen["nik"]).id
        client = session.scalars(select(Client).where(Client.client_id == agency.client_id)).one()
        return withdraw_consent(
            session,
            provider.key_store.snapshot(),
            issuer=ISSUER,
            pairwise_secret=provider.key_store.secret("pairwise_subject"),
            citizen_id=citizen_id,
            client=client,
            now=utc_now(),
        )


def test_withdrawing_consent_cascades(provider):
    receiver = _LogoutReceiver()
    try:
        citizen = provider.citizen()
        agency = offline_agency(provider, backchannel_logout_uri=receiver.url)
        other = offline_agency(provider, redirect_uris=["https://other.example.go.id/cb"])
        tokens = provider.tokens_for(agency, citizen["nik"], **OFFLINE)
        kept = provider.tokens_for(other, citizen["nik"], **OFFLINE)

        assert withdraw(provider, citizen, agency) is True

        # Its tokens are dead at once, refresh included; the other agency keeps its access.
        assert provider.userinfo(tokens["access_token"]).status_code == 401
        assert refresh(provider, agency, tokens["refresh_token"]).json()["error"] == "invalid_grant"
        assert provider.userinfo(kept["access_token"]).status_code == 200
        # It is told, by back-channel logout.
        assert len(receiver.wait_for(1)) == 1
        # The next login asks for consent again (no PIN: the session itself lives on).
        page = provider.authorize(agency, **pkce())
        assert 'name="decision"' in page.text
    finally:
        receiver.close()


def test_withdrawal_gives_a_receipt_and_an_audit_event(provider):
    citizen = provider.citizen()
    agency = provider.agency()
    provider.tokens_for(agency, citizen["nik"])
    assert withdraw(provider, citizen, agency) is True
    assert withdraw(provider, citizen, agency) is False  # nothing left to withdraw
    with Session(provider.engine) as session:
        tokens = session.scalars(
            select(ConsentReceipt.token).order_by(ConsentReceipt.issued_at, ConsentReceipt.id)
        ).all()
        tags = session.scalars(select(AuditEvent.tag).order_by(AuditEvent.sequence)).all()
        assert verification.verify(session).intact
    jwks = KeySet.import_key_set(provider.http.get("/jwks").json())
    decisions = [verify(token, jwks)["decision"] for token in tokens]
    assert decisions == ["granted", "withdrawn"]
    assert "consent:revoked" in tags
