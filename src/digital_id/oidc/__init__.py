"""OpenID Connect: the authlib server wiring, its grants and endpoints, claims and tokens."""
