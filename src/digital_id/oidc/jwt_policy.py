"""What every JWT presented to us must look like before a key is looked up or a byte of it is
verified: client assertions (RFC 7523), request objects (RFC 9101), ``id_token_hint`` at the
authorization and logout endpoints, and our own access tokens coming back (RFC 9068).

The JWT Best Current Practices (RFC 8725) ask a verifier to decide the algorithm and the key
itself. So a token is refused here when it is larger than the place allows, is not a compact
JWS of three base64url parts, names an algorithm the place does not use (``none`` and HMAC
never pass: every place here verifies an asymmetric signature), names no key (``kid``) where
one is needed, or carries a header that would let it choose or fetch its own key (``jwk``, ``jku``, ``x5u``,
``x5c``: RFC 7515 sections 4.1.2 to 4.1.6) or demand extensions we do not implement
(``crit``, RFC 7515 section 4.1.11). Our keys ignore those headers anyway; refusing them
outright means no later change of library or key lookup can start trusting them.

Every JWT entry point calls ``check_jwt`` first, so the rules are the same everywhere.

Every JSON a request carries (a JWT's header and claims, the ``claims`` parameter) is read by
``load_json``, within a size and a nesting depth: Python's parser recurses once per level, so
a few kilobytes of ``[[[[`` would otherwise raise RecursionError (a 500) here or, later, in
whichever library parses the same text again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection
from typing import Any, Final

# The longest JWT we read. Our ID and access tokens and an agency's client assertion are
# well under 2 KiB; the headroom is for large keys and long claim values.
MAX_JWT_LENGTH: Final = 8 * 1024
# A request object carries the whole authorization request, ``claims`` included.
MAX_REQUEST_OBJECT_LENGTH: Final = 16 * 1024
MAX_KID_LENGTH: Final = 256
FORBIDDEN_HEADERS: Final = frozenset({"jwk", "jku", "x5u", "x5c", "crit"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# JSON from a request nests a few levels (a request object's ``claims``: five); far deeper is
# an attack on the parsers, ours and the libraries' that read the same text after us.
MAX_JSON_DEPTH: Final = 16


class UnacceptableJwtError(ValueError):
    """The token breaks the header policy; the message says which rule (safe to show)."""


class UnacceptableJsonError(ValueError):
    """JSON over its size or nesting limit; the message says which (safe to show)."""


def load_json(text: str | bytes, *, max_length: int) -> Any:
    """``text`` parsed as JSON, if it is at most ``max_length`` long and nests at most
    MAX_JSON_DEPTH levels; else ValueError (UnacceptableJsonError, or the parser's own)."""
    if len(text) > max_length:
        raise UnacceptableJsonError(f"the JSON is longer than {max_length} characters")
    try:
        value = json.loads(text)
    except RecursionError:
        raise UnacceptableJsonError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels") from None
    if _nesting(value) > MAX_JSON_DEPTH:
        raise UnacceptableJsonError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def _nesting(value: Any) -> int:
    """How many levels of arrays and objects ``value`` nests, counted without recursion (and
    no further than one past the limit)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


def check_jwt(
    token: str,
    *,
    algorithms: Collection[str],
    max_length: int = MAX_JWT_LENGTH,
    require_kid: bool = True,
    embedded_key: bool = False,
) -> dict[str, Any]:
    """The token's protected header, once the token passes the policy; else
    UnacceptableJwtError.

    ``require_kid``: our own tokens always name their key. An agency's may leave it out while
    it has a single key (OpenID Connect Core 10.1 asks for ``kid`` only when a JWK Set holds
    several; ``ClientKeyResolver`` holds agencies to that), and common client libraries do.
    ``embedded_key``: a DPoP proof (RFC 9449 section 4.2) is the one JWT whose key is its own
    ``jwk`` header, by design: the proof shows possession of that key, and what it binds is
    the key's thumbprint, never a key we trust for anything else.
    """
    if len(token) > max_length:
        raise UnacceptableJwtError(f"the JWT is longer than {max_length} characters")
    parts = token.split(".")
    if len(parts) != 3 or not all(_BASE64URL.fullmatch(p) for p in parts):
        raise UnacceptableJwtError("not a signed JWT in compact form")
    header = _json_part(parts[0], max_length, "header")
    # The claims too, though they are read only after the signature is checked: some
    # libraries parse them before (authlib looks the client up by an assertion's ``sub``).
    _json_part(parts[1], max_length, "claims")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise UnacceptableJwtError(
            f"the JWT must be signed with one of {', '.join(sorted(algorithms))}"
        )
    kid = header.get("kid")
    if kid is None and not require_kid:
        pass
    elif not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise UnacceptableJwtError("the JWT header must name its key (kid)")
    refused = sorted((FORBIDDEN_HEADERS - ({"jwk"} if embedded_key else set())) & header.keys())
    if refused:
        raise UnacceptableJwtError(f"the JWT header may not carry {', '.join(refused)}")
    return header


def _json_part(part: str, max_length: int, name: str) -> dict[str, Any]:
    try:
        value = load_json(
            base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)), max_length=max_length
        )
    except UnacceptableJsonError as exc:
        raise UnacceptableJwtError(f"the JWT {name}: {exc}") from None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise UnacceptableJwtError(f"the JWT {name} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise UnacceptableJwtError(f"the JWT {name} is not a JSON object")
    return value
