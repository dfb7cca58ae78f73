FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/newswatch newswatch \
    && mkdir -p /var/lib/newswatch && chown newswatch /var/lib/newswatch
COPY config ./config
USER newswatch
CMD ["newswatch", "worker"]
