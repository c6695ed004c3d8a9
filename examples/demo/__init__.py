"""The local demo: two agencies and three citizens on a development Digital ID."""
