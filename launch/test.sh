#!/usr/bin/env bash
# test.sh: installs and builds what is missing, then runs every test (ctest; the MPI tests
# under mpiexec with 1, 2 and 4 ranks).
#   bash launch/test.sh [build-dir] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
bash launch/setup.sh "$@"
ctest --test-dir "$build" --output-on-failure
