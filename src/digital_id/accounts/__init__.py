"""Citizen credentials: PIN hashing with a pepper, PIN rules, activation, login and lockout, the second factor, operator actions."""
