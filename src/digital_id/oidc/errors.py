"""The protocol's own error classes, each carrying its OAuth error code and HTTP status."""

from __future__ import annotations

from authlib.oauth2.rfc8628 import SlowDownError as DeviceSlowDownError


class SlowDownError(DeviceSlowDownError):  # type: ignore[misc]
    """The client has used up its token budget for this window. ``slow_down`` is registered
    for the token endpoint (RFC 8628 section 3.5, OAuth Extensions Error Registry); the
    status is RFC 6585's 429, with ``Retry-After`` saying when the window frees."""

    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description=f"Too many token requests; retry after {retry_after} seconds")
        self.retry_after = retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, ("Retry-After", str(self.retry_after))]


class InvalidAccessTokenError(Exception):
    """RFC 6750 ``invalid_token``: the message is for logs, the client sees only the code."""
