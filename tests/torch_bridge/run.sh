#!/bin/bash
# run.sh: the PyTorch bridge's test (test_bridge.py) under a python3 that has torch and h5py.
# Debian's /usr/bin/python3 has them where a python3 earlier on PATH (pyenv) may not; the
# first of python3, /usr/bin/python3 (or only $REGDIST_PYTHON, when set) that imports both
# runs the test.
# Exits 77 (ctest's skip) when none does. Environment: REGDIST_BIN, REGDIST_SOURCE_DIR,
# REGDIST_TEST_TMP (tests/CMakeLists.txt's TEST_ENV).
set -u
# Sanitizer builds: the regdist it starts calls MPI_Init, whose start-up allocations cannot be
# symbolized or suppressed, so it runs with the children's ASAN_OPTIONS (see testutil.c)
if [ -n "${REGDIST_CHILD_ASAN_OPTIONS:-}" ]; then export ASAN_OPTIONS="$REGDIST_CHILD_ASAN_OPTIONS"; fi
here=$(cd "$(dirname "$0")" && pwd)
candidates=(python3 /usr/bin/python3)
if [ -n "${REGDIST_PYTHON:-}" ]; then candidates=("$REGDIST_PYTHON"); fi  # a choice, no fallback
for py in "${candidates[@]}"; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c "import torch, h5py, numpy" 2>/dev/null; then
        exec "$py" "$here/test_bridge.py"
    fi
done
echo "SKIP: no python3 with torch and h5py (tried ${candidates[*]})"
exit 77
