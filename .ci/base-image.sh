#!/usr/bin/env bash
# TEST-ONLY stand-in for the official python:3.11.10-slim-bookworm (no registry of base images is reachable
# here): Debian bookworm made with debootstrap, with Debian's python3 (3.11.2) where the official image has
# its Python (/usr/local/bin/python3.11, python3, python, pip). Not what users get.
# Usage: base-image.sh TAG   (imports the image into the current podman store under TAG)
# The sha256 of this file keys the cached image (.ci/container-build): edit it and the base is rebuilt.
set -euo pipefail
tag=$1
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/bidsapp-ci-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,netbase,tzdata \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log"; echo "debootstrap failed"; exit 1; }
rm -f "$root.log"
(
  cd "$root"
  # slim like the official -slim images: no apt lists, docs, man pages, locales
  rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc/* usr/share/man/* usr/share/locale/* \
    usr/share/info/* var/log/*.log
  rm -f usr/lib/python3.11/EXTERNALLY-MANAGED   # the official image's Python is not Debian-managed
  for n in python3.11 python3 python; do ln -sf /usr/bin/python3.11 "usr/local/bin/$n"; done
  for n in pip3.11 pip3 pip; do ln -sf /usr/bin/pip3 "usr/local/bin/$n"; done
  find usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
)
tar --numeric-owner -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  --message "TEST-ONLY stand-in for python:3.11.10-slim-bookworm (debootstrap bookworm + Debian python3)" \
  - "$tag" >/dev/null
