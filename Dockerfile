# syntax=docker/dockerfile:1
#
# ksentinel's container image: one image for the probe exporter (`ksentinel probe serve`), the load
# test (`ksentinel load`, or Locust's master and workers with `--entrypoint locust`) and CI jobs
# (`ksentinel contract`, `ksentinel probe run --once`). See docs/deploying.md.
#
#   docker build -t ksentinel:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run --rm ksentinel:0.1.0 --version
#
# Both stages use the same base, pinned by version and by digest. To move to a newer Python, change the
# tag and the digest in both FROM lines together (`docker buildx imagetools inspect python:TAG`).

# --- builder: the ksentinel wheel and the wheels of all its dependencies --------------------------
FROM python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5 AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Only what the wheel is built from (pyproject.toml names README.md and LICENSE; the suites are the
# wheel's package data).
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY contracts ./contracts
COPY load ./load
COPY dashboards ./dashboards
COPY probes ./probes
# `pip wheel .` builds ksentinel's wheel with hatchling (in pip's isolated build environment) and
# puts the wheels of every dependency beside it: the runtime stage installs from here, offline.
RUN python -m pip wheel --wheel-dir /wheels . \
    && ls /wheels/ksentinel-*.whl

# --- runtime: the wheels installed into a virtual environment, nothing else -----------------------
FROM python:3.11.11-slim-bookworm@sha256:081075da77b2b55c23c088251026fb69a7b2bf92471e491ff5fd75c192fd38e5 AS runtime

ARG VERSION=dev
LABEL org.opencontainers.image.title="ksentinel" \
      org.opencontainers.image.description="Contract tests, load tests and synthetic probes for Kaltura-style video platform APIs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"

# A fixed, non-root user: UID/GID 10001 (Kubernetes' runAsNonRoot checks the numeric USER below), who
# owns the working directory.
RUN groupadd --system --gid 10001 ksentinel \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/ksentinel --create-home \
       --shell /usr/sbin/nologin ksentinel \
    && mkdir -p /opt/ksentinel \
    && chown 10001:10001 /opt/ksentinel

# In a container the exporter and the load metrics must listen beyond loopback. KSENTINEL_PROBE_LISTEN
# wins over [probes] listen; the HEALTHCHECK reads its port too, so change the port with it (-e).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    KSENTINEL_PROBE_LISTEN=0.0.0.0:9464 \
    KSENTINEL_LOAD_METRICS_HOST=0.0.0.0

# Only the wheels, from the builder (a bind mount: they do not stay in a layer); no index, no network.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels ksentinel \
    && ksentinel --version

# The working directory belongs to the image's user: reports/, dashboards/build/ and .ksentinel/ are
# written here. `ksentinel init` copies the suites shipped in the wheel into it (contracts/, load/,
# dashboards/, probes/ and a commented ksentinel.toml), so a bind mount or a derived image can
# replace one of them; without them every command would use the wheel's copy just the same.
WORKDIR /opt/ksentinel
USER 10001:10001
RUN ksentinel init /opt/ksentinel

# 9464: the probe exporter (/metrics, /probe, /-/healthy, /-/ready); 5557: Locust's master, which the
# workers connect to; 8089: Locust's web UI.
EXPOSE 9464 5557 8089

# The probe exporter's liveness: /-/healthy is 200 while its scheduler runs. Python's standard library
# only (the slim image has no curl); an HTTP error, a refused connection or a timeout exits 1.
# Containers that run something else (load, CI) have no exporter: run them with --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('KSENTINEL_PROBE_LISTEN', ':9464').rpartition(':')[2] or '9464'; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:' + port + '/-/healthy', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["ksentinel"]
CMD ["--help"]
