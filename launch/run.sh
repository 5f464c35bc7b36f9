#!/usr/bin/env bash
# run.sh: the quick start's main job. Installs and builds what is missing, converts Debian's
# Fashion-MNIST to HDF5 (55,000 train / 5,000 val / 10,000 test), and trains a model: by
# default cnn6_mlp4 on the first 8,200 training images (the motivating small-data case),
# printing train, validation and test accuracy and the train-val gap. It trains data-parallel
# with one MPI rank per core this shell may use (nproc): these small GEMMs gain little from
# threads, ranks scale better. --np N chooses the number of ranks (1: a plain process).
#   bash launch/run.sh [--np N] [config name: cnn6_mlp4 | mlp | rescnn] [regdist train options...]
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  echo "Train options: build/regdist train --help"
}
np=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --np) [ $# -ge 2 ] || { echo "run.sh: --np needs a number of ranks" >&2; exit 2; }
          np=$2; shift 2 ;;
    --np=*) np=${1#--np=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- ${args[@]+"${args[@]}"}
if [ -n "$np" ] && ! [[ "$np" =~ ^[1-9][0-9]{0,3}$ ]]; then
  echo "run.sh: --np $np: give a number of ranks from 1 to 9999" >&2
  exit 2
fi
config=cnn6_mlp4
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then config=$1; shift; fi
[ -f "launch/configs/$config.cfg" ] || { echo "run.sh: no config launch/configs/$config.cfg" >&2; exit 2; }
bash launch/setup.sh build
# Open MPI refuses root unless told (a plain regdist run is a 1-rank MPI job too)
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
data=data/fashion-mnist.h5
if [ ! -f "$data" ]; then
  mkdir -p data
  build/regdist data fashion-mnist --out "$data" --val-size 5000
fi
cores=$(nproc)  # the cores this process may run on (affinity, cpusets), not the machine's
s=$([ "$cores" -eq 1 ] || echo s)
if [ -z "$np" ]; then np=$cores; why="one per core, $cores core$s; --np N to change"
else why="--np $np; $cores core$s available"; fi
train=(build/regdist train --config "launch/configs/$config.cfg" --data "$data"
       --out "runs/$config" "$@")
if [ "$np" -eq 1 ]; then
  echo "run.sh: 1 rank, a plain process ($why)"
  exec "${train[@]}"
fi
echo "run.sh: $np ranks under mpirun ($why)"
# Slots are hardware threads as nproc counts them (Open MPI would count physical cores), and
# more ranks than that are allowed when asked for with --np.
# Ctrl-C reaches this script, not mpirun, which runs in a session of its own: mpirun would turn
# SIGINT into an abort with exit status 1 (Open MPI refuses to forward SIGINT), while SIGUSR1,
# which it forwards, makes every rank finish its step, write last.h5 and exit 0, so the run
# ends as a one-process run does on Ctrl-C. A second Ctrl-C ends it at once.
setsid mpirun -n "$np" --use-hwthread-cpus --oversubscribe "${train[@]}" &
pid=$!
interrupts=0
on_interrupt() {
  interrupts=$((interrupts + 1))
  if [ "$interrupts" -eq 1 ]; then kill -USR1 "$pid" 2>/dev/null || true
  else kill -TERM "$pid" 2>/dev/null || true; fi
}
trap on_interrupt INT TERM
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done  # a trapped signal ends a wait
set +e
wait "$pid"
exit $?
