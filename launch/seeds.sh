#!/usr/bin/env bash
# seeds.sh: a comparison of training settings over several seeds, resumable. Each condition
# is a name and the `regdist train` options that make it; every condition runs at every
# seed, seed-major (all conditions of seed 1, then of seed 2, ...) so a partial sweep is
# already a paired comparison. A run with summary.json is kept, one with last.h5 resumes,
# anything else starts afresh: rerun the same command to continue after a stop.
#   bash launch/seeds.sh --out DIR --seeds 1,2,3 [--np N] -- NAME "OPTIONS" [NAME "OPTIONS" ...]
# Options common to every condition go in COMMON (e.g. COMMON="--config C --data F").
# Writes DIR/NAME/seed-S/ (the runs), DIR/results.csv (a row per finished run) and
# DIR/summary.md (mean ± sd per condition, and each condition's paired difference to the
# first with a 95% t interval). REGDIST names the binary (default build/regdist).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${REGDIST:-$here/build/regdist}
out="" seeds="1,2,3" np=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out|--seeds|--np)
      [ $# -ge 2 ] || { echo "seeds.sh: $1 needs a value (--help)" >&2; exit 2; }
      case "$1" in --out) out=$2 ;; --seeds) seeds=$2 ;; --np) np=$2 ;; esac
      shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "seeds.sh: unknown option $1 (--help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "seeds.sh: --out DIR is required" >&2; exit 2; }
[ $# -ge 2 ] && [ $(($# % 2)) -eq 0 ] || { echo "seeds.sh: give NAME \"OPTIONS\" pairs after --" >&2; exit 2; }
[[ "$seeds" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "seeds.sh: --seeds $seeds: give seeds as 1,2,3" >&2; exit 2; }
[[ "$np" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "seeds.sh: --np $np: give a number of ranks from 1 to 9999" >&2; exit 2; }
[ -x "$bin" ] || { echo "seeds.sh: no binary $bin (build first, or set REGDIST)" >&2; exit 2; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
names=() opts=()
while [ $# -gt 0 ]; do names+=("$1"); opts+=("$2"); shift 2; done
mkdir -p "$out"

run_one() {  # run_one DIR SEED OPTIONS
  local dir=$1 seed=$2 o=$3 mode=()
  [ -f "$dir/summary.json" ] && return 0
  if [ -f "$dir/last.h5" ]; then mode=(--resume); else mode=(--overwrite); fi
  local cmd=("$bin" train ${COMMON:-} $o --set "train.seed=$seed" --out "$dir" "${mode[@]}")
  if [ "$np" -gt 1 ]; then cmd=(mpirun -n "$np" --oversubscribe "${cmd[@]}"); fi
  mkdir -p "$dir"
  echo "seeds.sh: $(date +%H:%M:%S) $dir" >&2
  echo "${cmd[*]}" > "$dir/command.txt"
  "${cmd[@]}" > "$dir/stdout.log" 2>&1 || { echo "seeds.sh: $dir failed (see $dir/stdout.log)" >&2; return 0; }
}

json() { sed -n "s/.*\"$2\": \([-0-9.e]*\).*/\1/p" "$1"; }  # json FILE KEY: a number, or nothing

for s in ${seeds//,/ }; do
  for i in "${!names[@]}"; do run_one "$out/${names[$i]}/seed-$s" "$s" "${opts[$i]}"; done
done

# results.csv: one row per finished run (fractions, as summary.json has them)
{
  echo "condition,seed,train_acc,test_acc,test_loss,test_ece,seconds_per_epoch"
  for i in "${!names[@]}"; do
    for s in ${seeds//,/ }; do
      f="$out/${names[$i]}/seed-$s/summary.json"
      [ -f "$f" ] || continue
      echo "${names[$i]},$s,$(json "$f" train_acc),$(json "$f" test_acc),$(json "$f" test_loss),$(json "$f" test_ece),$(json "$f" seconds_per_epoch)"
    done
  done
} > "$out/results.csv"

# summary.md: mean ± sd per condition; paired differences to the first condition (same seed)
awk -F, -v first="${names[0]}" '
  BEGIN { split("12.706 4.303 3.182 2.776 2.571 2.447 2.365 2.306 2.262 2.228", t975, " ") }
  NR == 1 { next }
  { n[$1]++; k = $1 SUBSEP n[$1]; tr[k] = $3; te[k] = $4; nll[k] = $5; ece[k] = $6; seed[k] = $2
    if (!($1 in seen)) { seen[$1] = 1; order[++nc] = $1 }
    if ($1 == first) base[$2] = $4 }
  function ms(a, c, scale,   i, m, v, f) { m = 0; for (i = 1; i <= n[c]; i++) m += scale * a[c SUBSEP i]; m /= n[c]
    v = 0; for (i = 1; i <= n[c]; i++) v += (scale * a[c SUBSEP i] - m) ^ 2
    f = scale == 1 ? "%.4f" : "%.2f"
    if (n[c] > 1) return sprintf(f " ± " f, m, sqrt(v / (n[c] - 1)))
    return sprintf(f, m) }
  function tq(df) { return df <= 10 ? t975[df] : 2.228 }
  END {
    print "| condition | runs | train acc % | test acc % | test NLL | test ECE % |"
    print "|---|---|---|---|---|---|"
    for (j = 1; j <= nc; j++) { c = order[j]
      printf "| %s | %d | %s | %s | %s | %s |\n", c, n[c], ms(tr, c, 100), ms(te, c, 100), ms(nll, c, 1), ms(ece, c, 100) }
    print ""
    print "Paired difference in test accuracy to " first " (same seed), points, mean and 95% t interval:"
    print ""
    for (j = 2; j <= nc; j++) { c = order[j]; m = 0; d = 0; delete dd
      for (i = 1; i <= n[c]; i++) { s = seed[c SUBSEP i]; if (s in base) { dd[++d] = 100 * (te[c SUBSEP i] - base[s]); m += dd[d] } }
      if (d == 0) continue
      m /= d; v = 0; for (i = 1; i <= d; i++) v += (dd[i] - m) ^ 2
      if (d < 2) { printf "- %s: %+.2f (1 pair, no interval)\n", c, m; continue }
      h = tq(d - 1) * sqrt(v / (d - 1)) / sqrt(d)
      printf "- %s: %+.2f [%+.2f, %+.2f] over %d seeds%s\n", c, m, m - h, m + h, d,
             (m - h > 0 || m + h < 0) ? "" : " (the interval includes 0: no effect at this power)" }
  }' "$out/results.csv" > "$out/summary.md"
cat "$out/summary.md"
