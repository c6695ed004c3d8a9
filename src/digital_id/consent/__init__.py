"""A citizen's consent to an agency's use of their data."""
