"""Recording a citizen's yes on a consent page, of a browser flow or of a kiosk's: the consent
grows and a signed receipt is issued, naming the guardian when one decided for a child."""

from __future__ import annotations

from digital_id.consent import receipts
from digital_id.consent import service as consent_service
from digital_id.consent.models import Consent
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.claims import ClaimsRequest
from digital_id.oidc.server import Provider
from digital_id.registry.models import Citizen


def record_approval(
    provider: Provider,
    client: AgencyClient,
    citizen: Citizen,
    claims: ClaimsRequest,
    row: Consent | None,
    *,
    guardian: Citizen | None = None,
) -> None:
    """The citizen approved ``client``'s request on a consent page (of a browser flow or of a
    device's): the consent (``row``, the stored one, grows) and its signed receipt. A
    ``guardian`` approving for the citizen, a child, is named in both."""
    context = provider.context
    actor = None
    if guardian is not None:
        actor = receipts.Actor(
            guardian.id, client.subject_for(guardian.id, context.pairwise_secret)
        )
    consent_service.grant_onto(
        context.session,
        row,
        citizen_id=citizen.id,
        client_pk=client.pk,
        claims=claims.consent_items,
        now=context.now,
        client_id=client.client_id,
        events=context.events,
        given_by=guardian.id if guardian is not None else None,
    )
    receipts.issue(
        context.session,
        context.keys,
        issuer=context.settings.issuer,
        citizen_id=citizen.id,
        client_pk=client.pk,
        client_id=client.client_id,
        agency_name=client.name("id"),
        subject=client.subject_for(citizen.id, context.pairwise_secret),
        decision="granted",
        claims=claims.consent_items,
        purpose=client.client_metadata.get("purpose"),
        now=context.now,
        actor=actor,
    )
