FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2
COPY pyproject.toml requirements.lock README.md ./
COPY config ./config
COPY ingest ./ingest
COPY workers ./workers
COPY newswire ./newswire
RUN python -m pip install --upgrade pip \
 && python -m pip install --no-cache-dir -c requirements.lock . \
 && useradd --create-home newswire && mkdir -p /app/var && chown newswire /app/var
USER newswire
CMD ["newswire", "status"]
