"""OpenID Connect: claims, subject identifiers, and (next) the authlib server wiring."""
