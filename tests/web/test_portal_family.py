"""Both portals show what a parent did for a child (issue 18): the parent's lists each child in
their care with the agencies holding the child's data, and withdraws them; the child's, once
activated, names the parent who gave each thing on their behalf."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_id.accounts.activation import set_pin
from digital_id.audit.models import AuditEvent
from digital_id.consent.models import Consent, ConsentReceipt
from digital_id.registry.models import Citizen
from tests.web.conftest import PIN, hidden
from tests.web.test_acting_for_a_child import (
    _set_child,
    delegating_agency,
    family,
    tokens_for_child,
)
from tests.web.test_portal import portal_login


def revoke_link(page: str) -> str:
    (link,) = re.findall(r'action="(/account/children/[^"]+/revoke)"', page)
    return link


def test_the_parents_portal_lists_each_childs_agencies(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    tokens_for_child(provider, agency, parent)
    page = provider.http.get("/account")
    assert "Anak dalam pengasuhan saya" in page.text
    assert "ADI SANTOSO (11 tahun)" in page.text or "ADI SANTOSO (12 tahun)" in page.text
    section = page.text.split('id="children"')[1].split('id="history"')[0]
    assert "Kantor Pajak Daerah" in section
    # The parent's own agencies list has none of the child's.
    own = page.text.split('id="agencies"')[1].split('id="children"')[0]
    assert "Kantor Pajak Daerah" not in own


def test_the_parent_withdraws_an_agency_from_their_childs_data(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent)
    link = revoke_link(provider.http.get("/account").text)
    confirm = provider.http.get(link)
    assert "Untuk anak Anda, ADI SANTOSO" in confirm.text
    done = provider.http.post(
        link, data={"csrf_token": hidden(confirm.text, "csrf_token")}, follow_redirects=True
    )
    assert done.status_code == 200
    assert "Belum ada instansi yang dapat mengakses data ADI SANTOSO" in done.text
    assert provider.userinfo(tokens["access_token"]).status_code == 401
    with Session(provider.engine) as session:
        child_id = session.scalar(select(Citizen.id).where(Citizen.nik == child["nik"]))
        parent_id = session.scalar(select(Citizen.id).where(Citizen.nik == parent["nik"]))
        consent = session.scalars(select(Consent).where(Consent.citizen_id == child_id)).one()
        assert consent.revoked_at is not None
        withdrawn = session.scalars(
            select(ConsentReceipt).where(
                ConsentReceipt.citizen_id == child_id, ConsentReceipt.decision == "withdrawn"
            )
        ).one()
        assert withdrawn.actor_citizen_id == parent_id
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.tag == "consent:revoked", AuditEvent.subject == f"citizen:{child_id}"
            )
        ).one()
        assert event.details["guardian"] == f"citizen:{parent_id}"


def test_a_withdrawal_needs_its_csrf_token(provider):
    parent, _ = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent)
    link = revoke_link(provider.http.get("/account").text)
    assert provider.http.post(link, data={}).status_code == 400
    assert provider.userinfo(tokens["access_token"]).status_code == 200


def test_a_child_reference_not_in_the_parents_care_withdraws_nothing(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent)
    link = revoke_link(provider.http.get("/account").text)
    confirm = provider.http.get(link)
    csrf = hidden(confirm.text, "csrf_token")
    forged = re.sub(r"/children/[0-9a-f]+/", "/children/" + "0" * 32 + "/", link)
    refused = provider.http.get(forged, follow_redirects=False)
    assert refused.headers["location"] == "/account#children"
    accented = re.sub(r"/children/[0-9a-f]+/", "/children/%C3%A9%C3%A9/", link)
    assert provider.http.get(accented, follow_redirects=False).status_code == 303
    provider.http.post(forged, data={"csrf_token": csrf})
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    # Another parent, logged in, cannot use this parent's link either.
    other, _ = family(provider)
    provider.http.cookies.clear()
    other_page = portal_login(provider, other["nik"])
    provider.http.post(link, data={"csrf_token": hidden(other_page.text, "csrf_token")})
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    # Nor the parent once the child is 17.
    _set_child(provider, child, birth_date=date(2008, 1, 1))
    provider.http.cookies.clear()
    page = portal_login(provider, parent["nik"])
    assert 'id="children"' not in page.text


def test_the_childs_portal_names_the_parent_who_acted(provider):
    parent, child = family(provider)
    agency = delegating_agency(provider)
    tokens = tokens_for_child(provider, agency, parent)
    assert provider.userinfo(tokens["access_token"]).status_code == 200
    with Session(provider.engine) as session, session.begin():
        set_pin(session, provider.hasher, nik=child["nik"], pin=PIN)
    provider.http.cookies.clear()
    page = portal_login(provider, child["nik"])
    assert "Diberikan atas nama Anda oleh BUDI SANTOSO" in page.text
    receipts = page.text.split('id="receipts"')[1].split("</ul>")[0]
    assert "izin diberikan oleh BUDI SANTOSO" in receipts
    history = page.text.split('id="history"')[1]
    assert "(oleh BUDI SANTOSO)" in history
