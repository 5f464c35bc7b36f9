#!/usr/bin/env bash
# run.sh: the quick start's main job. Installs and builds what is missing, converts Debian's
# Fashion-MNIST to HDF5 (55,000 train / 5,000 val / 10,000 test), and trains a model on one
# process: by default cnn6_mlp4 on the first 8,200 training images (the motivating
# small-data case), printing train, validation and test accuracy and the train-val gap.
#   bash launch/run.sh [config name: cnn6_mlp4 | mlp | rescnn] [regdist train options...]
set -euo pipefail
cd "$(dirname "$0")/.."
config=cnn6_mlp4
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then config=$1; shift; fi
[ -f "launch/configs/$config.cfg" ] || { echo "run.sh: no config launch/configs/$config.cfg" >&2; exit 2; }
bash launch/setup.sh build
# Open MPI refuses root unless told; a plain regdist run is a 1-rank MPI job
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
data=data/fashion-mnist.h5
if [ ! -f "$data" ]; then
  mkdir -p data
  build/regdist data fashion-mnist --out "$data" --val-size 5000
fi
build/regdist train --config "launch/configs/$config.cfg" --data "$data" --out "runs/$config" "$@"
