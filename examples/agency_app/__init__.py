"""A demo agency web app that logs citizens in with Digital ID, using authlib's client.

Run it with ``python -m examples.agency_app`` (see README.md in this directory).
"""

from __future__ import annotations

from examples.agency_app.app import AgencyConfig, create_app

__all__ = ["AgencyConfig", "create_app"]
