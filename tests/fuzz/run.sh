#!/usr/bin/env bash
# run.sh: fuzzes one target for a fixed time, starting from a copy of its seed corpus (the
# repository is never written), and fails on any finding in regdist's code.
#   bash tests/fuzz/run.sh BUILD-DIR TARGET SECONDS [WORK-DIR]
# WORK-DIR (default BUILD-DIR/fuzz-run/TARGET) gets corpus/ (seeds plus what the run found),
# log, findings/ (an input that failed, with its report) and hdf5/ (inputs that crashed inside
# libhdf5 itself, each with its report).
#
# HDF5 1.10 crashes and hangs on some damaged files (NULL reads, use-after-free, endless
# loops in its metadata code; docs/fuzzing.md). Those are not ours to fix, and would end every
# run within seconds, so an AddressSanitizer report, timeout or oversized malloc whose stacks
# all reach libhdf5 before any of regdist's sources (the stack where it happened and, for a
# heap block, the stacks that allocated and freed it) is set aside in hdf5/ and fuzzing goes
# on. A use-after-free inside HDF5 is decided by the stack of the access alone: HDF5 keeps no
# pointer to regdist's memory between calls, so it reading a freed block is a stale pointer
# of its own, even where the block was last regdist's (memory HDF5 freed, reused by a malloc
# of ours and freed again). What that misses, regdist passing HDF5 a buffer it already freed,
# the unit tests under ASan and valgrind cover call by call. Everything else ends the run with
# status 1: a sanitizer report in our code, any UndefinedBehaviorSanitizer report, a leak
# (after tests/fuzz/lsan.supp), a broken invariant ("fuzz: ..."), running out of memory.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
target=$2
seconds=$3
work=${4:-$build/fuzz-run/$target}
bin=$build/tests/fuzz/$target
[ -x "$bin" ] || { echo "run.sh: no $bin (cmake --build $1 --target fuzz)" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work/corpus" "$work/findings" "$work/hdf5" "$work/artifacts" "$work/tmp"
export TMPDIR=$work/tmp  # the targets' scratch files: a crashed run leaves its own there
if [ -d "$src/tests/fuzz/corpus/$target" ]; then
  cp "$src/tests/fuzz/corpus/$target/"* "$work/corpus/"
fi

# allocator_may_return_null: an impossible request (a size read from a damaged file) gets
# NULL, as from glibc, instead of ending the run; code that does not check still crashes.
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
# The targets that read HDF5 files record whole allocation stacks through libhdf5 (built
# without frame pointers) for its leak suppression to match: about 12% slower there, five
# times slower in the config parser, whose suppression needs only the top frame.
case $target in
  fuzz_config*) ;;
  *) ASAN_OPTIONS+=":fast_unwind_on_malloc=0" ;;
esac
export LSAN_OPTIONS="suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Prints "hdf5" if the report (stdin) is a crash inside libhdf5, else "regdist".
owner_of_report() {
  awk -v src="$src" '
    function owner(line) {
      if (line ~ /libhdf5/) return "hdf5"
      if (index(line, " " src "/")) return "regdist"  # a frame in our sources (not build dirs)
      return ""
    }
    /ERROR: AddressSanitizer:|ERROR: libFuzzer: (timeout|out-of-memory \(malloc)/ { stackwise = 1 }
    /ERROR: AddressSanitizer: heap-use-after-free/ { uaf = 1 }
    /runtime error:|^fuzz: |LeakSanitizer|ERROR: libFuzzer: out-of-memory \(used/ { other = 1 }
    /^ +#[0-9]+ 0x/ {
      if (!instack) { instack = 1; decided = 0; stacks++ }
      if (uaf && stacks > 1) { decided = 1; next }  # only the access decides a use-after-free
      if (!decided && (o = owner($0)) != "") { decided = 1; if (o == "regdist") ours = 1 }
      next
    }
    { if (instack && !decided) undecided = 1; instack = 0 }
    END {
      if (instack && !decided) undecided = 1
      print (stackwise && !other && stacks && !ours && !undecided) ? "hdf5" : "regdist"
    }'
}

end=$((SECONDS + seconds))
hdf5_crashes=0
while left=$((end - SECONDS)); ((left > 0)); do  # (-max_total_time=0 would mean forever)
  if "$bin" -max_total_time=$left -timeout=5 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1; then
    break
  fi
  input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log" | tail -1)
  if [ -n "$input" ] && [ -f "$input" ] && [ "$(owner_of_report <"$work/log")" = hdf5 ]; then
    hdf5_crashes=$((hdf5_crashes + 1))
    mv "$input" "$work/hdf5/"
    cp "$work/log" "$work/hdf5/$(basename "$input").log"
    continue
  fi
  [ -n "$input" ] && [ -f "$input" ] && mv "$input" "$work/findings/"
  cp "$work/log" "$work/findings/log"
  echo "fuzz: $target found a problem; input and report in $work/findings:" >&2
  grep -v '^#[0-9]\|^INFO:\|^ *NEW_FUNC' "$work/log" | tail -60 >&2
  exit 1
done
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
echo "fuzz: $target: ${seconds}s, ${runs:-?} inputs in the last stretch, corpus $(ls "$work/corpus" | wc -l) files," \
     "$hdf5_crashes crash(es) inside libhdf5 set aside in $work/hdf5"
