#!/bin/bash
# peers.sh: regdist against PyTorch 1.13, side by side, in interleaved rounds.
#
# usage: bash launch/bench/peers.sh [ROUNDS] [REGDIST]     (defaults: 5, build/regdist)
#
# Each round runs, one after another: regdist 1 rank x 1 thread, PyTorch 1 thread, regdist 2
# ranks x 1 thread, PyTorch DDP/gloo 2 x 1, regdist 1 x 1 on OpenBLAS's Haswell kernels
# (cnn6_mlp4, batch 128, 20 timed steps), and the MLP in regdist and PyTorch (200 steps).
# OPENBLAS_CORETYPE is unset except for the Haswell run. It prints each round's images/s,
# then each column's median and the median of the per-round ratios issue 14 sets bars on.
# The PyTorch peers keep freed memory in malloc (launch/bench/torch_peer.py: keep_heap).
# Needs 2 cores, mpirun and /usr/bin/python3 with torch; takes about a minute a round.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
bin=${2:-build/regdist}
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_rmaps_base_oversubscribe=1
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
cnn=launch/configs/cnn6_mlp4.cfg
py=/usr/bin/python3
ips() { grep -o "[0-9.]* images/s" | head -1 | cut -d' ' -f1; }
native() { env -u OPENBLAS_CORETYPE "$@"; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "round regdist1 torch1 regdist2 ddp2 haswell1 mlp torch_mlp  (images/s)"
for r in $(seq "$rounds"); do
  a=$(native "$bin" bench --config $cnn --threads 1 --steps 20 --warmup 3 2>&1 | ips)
  b=$(native $py launch/bench/torch_peer.py --model cnn6_mlp4 --threads 1 --steps 20 2>&1 | ips)
  c=$(native mpirun -n 2 "$bin" bench --config $cnn --threads 1 --steps 20 --warmup 3 2>&1 | ips)
  d=$(native $py launch/bench/torch_ddp.py --model cnn6_mlp4 --procs 2 --threads 1 --steps 20 2>&1 | ips)
  e=$(OPENBLAS_CORETYPE=Haswell "$bin" bench --config $cnn --threads 1 --steps 20 --warmup 3 2>&1 | ips)
  f=$(native "$bin" bench --config launch/configs/mlp.cfg --threads 1 --steps 200 2>&1 | ips)
  g=$(native $py launch/bench/torch_peer.py --model mlp --threads 1 --steps 200 2>&1 | ips)
  echo "$r $a $b $c $d $e $f $g" | tee -a "$out"
done
awk '
function median(v, n,   i, j, t) {
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
  return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ n++; for (k = 2; k <= 8; k++) col[k, n] = $k
  r1[n] = $2 / $3; r2[n] = $6 / $3; r3[n] = $4 / $2; r4[n] = $4 / $5; r5[n] = $7 / $8 }
END {
  printf "medians:"
  for (k = 2; k <= 8; k++) { for (i = 1; i <= n; i++) v[i] = col[k, i]; printf " %.0f", median(v, n) }
  printf "\nper-round ratio medians (bar):\n"
  printf "  regdist / PyTorch, 1 thread     %.2f (2.0)\n", median(r1, n)
  printf "  Haswell kernels / PyTorch       %.2f (1.5)\n", median(r2, n)
  printf "  2 ranks / 1 rank                %.2f (1.9)\n", median(r3, n)
  printf "  2 ranks / PyTorch DDP           %.2f (2.5)\n", median(r4, n)
  printf "  the MLP / PyTorch               %.2f (3.0)\n", median(r5, n)
}' "$out"
