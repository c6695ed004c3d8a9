"""Citizen credentials: PIN rules and hashing, activation, PIN login and lockout, the second
factor, and what operators do to an account."""
