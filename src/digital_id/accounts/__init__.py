"""Citizen credentials: PIN hashing with a pepper, PIN rules, activation, lockout."""
