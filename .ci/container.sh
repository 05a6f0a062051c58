#!/usr/bin/env bash
# CI container check: build the xApp image with podman on a locally bootstrapped Debian base,
# run it with published ports, drive it with the simulator as E2 node from the host, then
# stop and remove it (also on failure). Recipe: shared notes "Containers" (runc, ulimits in a
# containers.conf, overlay storage in a work dir, the host CA mounted during the build).
#
# Needs root on Debian 12 and `ranpd` installed on the host (.ci/run installs it first).
# Environment: RANPD_CONTAINER_WORK (podman storage + confs, default /var/tmp/ranpd-container),
# RANPD_E2NODE_SCENARIO, RANPD_E2NODE_UES, RANPD_E2NODE_SLOTS, RANPD_E2NODE_DEADLINE_US.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${RANPD_CONTAINER_WORK:-/var/tmp/ranpd-container}
BASE_IMAGE=localhost/debian-python:bookworm
IMAGE=localhost/ranpd-xapp:ci
CA=/etc/ssl/certs/ca-certificates.crt
E2_PORT=36421
HTTP_PORT=8080
SCENARIO=${RANPD_E2NODE_SCENARIO:-uma-mid-pedestrian}
UES=${RANPD_E2NODE_UES:-16}
SLOTS=${RANPD_E2NODE_SLOTS:-4000}
DEADLINE_US=${RANPD_E2NODE_DEADLINE_US:-20000}
START=$SECONDS
step() { echo "[container +$((SECONDS - START))s] $*"; }

STUDENT=xapp/models/default.onnx
[[ -f $STUDENT ]] || { echo "no shipped student at $STUDENT: produce it with \`ranpd train --profile full\`"; exit 1; }

host_packages=(podman buildah runc debootstrap fuse-overlayfs slirp4netns uidmap)
missing=()
for p in "${host_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  step "installing host packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$WORK/storage" "$WORK/run"
nofile=$(ulimit -Hn)
cat >"$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
cat >"$WORK/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
CONF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf

if ! podman image exists "$BASE_IMAGE"; then
  step "bootstrapping the local Debian base $BASE_IMAGE"
  rootfs=$(mktemp -d "$WORK/rootfs.XXXXXX")
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
  tar --numeric-owner -C "$rootfs" -c . | podman import --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
fi

step "building $IMAGE"
build_start=$SECONDS
podman build --pull=never --format docker -v "$CA:$CA:ro" \
  --build-arg BASE="$BASE_IMAGE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; exit 1; }
step "image built in $((SECONDS - build_start))s"

cid=$(podman run -d --health-interval disable -p "127.0.0.1:$E2_PORT:$E2_PORT" -p "127.0.0.1:$HTTP_PORT:$HTTP_PORT" "$IMAGE")
cleanup() {
  podman logs --tail 20 "$cid" 2>&1 | sed 's/^/[xapp] /' || true
  podman rm -f -t 2 "$cid" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "waiting for the container to report healthy"
for _ in $(seq 60); do
  podman healthcheck run "$cid" >/dev/null 2>&1 && break
  sleep 1
done
podman healthcheck run "$cid" >/dev/null || { echo "xApp container never became healthy"; exit 1; }

# The check is that the container decides over the published port; its speed is a benchmark's job
# (`ranpd bench xapp`), so the per-slot deadline is kept well above CPU and port-forwarding noise.
step "simulator as E2 node against the container: $SCENARIO, $UES UEs, $SLOTS slots, deadline ${DEADLINE_US} us"
ranpd e2node --xapp "127.0.0.1:$E2_PORT" --scenario "$SCENARIO" --slots "$SLOTS" --ues "$UES" --seed 0 \
  --deadline-us "$DEADLINE_US" --json >"$WORK/e2node.json"
python3 - "$WORK/e2node.json" <<'PY'
import json, sys
k = json.load(open(sys.argv[1]))
print({key: k[key] for key in ("decisions", "fallback_rate", "rtt_p50_us", "rtt_p99_us",
                               "reconnects", "throughput_mbps", "bler_first_tx")})
assert k["decisions"] > 0, "no decisions made"
assert k["fallback_rate"] < 0.5, f"{k['fallback_rate']:.1%} of decisions fell back to OLLA: the xApp did not answer in time"
PY
step "container check passed"
