import pytest

from digital_id.clients.subjects import pairwise_subject, public_subject, sector_of

SECRET = b"s" * 32


def test_pairwise_subjects_differ_between_sectors_and_are_stable_within_one():
    tax = pairwise_subject(SECRET, sector="pajak.example.go.id", citizen_id=42)
    aid = pairwise_subject(SECRET, sector="bansos.example.go.id", citizen_id=42)
    assert tax != aid
    assert tax == pairwise_subject(SECRET, sector="pajak.example.go.id", citizen_id=42)
    assert tax != pairwise_subject(SECRET, sector="pajak.example.go.id", citizen_id=43)
    assert tax != pairwise_subject(b"t" * 32, sector="pajak.example.go.id", citizen_id=42)


def test_public_subject_is_one_opaque_value_per_citizen():
    assert public_subject(SECRET, citizen_id=42) == public_subject(SECRET, citizen_id=42)
    assert public_subject(SECRET, citizen_id=42) != pairwise_subject(
        SECRET, sector="a", citizen_id=42
    )
    assert "42" not in public_subject(SECRET, citizen_id=42)


def test_sector_is_the_redirect_host_or_the_sector_identifier_host():
    one_host = ["https://pajak.example.go.id/a", "https://Pajak.example.go.id/b"]
    assert (
        sector_of(client_id="c", redirect_uris=one_host, sector_identifier_uri=None)
        == "pajak.example.go.id"
    )
    assert (
        sector_of(
            client_id="c",
            redirect_uris=one_host,
            sector_identifier_uri="https://sector.example/x.json",
        )
        == "sector.example"
    )
    assert (
        sector_of(client_id="c", redirect_uris=["id.go.pajak.app:/cb"], sector_identifier_uri=None)
        == "id.go.pajak.app"
    )
    assert sector_of(client_id="c", redirect_uris=[], sector_identifier_uri=None) == "client:c"


def test_several_redirect_hosts_need_a_sector_identifier():
    with pytest.raises(ValueError, match="sector_identifier_uri"):
        sector_of(
            client_id="c",
            redirect_uris=["https://a.example/cb", "https://b.example/cb"],
            sector_identifier_uri=None,
        )


def test_the_sector_of_a_sector_identifier_is_its_host_name_alone():
    """A port or user part does not make a sector of its own."""
    same = {
        sector_of(client_id="c", redirect_uris=[], sector_identifier_uri=uri)
        for uri in (
            "https://sector.example/x.json",
            "https://sector.example:8443/x.json",
            "https://someone@SECTOR.example/y.json",
        )
    }
    assert same == {"sector.example"}
