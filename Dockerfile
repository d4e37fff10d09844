# syntax=docker/dockerfile:1
# retention-worker image: `docker build -t retention-worker .` from the repository root.
#
# Runs `retention-worker run` (the daemon) as UID/GID 10001, reads its configuration from
# /etc/retention-worker/config (mount the catalogue, products/ and customers/ there) and
# serves /metrics, /healthz and /readyz on port 9464. Secrets come from the environment or
# from files named by <NAME>_FILE. See docs/operations.md, "Container image".

ARG PYTHON_VERSION=3.11.11

# --- build: install the project and its dependencies into a virtualenv -----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ worker/
COPY connectors/ connectors/
COPY demo/ demo/

# psycopg[binary] and the other dependencies ship wheels: no compiler is needed. The MySQL
# driver comes with the `mysql` extra. pip itself is removed from the copied virtualenv.
RUN python -m venv /opt/retention-worker \
    && /opt/retention-worker/bin/pip install ".[mysql]" \
    && /opt/retention-worker/bin/pip uninstall --yes pip

# --- runtime: the virtualenv on the same slim base, no build tools, not root -----------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

ARG UID=10001
ARG GID=10001

# The base image's own pip and setuptools are not needed to run the worker.
RUN groupadd --system --gid "${GID}" retention \
    && useradd --system --uid "${UID}" --gid "${GID}" --home-dir /var/lib/retention-worker \
        --no-create-home --shell /usr/sbin/nologin retention \
    && mkdir -p /etc/retention-worker/config /var/lib/retention-worker \
    && chown "${UID}:${GID}" /var/lib/retention-worker \
    && python -m pip uninstall --yes pip setuptools wheel \
    && rm -rf /root/.cache

COPY --from=build /opt/retention-worker /opt/retention-worker
COPY deploy/docker/healthcheck.py /opt/retention-worker/healthcheck.py

ENV PATH=/opt/retention-worker/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RETENTION_CONFIG_DIR=/etc/retention-worker/config \
    RETENTION_HTTP_HOST=0.0.0.0 \
    RETENTION_HTTP_PORT=9464 \
    RETENTION_LOG_FORMAT=json

# Writable only here (an emptyDir under Kubernetes): a SQLite state database for trials.
WORKDIR /var/lib/retention-worker
USER 10001:10001
EXPOSE 9464

# /healthz answers 200 while the process and its scheduler loop are alive.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/retention-worker/healthcheck.py"]

ENTRYPOINT ["retention-worker"]
CMD ["run"]
