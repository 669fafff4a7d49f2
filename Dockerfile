# mallpoints: one server process on the embedded SQLite default, or point MALLPOINTS_DATABASE_URL
# at PostgreSQL (postgres://user:pass@host:5432/db) for production and more workers.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api ./api
COPY seeds ./seeds
RUN pip install . && useradd --create-home --uid 10001 mallpoints && mkdir -p /app/var && chown mallpoints /app/var
USER mallpoints
VOLUME ["/app/var"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["mallpoints", "serve", "--host", "0.0.0.0", "--port", "8000"]
