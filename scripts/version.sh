#!/bin/sh
# Print bidsapp's version: pyproject.toml is its one source (the package, the image labels, the image tag,
# singularity.def's build argument and CI all read it from there).
cd "$(dirname "$0")/.." || exit 1
v=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)
[ -n "$v" ] || { echo "scripts/version.sh: no version = \"...\" line in pyproject.toml" >&2; exit 1; }
echo "$v"
