"""Browser single sign-on sessions."""
