# syntax=docker/dockerfile:1
# scheduled-db node image: `docker build -t scheduled-db .`
#
# The same image runs every node; what differs between nodes (id, peers, ports)
# comes from a mounted YAML file and environment variables (see docs/deployment.md).
# Ports: 8080 REST API (HTTP_PORT), 7000 Raft peers (RAFT_PORT), 9090 metrics
# (METRICS_PORT).  Data: the volume at /data (DATA_DIR).

# --- build: wheels for the package and every dependency -----------------------------
FROM python:3.11-slim AS build
WORKDIR /src
# Only what `pip install .` reads: the package metadata (setup.cfg's
# long_description is README.md) and the two packages setup.cfg installs.
COPY pyproject.toml setup.cfg README.md ./
COPY scheduled_db ./scheduled_db
COPY actors ./actors
# With the otel extra: setting OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on in the image
# (unset, nothing of it is imported; docs/deployment.md, "Tracing").
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[otel]'

# --- run -----------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data
# A numeric, unprivileged user: Kubernetes can only prove runAsNonRoot for a
# numeric USER.  /data belongs to it, so a fresh named volume (which copies the
# ownership of the image's directory) is writable.
RUN groupadd --system --gid 10001 scheduled-db \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin scheduled-db \
    && mkdir /data \
    && chown 10001:10001 /data
# The wheels are bind-mounted from the build stage (BuildKit), so they add no layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl
USER 10001:10001
VOLUME /data
EXPOSE 8080 7000 9090
# Liveness only: /livez answers 200 while the process serves HTTP.  Not /health: it
# answers 503 while no leader is known, and marking (or restarting) a node for that
# would not bring back a quorum.  Readiness (a member that knows a leader and
# applied its log) is GET /ready, for load balancers and k8s.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "scheduled-db livez --url http://127.0.0.1:${HTTP_PORT:-8080} --timeout 4 >/dev/null"]
# Exec form: the node is PID 1 and gets SIGTERM itself; a leader then hands
# leadership to the most up-to-date follower and exits 0 within a couple of seconds.
STOPSIGNAL SIGTERM
ENTRYPOINT ["scheduled-db"]
CMD ["run"]
