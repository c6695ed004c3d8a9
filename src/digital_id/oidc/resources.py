"""Resource indicators (RFC 8707): an access token made out to one agency API.

authlib has no support for them, so the rule is ours, in one function every grant calls
(``requested_resource``): a client asks for at most one resource, by its identifier; it must
be one its registration lists (``resources``), or our own UserInfo endpoint. The token's
``aud`` is then that identifier instead of the client_id, so an API that verifies tokens
locally can tell a token meant for it from one meant for another, and introspection answers
a resource server only about tokens made out to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from authlib.oauth2.rfc6749 import OAuth2Error

from digital_id.oidc.agency_client import AgencyClient


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707 section 2: the resource is unknown, or not one this client may reach."""

    error = "invalid_target"
    status_code = 400


def requested_resource(
    client: AgencyClient, values: Sequence[str], *, userinfo_url: str | None
) -> str | None:
    """The resource the request's ``resource`` parameter (``values``) names, if the client may
    ask for it; None when it names none. Else InvalidTargetError. ``userinfo_url``: our
    UserInfo endpoint, which a token for a citizen may be made out to (None where there is no
    citizen, for a client acting as itself)."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidTargetError("ask for one resource at a time")
    resource = values[0]
    if (userinfo_url is not None and resource == userinfo_url) or resource in client.resources:
        return resource
    raise InvalidTargetError("this client may not ask for tokens for that resource")


def check_same_resource(requested: Sequence[str], granted: str | None) -> None:
    """At the token endpoint, for a code or a refresh token: a ``resource`` named again must
    be the one the citizen's grant is for (no other audience can be had from it)."""
    if requested and list(requested) != [granted]:
        raise InvalidTargetError("the grant is for another resource, or for none")
