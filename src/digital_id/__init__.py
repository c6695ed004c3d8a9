"""Digital ID: an OpenID Connect identity provider for Indonesia's national digital identity."""

__version__ = "0.1.0"
