"""Operational telemetry: Prometheus metrics and structured JSON logs.

Nothing here imports the web framework: the request middleware and the ``/metrics`` route
live in ``digital_id.web.observability`` and call in.
"""
