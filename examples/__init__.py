"""Runnable examples for agencies integrating with Digital ID (not part of the provider)."""
