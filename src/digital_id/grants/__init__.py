"""Authorization grants and what hangs off them: codes, refresh token families, revoked access
tokens. The tables and every operation on them; nothing above writes them directly."""
