"""The recognised-browser cookie: proof that this browser logged in as this citizen recently.

NIKs are printed on every KTP, so anyone can type one with wrong PINs until it locks. A
browser the citizen logged in from is exempt from that lock and from the per-NIK rate limit
(OWASP's "device cookies" against online guessing): it carries this cookie, and its own
wrong PINs count towards a lock of its own (``accounts.models.RecognisedBrowser``).

The cookie is a JWT signed with HMAC-SHA256 under a key-store secret (joserfc does the
signing and checking): ``jti`` names the recognised-browser row, ``sub`` the citizen as a
keyed hash of their NIK (never the NIK or a database id in clear), ``exp`` when it lapses.
Nobody without the secret can make one up, and one cookie is good for one citizen only.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from digital_id.accounts.models import RecognisedBrowser

_ALGORITHM = "HS256"
# Ours are about 200 characters; anything much longer is not ours and is not even decoded.
_MAX_LENGTH = 512


class BrowserCookies:
    """Issues and reads recognised-browser cookies; one per process."""

    def __init__(self, secret: bytes) -> None:
        # Domain separation: one key signs, the other names citizens.
        self._key = OctKey.import_key(hmac.new(secret, b"sign", hashlib.sha256).digest())
        self._names = hmac.new(secret, b"citizen", hashlib.sha256).digest()

    def issue(self, browser: RecognisedBrowser, nik: str) -> str:
        claims = {
            "jti": browser.public_id,
            "sub": self._citizen(nik),
            "exp": int(browser.expires_at.timestamp()),
        }
        return jwt.encode({"alg": _ALGORITHM}, claims, self._key, algorithms=[_ALGORITHM])

    def read(self, cookie: str | None, nik: str, *, now: datetime) -> str | None:
        """The recognised browser's public id when ``cookie`` is one of ours, unexpired, and
        names the citizen with this NIK; otherwise None (a stranger)."""
        if not cookie or len(cookie) > _MAX_LENGTH:
            return None
        try:
            claims = jwt.decode(cookie, self._key, algorithms=[_ALGORITHM]).claims
        except (JoseError, ValueError, TypeError):
            return None
        exp, sub, jti = claims.get("exp"), claims.get("sub"), claims.get("jti")
        if not isinstance(exp, int) or exp <= now.timestamp():
            return None
        if not isinstance(sub, str) or not hmac.compare_digest(sub, self._citizen(nik)):
            return None
        return jti if isinstance(jti, str) and 0 < len(jti) <= 43 else None

    def _citizen(self, nik: str) -> str:
        return hmac.new(self._names, nik.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
