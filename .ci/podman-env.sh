# Sourced by .ci/container-build: podman settings this machine needs (root, no systemd, no registries).
# Everything podman keeps lies under $BIDSAPP_CI_CACHE (default /var/cache/bidsapp-ci), which persists
# between CI runs on the same machine, so the base image and unchanged layers are built once.
# shellcheck shell=bash
BIDSAPP_CI_CACHE=${BIDSAPP_CI_CACHE:-/var/cache/bidsapp-ci}
P=$BIDSAPP_CI_CACHE/podman
mkdir -p "$P"/graph "$P"/tmp "$P"/libpod "$P"/networks
RUNROOT=${RUNROOT:-$(mktemp -d /tmp/bidsapp-ci-podman-run.XXXXXX)}
cat >"$P/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$P/graph"
runroot = "$RUNROOT"
CONF
cat >"$P/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
tmp_dir = "$P/libpod"
static_dir = "$P/graph/libpod"
volume_path = "$P/graph/volumes"
image_copy_tmp_dir = "$P/tmp"

[network]
network_config_dir = "$P/networks"
CONF
export CONTAINERS_CONF=$P/containers.conf CONTAINERS_STORAGE_CONF=$P/storage.conf TMPDIR=$P/tmp
