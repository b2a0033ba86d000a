#!/bin/sh
# Install bidsapp into a fresh virtual environment with pinned dependencies, then remove what the app never
# uses at run time (pip, setuptools, wheel, the packages' test suites). The Dockerfile's venv stage runs it.
# Usage: install-runtime.sh PREFIX CONSTRAINTS_FILE WHEEL
set -eu
prefix=$1
constraints=$2
wheel=$3
"${PYTHON:-python3}" -m venv "$prefix"
"$prefix/bin/pip" install --no-cache-dir --quiet -c "$constraints" "$wheel"
"$prefix/bin/bidsapp" --version
site=$("$prefix/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# installers: nothing installs packages into the image at run time
"$prefix/bin/python" -m pip uninstall --yes --quiet pip setuptools wheel
# test suites shipped inside the wheels (numpy, scipy, pandas, nipype, ...): never imported by the app
find "$site" -type d -name tests -prune -exec rm -rf {} +
# C/Cython sources and headers used only to build extensions against these packages
find "$site" -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.c' -o -name '*.cpp' -o -name '*.h' \) -delete
"$prefix/bin/bidsapp" --version >/dev/null
