"""The citizen-facing pages and the HTTP surface of the protocol; thin over the domain."""
