#!/usr/bin/env bash
# run.sh: the quick start's main job. Installs and builds what is missing, converts Debian's
# Fashion-MNIST to HDF5 (55,000 train / 5,000 val / 10,000 test), trains the reference MLP
# on one process and reports its test accuracy.
#   bash launch/run.sh [extra regdist train options, e.g. --set train.epochs=5]
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh build
# Open MPI refuses root unless told; a plain regdist run is a 1-rank MPI job
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
data=data/fashion-mnist.h5
if [ ! -f "$data" ]; then
  mkdir -p data
  build/regdist data fashion-mnist --out "$data" --val-size 5000
fi
build/regdist train --config launch/configs/mlp.cfg --data "$data" --out runs/mlp "$@"
build/regdist eval --checkpoint runs/mlp/best.h5 --data "$data" --split test
