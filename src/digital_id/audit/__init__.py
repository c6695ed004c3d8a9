"""The tamper-evident audit trail of security events."""
