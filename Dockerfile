# ranpd xApp: the E2 stream server and the REST API serving the shipped student.
# Runtime only (numpy, onnxruntime, fastapi, protobuf ...): no torch, no training or test extras.
#
#   podman build --format docker -t ranpd-xapp .        # HEALTHCHECK needs the docker format
#   podman run -d -p 36421:36421 -p 8080:8080 ranpd-xapp
#
# BASE may be any Debian-like image with python3 >= 3.11 and the venv module (CI builds on a
# locally bootstrapped Debian 12 base, see .ci/container.sh).
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/ranpd \
    PATH=/opt/ranpd/bin:$PATH

COPY . /tmp/ranpd-src
RUN python3 -m venv "$VIRTUAL_ENV" \
 && pip install /tmp/ranpd-src \
 && rm -rf /tmp/ranpd-src \
 && python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
 && useradd --system --no-create-home --shell /usr/sbin/nologin ranpd

USER ranpd
WORKDIR /tmp
# 36421: E2 stream (the E2AP port number); 8080: REST (/ric/v1/...).
EXPOSE 36421 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ric/v1/health/alive', timeout=2)"]
CMD ["ranpd", "xapp", "--host", "0.0.0.0", "--e2-port", "36421", "--http-port", "8080"]
