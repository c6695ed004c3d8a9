"""Agency client registrations (RFC 7591 / OpenID Connect Dynamic Client Registration metadata)."""
