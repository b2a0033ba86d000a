#!/bin/sh
# Build the bidsapp image with the version read from pyproject.toml (its one source).
# Usage: scripts/build-image.sh [extra build options...]   e.g. --no-cache, --build-arg BASE_IMAGE=...
# ENGINE=podman to use podman (default: docker); IMAGE to change the repository name (default bidsapp/bidsapp).
set -eu
cd "$(dirname "$0")/.."
version=$(scripts/version.sh)
image=${IMAGE:-bidsapp/bidsapp}
set -x
exec "${ENGINE:-docker}" build --build-arg VERSION="$version" -t "$image:$version" "$@" .
