#!/usr/bin/env bash
# Set up (a virtualenv in .venv, the package) and run the main job on the bundled default:
# compile the zoo's 1.0-SqNxt-23 for the 16x16 array, writing the schedule dumps to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/sqnxtc compile zoo:1.0-SqNxt-23 --target pe16x16 -o out/ "$@"
