"""Token digests: what is stored of an authorization code or a refresh token."""

from __future__ import annotations

import hashlib


def token_digest(token: str) -> str:
    """256-bit random values need no slow hash; a leaked table is no list of live tokens."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
