#!/bin/sh
# Install bidsapp into a fresh virtual environment with pinned dependencies.
# The Dockerfile's runtime stage runs this script, and CI replays it (.ci/container-checks).
# Usage: install-runtime.sh PREFIX CONSTRAINTS_FILE WHEEL
set -eu
prefix=$1
constraints=$2
wheel=$3
"${PYTHON:-python3}" -m venv "$prefix"
"$prefix/bin/pip" install --no-cache-dir --quiet -c "$constraints" "$wheel"
"$prefix/bin/bidsapp" --version
