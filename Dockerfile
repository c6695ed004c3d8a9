# syntax=docker/dockerfile:1
# Build:  docker build -t digital-id .
# Run:    docker run -p 8000:8000 -v digital-id-data:/srv/digital-id digital-id
#         (migrate first: docker run --rm -v digital-id-data:/srv/digital-id digital-id db upgrade)

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
 && useradd --system --uid 10001 --gid digitalid --home-dir /srv/digital-id --create-home digitalid
COPY --from=build /opt/digital-id /opt/digital-id
ENV PATH=/opt/digital-id/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DIGITAL_ID_DATABASE_URL=sqlite:////srv/digital-id/var/digital-id.sqlite3 \
    DIGITAL_ID_KEYS_DIR=/srv/digital-id/keys
WORKDIR /srv/digital-id
USER digitalid:digitalid
VOLUME ["/srv/digital-id"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["digital-id"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
