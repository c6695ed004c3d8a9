# syntax=docker/dockerfile:1
# Build:  docker build -t digital-id .
# Try:    docker run -p 8000:8000 -e DIGITAL_ID_ENV=development -v digital-id-data:/srv/digital-id \
#           -v digital-id-keys:/run/secrets/digital-id-keys digital-id
#         (the image defaults to production, which refuses to start without an https
#         DIGITAL_ID_ISSUER and a DIGITAL_ID_KEYS_PASSPHRASE of its own)
#         (migrate first: the same with `--rm ... digital-id db upgrade`, then `keys init`)
# Fleet:  DIGITAL_ID_DATABASE_URL=postgresql://..., the keys directory mounted read-only at
#         /run/secrets/digital-id-keys, DIGITAL_ID_KEYS_PASSPHRASE from the secret store,
#         `serve ... --workers N`; see docs/deployment.md.

FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/digital-id
WORKDIR /build
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY migrations ./migrations
RUN /opt/digital-id/bin/pip install .

FROM python:3.12-slim AS runtime
RUN groupadd --system --gid 10001 digitalid \
 && useradd --system --uid 10001 --gid digitalid --home-dir /srv/digital-id --create-home digitalid \
 && install -d -o digitalid -g digitalid -m 0700 /run/secrets/digital-id-keys
COPY --from=build /opt/digital-id /opt/digital-id
# The SQLite default is for a single-container trial only; a fleet sets
# DIGITAL_ID_DATABASE_URL to PostgreSQL (docs/deployment.md).
# Production unless told otherwise: a forgotten setting then stops the start (an https
# issuer and a key passphrase of your own are required) instead of serving development
# defaults. A local trial sets DIGITAL_ID_ENV=development.
ENV PATH=/opt/digital-id/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DIGITAL_ID_ENV=production \
    DIGITAL_ID_DATABASE_URL=sqlite:////srv/digital-id/var/digital-id.sqlite3 \
    DIGITAL_ID_KEYS_DIR=/run/secrets/digital-id-keys \
    DIGITAL_ID_METRICS_HOST=0.0.0.0
WORKDIR /srv/digital-id
USER digitalid:digitalid
VOLUME ["/srv/digital-id"]
# 8000: the application, for the reverse proxy. 9464: Prometheus metrics, for the monitoring
# network only (publish it on that network's address, never with 8000; docs/deployment.md).
EXPOSE 8000 9464
# Liveness only: readiness (/readyz) is for the proxy or orchestrator to route on.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["digital-id"]
# One worker per core the container may use; override with `serve ... --workers N`.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
