"""For whom the citizen logs in: themselves, or a child they may act for (UU 27/2022 article
25: a child's data is processed with a parent's consent).

An agency registered with ``accepts_delegation`` asks a guardian, once they are
authenticated, "For whom are you using this service?". The answer is carried by the flow's
later pages as the chosen child's pairwise ``sub`` at that agency (``SELF`` for the guardian),
and is worth nothing on its own: every step asks the one rule (``delegation.may_act_for``)
again through ``children_in_care``, so a choice naming someone the guardian may not act for
today, or a child of another family, finds no one and the question is asked again.
"""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oidc.core.errors import AccountSelectionRequiredError

from digital_id.accounts.delegation import children_in_care, today_in_indonesia
from digital_id.oidc.agency_client import AgencyClient
from digital_id.oidc.context import ProviderContext
from digital_id.registry.models import Citizen

SELF = "self"


@dataclass(frozen=True)
class Dependant:
    """A child the guardian may act for, and the value that chooses them."""

    choice: str  # the child's pairwise sub at the agency
    citizen: Citizen


@dataclass(frozen=True)
class ShowActingChoice:
    """Ask the guardian for whom they log in to ``client``."""

    client: AgencyClient
    guardian: Citizen
    dependants: list[Dependant]


@dataclass(frozen=True)
class Acting:
    """Who the flow goes on for: ``citizen`` (whose claims are released), and the
    ``guardian`` acting for them, or None when the citizen acts for themselves."""

    citizen: Citizen
    guardian: Citizen | None = None


def acting(
    context: ProviderContext,
    client: AgencyClient,
    citizen: Citizen,
    choice: str | None,
    *,
    prompts: set[str],
    redirect_uri: str | None,
) -> Acting | ShowActingChoice:
    """For whom ``citizen``, authenticated, goes on at ``client``, given the ``choice`` the
    flow carried (None: not asked yet): the question, when it must be asked."""
    if not client.accepts_delegation:
        return Acting(citizen)
    dependants = [
        Dependant(client.subject_for(child.id, context.pairwise_secret), child)
        for child in children_in_care(context.session, citizen, today_in_indonesia(context.now))
    ]
    if not dependants or choice == SELF:
        return Acting(citizen)
    chosen = next((d.citizen for d in dependants if d.choice == choice), None)
    if chosen is not None:
        return Acting(chosen, guardian=citizen)
    if "none" in prompts:
        # OpenID Connect Core 3.1.2.6: the choice needs the guardian, who may not be asked.
        raise AccountSelectionRequiredError(redirect_uri=redirect_uri)
    return ShowActingChoice(client, citizen, dependants)
