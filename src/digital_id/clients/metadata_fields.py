"""Reading registration metadata one field at a time: strings, choices, flags and URIs, each
refusal naming the field and the rule (``InvalidClientMetadataError``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


class InvalidClientMetadataError(ValueError):
    """RFC 7591 section 3.2.2: ``invalid_redirect_uri`` or ``invalid_client_metadata``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.error = (
            "invalid_redirect_uri"
            if field.startswith("redirect_uris")
            else "invalid_client_metadata"
        )


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidClientMetadataError(name, "must be true or false")
    return value


def text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidClientMetadataError(name, "must be a non-empty string")
    return value.strip()


def strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadataError(name, "must be an array of strings")
    return value


def choice(data: dict[str, Any], name: str, allowed: tuple[str, ...], *, default: Any) -> Any:
    if name not in data:
        return default
    value = data[name]
    if value not in allowed:
        raise InvalidClientMetadataError(name, f"{value!r} is not one of {', '.join(allowed)}")
    return value


def choices(
    data: dict[str, Any], name: str, allowed: tuple[str, ...], *, default: tuple[str, ...]
) -> tuple[str, ...]:
    if name not in data:
        return default
    values = strings(data, name)
    if not values:
        raise InvalidClientMetadataError(name, "must not be empty")
    for index, value in enumerate(values):
        if value not in allowed:
            raise InvalidClientMetadataError(
                f"{name}[{index}]", f"{value!r} is not one of {', '.join(allowed)}"
            )
    return tuple(dict.fromkeys(values))


def uri_list(data: dict[str, Any], name: str, production: bool) -> tuple[str, ...]:
    return _distinct(data, name, lambda value, item: _redirect_uri(value, item, production))


def resource_list(data: dict[str, Any], name: str, production: bool) -> tuple[str, ...]:
    return _distinct(data, name, lambda value, item: resource_uri(value, item, production))


def _distinct(
    data: dict[str, Any], name: str, check: Callable[[str, str], object]
) -> tuple[str, ...]:
    """An array of strings, each passing ``check`` (given the value and its item's name),
    none twice."""
    values = strings(data, name)
    for index, value in enumerate(values):
        check(value, f"{name}[{index}]")
    if len(set(values)) != len(values):
        raise InvalidClientMetadataError(name, "lists the same URI twice")
    return tuple(values)


def _redirect_uri(value: str, name: str, production: bool) -> None:
    """OAuth 2.0 Security BCP: exact strings, no fragments, https except loopback and native apps."""
    parts = urlsplit(value)
    if not parts.scheme:
        raise InvalidClientMetadataError(name, "must be an absolute URI")
    if parts.fragment or "#" in value:
        raise InvalidClientMetadataError(name, "fragments are not allowed")
    if "*" in value:
        raise InvalidClientMetadataError(
            name, "wildcards are not allowed; register each URI exactly"
        )
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidClientMetadataError(name, "must name a host")
        if production and parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise InvalidClientMetadataError(
                name, "must use https in production (http only for loopback)"
            )
    elif "." not in parts.scheme:
        # RFC 8252 section 7.1: native apps use a reverse-domain private-use scheme.
        raise InvalidClientMetadataError(
            name, f"scheme {parts.scheme!r} is neither https nor a reverse-domain app scheme"
        )


def web_uri(value: object, name: str, production: bool) -> str:
    if not isinstance(value, str):
        raise InvalidClientMetadataError(name, "must be a string")
    parts = urlsplit(value)
    if name == "backchannel_logout_uri" and (parts.fragment or "#" in value):
        raise InvalidClientMetadataError(
            name, "fragments are not allowed (Back-Channel Logout 1.0, section 2.2)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidClientMetadataError(name, "must be an absolute http(s) URL")
    if production and parts.scheme != "https":
        raise InvalidClientMetadataError(name, "must use https in production")
    return value


def resource_uri(value: object, name: str, production: bool) -> str:
    """RFC 8707 section 2: an absolute URI without a fragment; https in production."""
    if not isinstance(value, str):
        raise InvalidClientMetadataError(name, "must be a string")
    if "#" in value:
        raise InvalidClientMetadataError(name, "fragments are not allowed (RFC 8707)")
    return web_uri(value, name, production)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
