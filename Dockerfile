# mallpoints in production mode: set MALLPOINTS_DATABASE_URL (PostgreSQL), MALLPOINTS_SECRET_KEY and
# MALLPOINTS_ADMIN_PASSWORD (the defaults are refused), optionally MALLPOINTS_REDIS_URL; then create the
# first operator. Behind a reverse proxy, set MALLPOINTS_TRUSTED_PROXIES to its address (X-Forwarded-For is
# believed from nobody else; uvicorn's FORWARDED_ALLOW_IPS is not read). docs/deploy.md lists every variable.
# For a local try-out with the demo mall:
#   docker run -e MALLPOINTS_ENV=development -p 8000:8000 IMAGE mallpoints serve --host 0.0.0.0 --demo
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MALLPOINTS_ENV=production \
    MALLPOINTS_TRUSTED_PROXIES=
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
