"""The HTTP request as authlib's server classes read it, built from plain values.

authlib ships adapters for Flask and Django only; this is the framework-free one the web
layer fills in, so protocol code never sees FastAPI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload


class Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class ProviderRequest(OAuth2Request):  # type: ignore[misc]
    """``uri`` is the endpoint under the issuer (not the Host the request arrived with), so a
    proxy in front cannot change what the protocol sees."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        query: Sequence[tuple[str, str]] = (),
        form: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self._query = Payload(query)
        self._form = Payload(form)
        # Authorization requests may come by GET (query) or POST (form); token requests by POST.
        self.payload = self._query if method == "GET" else self._form

    @property
    def args(self) -> dict[str, str]:
        return self._query.data

    @property
    def form(self) -> dict[str, Any]:
        return self._form.data

    @property
    def parameters(self) -> list[tuple[str, str]]:
        """Every parameter of the request as sent, to carry it through the login pages."""
        return [(name, value) for name, values in self.payload.datalist.items() for value in values]
