#!/usr/bin/env bash
# setup.sh: installs what regdist needs (Debian packages) and builds it into build/.
# Quick and quiet when everything is present. Run as root, or as a user with sudo.
#   bash launch/setup.sh [build-dir] [extra cmake args...]
#   bash launch/setup.sh --ci-tools    only installs the tools of CI's fuzz and valgrind
#                                      passes (.ci/run, docs/fuzzing.md); builds nothing
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc make cmake pkg-config zlib1g-dev libopenmpi-dev openmpi-bin libopenblas-dev
          libhdf5-dev hdf5-tools libcmocka-dev libconfig-dev libvips-dev libcjson-dev
          dataset-fashion-mnist
          python3-torch python3-h5py)  # the last two: the PyTorch bridge and its test only
ci_tools_only=0
if [ "${1:-}" = "--ci-tools" ]; then
  # clang with its sanitizer and libFuzzer runtimes (only recommended by clang, so named),
  # llvm for llvm-symbolizer (readable sanitizer stacks), valgrind
  packages=(clang libclang-rt-14-dev llvm valgrind)
  ci_tools_only=1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 2; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
if ((ci_tools_only)); then exit 0; fi

build="${1:-build}"
shift || true
if [ ! -f "$build/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "setup: built $build/regdist"
