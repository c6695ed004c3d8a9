"""Rate limits: how often one IP address, NIK or client may try something, counted in the
database so every worker sees the same counts."""
