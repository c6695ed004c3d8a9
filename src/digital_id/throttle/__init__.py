"""Rate limits: how often one IP address, NIK or client may try something, counted in the
database so every worker sees the same counts: exactly, hit by hit (the login limits), or
counted in each process and synchronised in the background (the token path's limits)."""
