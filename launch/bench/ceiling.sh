#!/bin/bash
# ceiling.sh: how close two synchronous ranks come to what this host's two cores allow.
#
# usage: bash launch/bench/ceiling.sh [ROUNDS] [REGDIST] [CONFIG]
#        (defaults: 5, build/regdist, launch/configs/cnn6_mlp4.cfg at its global batch B)
# environment: BATCH (B, else the config's), STEPS (timed steps a run, 20), MPIEXEC (mpirun)
#
# Each round runs, one after another (cnn6_mlp4: about 40 s a round):
#   one rank pinned to core 0, then to core 1, global batch B            -> t0, t1
#   two independent one-rank runs at once, one pinned to each core, each with batch B/2,
#   no communication at all: the best two synchronous ranks could do     -> h0, h1
#   regdist on 2 ranks (Open MPI binds rank r to core r), global batch B  -> t2
# A synchronous step waits for the slower rank, so two ranks cannot beat max(h0, h1): the
# ceiling on "2 ranks / 1 rank" is min(t0, t1) / max(h0, h1). It prints each round's median
# step times (ms), then the medians of the per-round ratios: core 1 / core 0, 2 ranks / the
# faster core's one rank, the host's ceiling, and 2 ranks / the ceiling (1.00 = no overhead
# beyond the host's). Needs 2 cores, taskset and mpirun.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
bin=${2:-build/regdist}
cfg=${3:-launch/configs/cnn6_mlp4.cfg}
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
unset OPENBLAS_CORETYPE
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then echo "ceiling: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; fi
if [ "$(nproc)" -lt 2 ]; then echo "ceiling: needs 2 cores, this machine gives $(nproc)" >&2; exit 2; fi

steps=${STEPS:-20}
read -r -a mpiexec <<< "${MPIEXEC:-mpirun}"
# bench B COMMAND...: COMMAND (ending in regdist) benches $cfg at global batch B ("" = $BATCH
# or the config's)
bench() {
  local b=${1:-${BATCH:-}}; shift
  "$@" bench --config "$cfg" --threads 1 --steps "$steps" --warmup 3 ${b:+--batch "$b"} 2>&1
}
ms() { grep -o "median step [0-9.]* ms" | head -1 | cut -d' ' -f3 || true; }
# step B COMMAND...: bench's median step (ms), or a one-line error and exit 2
step() {
  local log t
  log=$(bench "$@") || true
  t=$(ms <<< "$log")
  if [ -z "$t" ]; then echo "ceiling: '${*:2}' gave no step time: $(tail -1 <<< "$log")" >&2; exit 2; fi
  echo "$t"
}
out=$(mktemp)
h0f=$(mktemp)
trap 'rm -f "$out" "$h0f"' EXIT
echo "round core0 core1 half_core0 half_core1 2ranks  (median step, ms)"
for r in $(seq "$rounds"); do
  log=$(bench "" taskset -c 0 "$bin") || true
  t0=$(ms <<< "$log")
  batch=$(grep -o "global batch [0-9]*" <<< "$log" | head -1 | cut -d' ' -f3) || true
  if [ -z "$t0" ] || [ -z "$batch" ]; then
    echo "ceiling: '$bin bench --config $cfg' gave no step time: $(tail -1 <<< "$log")" >&2; exit 2
  fi
  if [ $((batch % 2)) -ne 0 ]; then
    echo "ceiling: the global batch is $batch; two ranks need an even one (set BATCH)" >&2; exit 2
  fi
  half=$((batch / 2))
  t1=$(step "" taskset -c 1 "$bin")
  (step $half taskset -c 0 "$bin" > "$h0f") &
  h1=$(step $half taskset -c 1 "$bin")
  wait $! || exit 2
  h0=$(cat "$h0f")
  t2=$(step "" "${mpiexec[@]}" -n 2 --bind-to core "$bin")
  echo "$r $t0 $t1 $h0 $h1 $t2" | tee -a "$out"
done
awk '
function median(v, n,   i, j, t) {
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
  return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function min(a, b) { return a < b ? a : b }
function max(a, b) { return a > b ? a : b }
{ n++; one = min($2, $3); pair = max($4, $5)
  cores[n] = $3 / $2; speed[n] = one / $6; lim[n] = one / pair; eff[n] = pair / $6 }
END {
  printf "per-round ratio medians:\n"
  printf "  core 1 / core 0, the one-rank step         %.3f\n", median(cores, n)
  printf "  2 ranks / 1 rank (faster core)             %.2f\n", median(speed, n)
  printf "  ceiling for 2 ranks / 1 rank on this host   %.2f  (1 rank / slower of two independent halves)\n", median(lim, n)
  printf "  2 ranks / that ceiling                     %.3f\n", median(eff, n)
}' "$out"
