# ranpd xApp: the E2 stream server and the REST API serving the shipped student.
# Runtime only (numpy, onnxruntime, fastapi, protobuf ...): no torch, no training or test extras.
#
#   podman build --format docker -t ranpd-xapp .        # HEALTHCHECK needs the docker format
#   podman run -d -p 36421:36421 -p 8080:8080 ranpd-xapp    # E2, REST (/ric/v1/...)
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
    PATH=/opt/ranpd/bin:$PATH \
    NUMBA_CACHE_DIR=/var/cache/ranpd-numba

# Every runtime dependency is pinned by constraints.txt (resolved in a clean venv; see its header).
# The per-UE kernels (numba) are compiled at build time into NUMBA_CACHE_DIR, which numba needs
# writable: the xApp user owns it.
COPY . /tmp/ranpd-src
RUN python3 -m venv "$VIRTUAL_ENV" \
 && pip install --constraint /tmp/ranpd-src/constraints.txt /tmp/ranpd-src \
 && pip check \
 && rm -rf /tmp/ranpd-src \
 && python3 -c "import importlib.util as u, sys; sys.exit('torch in the runtime image' if u.find_spec('torch') else 0)" \
 && python3 -c "from ranpd.xapp.model import PACKAGED_MODEL as m; import sys; sys.exit(0 if m.is_file() else f'no shipped student at {m}: run ranpd train --profile full before building')" \
 && useradd --system --no-create-home --shell /usr/sbin/nologin ranpd \
 && python3 -c "from ranpd.xapp.service import warm_up; warm_up()" \
 && chown -R ranpd "$NUMBA_CACHE_DIR"

USER ranpd
WORKDIR /tmp
# Settings come from RANPD_XAPP_* variables (override with `-e`); 36421 is the E2AP port number.
ENV RANPD_XAPP_HOST=0.0.0.0 \
    RANPD_XAPP_E2_PORT=36421 \
    RANPD_XAPP_HTTP_PORT=8080
EXPOSE 36421 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ric/v1/health/alive' % os.environ['RANPD_XAPP_HTTP_PORT'], timeout=2)"]
CMD ["ranpd", "xapp"]
