# The base is pinned to a patch release. Pin it by digest too before a release
# (`docker buildx imagetools inspect python:3.12.12-slim-bookworm` gives it, then
# FROM python:3.12.12-slim-bookworm@sha256:...): not done here because the machines this
# file was written on cannot reach a registry to read the digest, and a made-up digest
# would fail the build. Refresh both with each Python patch release.
FROM python:3.12.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The dependencies first, from the lock CI tests with (requirements.lock): this layer is
# rebuilt only when pyproject.toml or the lock changes, not at every code change. Only the
# runtime's (main, postgres, embedded) are installed: no test tools in the image. Wheels
# only: every locked package has them for x86_64 and aarch64, so no compiler is needed.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
x = p['optional-dependencies']; print('\n'.join(p['dependencies'] + x['postgres'] + x['embedded']))" \
        > /tmp/runtime.txt \
    && pip install --no-cache-dir --only-binary=:all: -c requirements.lock -r /tmp/runtime.txt \
    && rm /tmp/runtime.txt

# Then the code: no dependency is resolved again (--no-deps).
COPY README.md LICENSE ./
COPY worker ./worker
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --home /var/lib/newswatch newswatch \
    && mkdir -p /var/lib/newswatch && chown newswatch /var/lib/newswatch
COPY config ./config

USER newswatch
# The default command is a worker on every queue: the canary through every queue. Compose
# overrides it per service (each worker's own queues, beat's heartbeat).
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 \
    CMD ["newswatch", "health", "--timeout", "25"]
CMD ["newswatch", "worker"]
