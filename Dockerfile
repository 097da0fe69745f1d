# Levity's container image: python:3.11-slim, dependencies built in a first stage,
# runs as an unprivileged user, static files collected into the image.
#
#   docker build -t levity .
#   docker run --rm -e SECRET_KEY=... -e DATABASE_URL=postgres://... levity python manage.py migrate
#   docker run -d -p 9000:9000 -e SECRET_KEY=... -e DATABASE_URL=postgres://... levity
#
# Migrations never run at start: run `python manage.py migrate` as above (or the
# compose file's `migrate` service, or deploy/kubernetes/migrate-job.yaml) once per
# upgrade, before the new processes start. docs/deployment.md has the details.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/levity
COPY requirements.txt /tmp/requirements.txt
RUN /opt/levity/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm
ENV PATH=/opt/levity/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=levity_site.settings \
    DATABASE_URL=sqlite:////data/levity.db
RUN groupadd --system --gid 10001 levity \
    && useradd --system --uid 10001 --gid levity --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin levity \
    && mkdir -p /data /app/staticfiles \
    && chown levity:levity /data /app/staticfiles
COPY --from=build /opt/levity /opt/levity
WORKDIR /app
COPY manage.py ./
COPY levity_site ./levity_site
COPY chargepoints ./chargepoints
COPY transactions ./transactions
COPY plugins ./plugins
COPY templates ./templates
USER 10001:10001
# The secret key is only needed to import the settings here; the container gets
# its own (SECRET_KEY or SECRET_KEY_FILE) at run time.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0
VOLUME ["/data"]
EXPOSE 9000 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9000/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "levity_site.server", "--proxy-headers", "--bind", "0.0.0.0", "--port", "9000", "levity_site.asgi:application"]
