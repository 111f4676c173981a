# tasklogs: slim, non-root, runs gunicorn with the gevent worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt requirements-s3.txt ./
# boto3 without its declared python-dateutil<3 (kubernetes needs >=3): see requirements-s3.txt
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-s3.txt

COPY tasklogs ./tasklogs
COPY wsgi.py gunicorn.conf.py ./

# uid and gid 10001, as deploy/tasklogs.yaml's securityContext says (runAsUser, runAsGroup)
RUN groupadd --system --gid 10001 tasklogs \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin tasklogs \
    && mkdir -p /app/instance && chown tasklogs /app/instance
USER 10001:10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
