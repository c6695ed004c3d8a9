"""Every request this server makes to an agency's host: its ``jwks_uri``, its
``sector_identifier_uri``, its ``backchannel_logout_uri``.

An agency names these URLs, so each one is a request an outsider may steer. Three rules hold
for all of them, here and nowhere else:

- **A total deadline.** httpx's timeouts are per operation, so a host dripping a byte a
  second never trips a 5 s read timeout and holds the request for as long as it likes. Here
  every socket operation (connect, TLS handshake, each read and write) is given only what is
  left of one deadline for the whole exchange.
- **A size cap.** The body is read as it streams in and dropped past ``max_bytes``; nothing
  larger is ever held in memory.
- **Only public addresses in production.** The host name is resolved, every address it
  resolves to is checked (no private, loopback, link-local, shared, reserved or multicast
  address), and the connection goes to an address that was checked, so a DNS answer that
  changes between check and connect (rebinding) cannot slip a private address through. TLS
  still verifies the certificate against the host name. Development allows loopback, where
  the demo agencies run.

No redirect is followed, no proxy from the environment is used. Written on httpcore (httpx's
transport) because neither library offers a whole-exchange deadline or an address check at
connect time; the network backend hook is httpcore's own extension point for this.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import httpcore

from digital_id.config import Settings

# A JWK Set of a few keys, a sector's redirect URI list or a logout acknowledgement is a few
# KiB; 64 KiB is far above any honest answer.
MAX_RESPONSE_BYTES: Final = 64 * 1024
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundError(Exception):
    """The fetch failed or was refused; the message says why, without the host's answer."""


class RefusedTargetError(OutboundError):
    """The URL names (or resolves to) an address this server must not call."""


@dataclass(frozen=True)
class Fetched:
    status: int
    body: bytes


@dataclass(frozen=True)
class Outbound:
    """The rules for calling out, from the settings; one per process, used from any thread."""

    deadline_seconds: float
    allow_loopback: bool
    max_bytes: int = MAX_RESPONSE_BYTES

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        return cls(
            deadline_seconds=settings.outbound_deadline_seconds,
            allow_loopback=not settings.is_production,
        )

    def address_allowed(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if self.allow_loopback and address.is_loopback:
            return True
        return address.is_global and not address.is_multicast

    def target_problem(self, url: str, *, resolve: bool = False) -> str | None:
        """Why ``url`` may not be called, or None: checked when an agency registers it.

        The host is refused when it is an address literal or ``localhost`` outside the
        allowed ones; with ``resolve``, also when it resolves to one. A name that does not
        resolve yet is left to the check at connect time."""
        host = urlsplit(url).hostname
        if not host:
            return "names no host"
        literal = _literal(host)
        if literal is not None:
            return None if self.address_allowed(literal) else _REFUSED
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return None if self.allow_loopback else _REFUSED
        if resolve:
            try:
                addresses = _resolve(host, 443)
            except OutboundError:
                return None
            if not all(self.address_allowed(address) for address in addresses):
                return _REFUSED
        return None

    def get(self, url: str) -> Fetched:
        return self._exchange("GET", url, [(b"Accept", b"application/json")], b"")

    def post_form(self, url: str, form: dict[str, str]) -> Fetched:
        body = urlencode(form).encode()
        headers = [(b"Content-Type", b"application/x-www-form-urlencoded")]
        return self._exchange("POST", url, headers, body)

    def _exchange(
        self, method: str, url: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Fetched:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundError("not an absolute http(s) URL")
        deadline = time.monotonic() + self.deadline_seconds
        backend = _CheckedBackend(self, deadline)
        try:
            with (
                httpcore.ConnectionPool(
                    ssl_context=ssl.create_default_context(),
                    network_backend=backend,
                    max_connections=1,
                ) as pool,
                pool.stream(
                    method,
                    url,
                    headers=[*headers, (b"Content-Length", str(len(body)).encode())],
                    content=body,
                    extensions={"timeout": dict.fromkeys(_TIMEOUTS, self.deadline_seconds)},
                ) as response,
            ):
                received = bytearray()
                for chunk in response.iter_stream():
                    received += chunk
                    if len(received) > self.max_bytes:
                        raise OutboundError(f"the answer is larger than {self.max_bytes} bytes")
                return Fetched(response.status, bytes(received))
        except httpcore.TimeoutException:
            raise OutboundError(
                f"no complete answer within {self.deadline_seconds:g} seconds"
            ) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise OutboundError(f"the host could not be reached ({type(exc).__name__})") from None


_REFUSED: Final = "names a private, loopback, link-local or reserved address"
_TIMEOUTS: Final = ("connect", "read", "write", "pool")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[Address]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundError(f"the host name does not resolve ({type(exc).__name__})") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _CheckedBackend(httpcore.NetworkBackend):
    """Resolves, checks every address, connects to a checked one; one deadline for all."""

    def __init__(self, outbound: Outbound, deadline: float) -> None:
        self._outbound = outbound
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(host, port)
        if not addresses or not all(self._outbound.address_allowed(a) for a in addresses):
            raise RefusedTargetError(f"the host {_REFUSED}")
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_remaining(self._deadline, timeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise RefusedTargetError("unix sockets are not a target")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._inner.read(max_bytes, _remaining(self._deadline, timeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(self._deadline, timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        secured = self._inner.start_tls(
            ssl_context, server_hostname, _remaining(self._deadline, timeout)
        )
        return _DeadlineStream(secured, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _remaining(deadline: float, timeout: float | None) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the deadline has passed")
    return left if timeout is None else min(left, timeout)
