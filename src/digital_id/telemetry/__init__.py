"""Operational telemetry: Prometheus metrics and structured JSON logs.

Nothing here imports the web framework: the request middleware lives in
``digital_id.web.observability`` and calls in; the metrics have a listener of their own.
"""
