#!/bin/bash
# run.sh: regdist across two "hosts" made of network namespaces on this machine.
#
# Two namespaces joined by a veth pair (10.77.0.1/24 and 10.77.0.2/24) play two hosts. mpirun
# runs inside the first; Open MPI reaches the second through netns_agent.sh, an rsh agent that
# enters the namespace instead of logging in with ssh. The MPI traffic is TCP over the veth
# (btl tcp,self; the veth's subnet for both the MPI and the launcher's out-of-band traffic).
# Checks, in order:
#   1. Open MPI sees two nodes: one rank per namespace, each with local size 1.
#   2. tiny_cnn trained 2 epochs across the two hosts exits 0, its gradients crossed the veth,
#      and its checkpoint equals a 2-rank run on one host within 1e-5 (test_dist_train.c's
#      tolerance).
#   3. SIGUSR1 to mpirun reaches the rank on each host (two shells that say so), and a training
#      job stopped that way writes its checkpoint and exits 0.
#   4. The link cut mid-run, with the launcher's TCP keepalive tuned (the configuration
#      docs/multihost.md recommends): mpirun reports the lost host and the job ends, nonzero,
#      within KA_BOUND seconds; the last checkpoint is intact; nothing is left on the "remote
#      host".
#   5. The link cut mid-run, keepalive left at its default and dist.timeout=5: the watchdog
#      reports which rank waited in what, and the job ends, nonzero, once TCP gives up on the
#      lost host (tcp_retries2 lowered inside the namespaces only), within WD_BOUND seconds;
#      the last checkpoint is intact; nothing is left on host B.
# Usage: run.sh [REGDIST_BIN]   (as root; exits 77, ctest's skip, where it cannot run)
# Environment: REGDIST_BIN, REGDIST_MPIEXEC (mpirun), REGDIST_SOURCE_DIR, REGDIST_TEST_TMP,
# REGDIST_MULTIHOST_KEEP=1 keeps the temporary directory.
set -u
# Sanitizer builds: Open MPI's start-up allocations cannot be symbolized or suppressed, so
# regdist runs with the children's ASAN_OPTIONS the other tests give it (see testutil.c)
if [ -n "${REGDIST_CHILD_ASAN_OPTIONS:-}" ]; then export ASAN_OPTIONS="$REGDIST_CHILD_ASAN_OPTIONS"; fi

SKIP=77
LIMIT=${REGDIST_MULTIHOST_LIMIT:-170}  # the whole script, seconds; ctest's TIMEOUT is above it

# The outer bound: the script runs under timeout(1); its TERM makes the trap below clean up.
if [ -z "${REGDIST_MULTIHOST_INNER:-}" ]; then
    if ! command -v timeout >/dev/null; then
        echo "multihost: SKIP: timeout(1) is not installed"
        exit $SKIP
    fi
    # --foreground: the script stays in the terminal's process group, so ^C reaches it
    REGDIST_MULTIHOST_INNER=1 exec timeout --foreground -k 10 "$LIMIT" bash "$0" "$@"
fi

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${REGDIST_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
BIN=${1:-${REGDIST_BIN:-$SRC/build/regdist}}
MPIRUN=${REGDIST_MPIEXEC:-mpirun}
AGENT=$HERE/netns_agent.sh
CONFIG=$SRC/tests/configs/tiny_cnn.cfg

skip() { echo "multihost: SKIP: $*"; exit $SKIP; }
say() { echo "multihost: $*"; }

# ---- can it run here? ----------------------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (ip netns add)"
command -v ip >/dev/null || skip "ip (iproute2) is not installed"
command -v h5diff >/dev/null || skip "h5diff (hdf5-tools) is not installed"
command -v "$MPIRUN" >/dev/null || skip "$MPIRUN is not installed"
"$MPIRUN" --version 2>/dev/null | grep -Eq "Open MPI|OpenRTE" ||
    skip "$MPIRUN is not Open MPI (the test uses Open MPI's rsh launcher and MCA parameters)"
if [ ! -x "$BIN" ]; then
    echo "multihost: FAIL: no regdist binary at '$BIN'"
    exit 1
fi
[ -x "$AGENT" ] || chmod +x "$AGENT" 2>/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1

# ---- state and cleanup on every exit path ----------------------------------------------------
NSA=regdist-mh$$-a NSB=regdist-mh$$-b  # the two "hosts"
VA=rdmh$$a VB=rdmh$$b                  # their ends of the veth (IFNAMSIZ: 15 characters)
IPA=10.77.0.1 IPB=10.77.0.2 NET=10.77.0.0/24
TMP='' JOB='' MADE_A='' MADE_B=''

cleanup() {
    local rc=$?
    # timeout(1) signals the script and then its whole process group: a second TERM must not
    # end the cleanup half way
    trap '' INT TERM
    trap - EXIT
    # processes in the namespaces are this test's: mpirun, orted, the ranks
    for ns in ${MADE_A:+$NSA} ${MADE_B:+$NSB}; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    done
    [ -n "$JOB" ] && { disown "$JOB"; kill -KILL "$JOB"; } 2>/dev/null  # no "Killed" notice
    [ -n "$MADE_A" ] && ip netns del "$NSA" 2>/dev/null  # deleting a namespace deletes its veth end
    [ -n "$MADE_B" ] && ip netns del "$NSB" 2>/dev/null
    if [ -n "$TMP" ]; then
        if [ -n "${REGDIST_MULTIHOST_KEEP:-}" ]; then echo "multihost: kept $TMP"; else rm -rf "$TMP"; fi
    fi
    exit $rc
}
trap cleanup EXIT
trap 'echo "multihost: interrupted (or over the ${LIMIT} s limit)"; exit 124' INT TERM

fail() {
    echo "multihost: FAIL: $1"
    if [ $# -ge 2 ] && [ -f "$2" ]; then
        echo "---- last lines of $2 ----"
        # progress bars (carriage returns, ESC[K) to lines; the bars themselves left out
        tr '\r' '\n' <"$2" | sed 's/\x1b\[K/\n/g' | grep -av '^epoch [0-9]*/[0-9]* \[' |
            grep -av '^$' | tail -n 40
        echo "----"
    fi
    exit 1
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# ---- the two hosts ---------------------------------------------------------------------------
err=$(ip netns add "$NSA" 2>&1) || skip "network namespaces are unavailable: $err"
MADE_A=1
err=$(ip netns add "$NSB" 2>&1) || skip "network namespaces are unavailable: $err"
MADE_B=1
err=$(ip link add "$VA" type veth peer name "$VB" 2>&1) || skip "cannot create a veth pair: $err"
if ! { ip link set "$VA" netns "$NSA" && ip link set "$VB" netns "$NSB" &&
    ip -n "$NSA" addr add $IPA/24 dev "$VA" && ip -n "$NSB" addr add $IPB/24 dev "$VB" &&
    ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up &&
    ip -n "$NSA" link set "$VA" up && ip -n "$NSB" link set "$VB" up; }; then
    ip link del "$VA" 2>/dev/null
    skip "cannot configure the veth pair between the namespaces"
fi

mkdir -p "${REGDIST_TEST_TMP:-/tmp}"
TMP=$(mktemp -d "${REGDIST_TEST_TMP:-/tmp}/multihost.XXXXXX") || fail "mktemp"
HOSTS=$TMP/hosts
printf '%s slots=1\n%s slots=1\n' $IPA $IPB >"$HOSTS"
export REGDIST_NETNS_HOSTS="$IPA=$NSA $IPB=$NSB"

# mpirun inside host A over both hosts, TCP on the veth subnet only (pml ob1: the byte
# transfer layers are the btls named here, never UCX)
MPI_ARGS=(-n 2 --hostfile "$HOSTS" --mca plm_rsh_agent "$AGENT"
    --mca pml ob1 --mca btl "tcp,self" --mca btl_tcp_if_include "$NET" --mca oob_tcp_if_include "$NET"
    --bind-to none)

# Runs a command in the background under a time limit and waits for it, so that a TERM
# reaches the trap at once. Sets RC.
run_bounded() {
    local limit=$1
    shift
    timeout -k 5 "$limit" "$@" &
    JOB=$!
    wait $JOB
    RC=$?
    JOB=
}

# carrier up on both ends (after a cut)
link_up() {
    ip -n "$NSB" link set "$VB" up
    ip -n "$NSA" link set "$VA" up
    for _ in $(seq 50); do
        ip -n "$NSA" link show "$VA" | grep -q LOWER_UP && return 0
        sleep 0.1
    done
    fail "the veth did not come back up"
}

T_START=$(now)
say "hosts $NSA ($IPA) and $NSB ($IPB), veth $VA-$VB, temp $TMP"

DATA=$TMP/t12.h5
"$BIN" data synth --out "$DATA" --shape 1,12,12 --train 300 --val 60 --test 60 >/dev/null ||
    fail "regdist data synth"

# ---- 1. two nodes, one rank each -------------------------------------------------------------
NS_INODE_A=$(ip netns exec "$NSA" readlink /proc/self/ns/net)
NS_INODE_B=$(ip netns exec "$NSB" readlink /proc/self/ns/net)
run_bounded 30 ip netns exec "$NSA" "$MPIRUN" "${MPI_ARGS[@]}" sh -c \
    'echo "rank=$OMPI_COMM_WORLD_RANK local_size=$OMPI_COMM_WORLD_LOCAL_SIZE net=$(readlink /proc/self/ns/net)"' \
    >"$TMP/probe.log" 2>&1
[ $RC = 0 ] || fail "mpirun across the namespaces failed (exit $RC)" "$TMP/probe.log"
grep -qxF "rank=0 local_size=1 net=$NS_INODE_A" "$TMP/probe.log" &&
    grep -qxF "rank=1 local_size=1 net=$NS_INODE_B" "$TMP/probe.log" ||
    fail "expected rank 0 alone on $NSA ($NS_INODE_A) and rank 1 alone on $NSB ($NS_INODE_B)" \
        "$TMP/probe.log"
say "1. layout: $(tr '\n' ';' <"$TMP/probe.log")"

# ---- 2. the same training across two hosts as on one ----------------------------------------
bytes() { ip netns exec "$NSA" cat "/sys/class/net/$VA/statistics/$1_bytes"; }
tx0=$(bytes tx) rx0=$(bytes rx)
run_bounded 60 ip netns exec "$NSA" "$MPIRUN" "${MPI_ARGS[@]}" "$BIN" train --config "$CONFIG" \
    --data "$DATA" --out "$TMP/two_hosts" >"$TMP/two_hosts.log" 2>&1
[ $RC = 0 ] || fail "training across two hosts: exit $RC" "$TMP/two_hosts.log"
tx=$(($(bytes tx) - tx0)) rx=$(($(bytes rx) - rx0))
# the all-reduce of 2 ranks moves at least half the gradient each way at every step
params=$(sed -n 's/.* \([0-9]*\) parameters;.*/\1/p' "$TMP/two_hosts.log")
steps=$(sed -n 's/.*; \([0-9]*\) epochs of \([0-9]*\) steps.*/\1 \2/p' "$TMP/two_hosts.log" |
    awk '{ print $1 * $2 }')
[ -n "$params" ] && [ -n "$steps" ] || fail "no model/steps line in the log" "$TMP/two_hosts.log"
need=$((params * 4 * steps / 2))
[ "$tx" -ge "$need" ] && [ "$rx" -ge "$need" ] ||
    fail "only $tx bytes out and $rx in on $VA; $steps steps of $params float gradients need $need each way"
run_bounded 60 "$MPIRUN" -n 2 "$BIN" train --config "$CONFIG" --data "$DATA" \
    --out "$TMP/one_host" >"$TMP/one_host.log" 2>&1
[ $RC = 0 ] || fail "training on one host: exit $RC" "$TMP/one_host.log"
h5diff -d 1e-5 "$TMP/two_hosts/last.h5" "$TMP/one_host/last.h5" >"$TMP/h5diff.log" 2>&1 ||
    fail "two hosts and one host differ by more than 1e-5 (h5diff exit $?)" "$TMP/h5diff.log"
say "2. trained across two hosts in $steps steps, $tx bytes out and $rx in on the veth (>= $need);" \
    "checkpoint equals a one-host run within 1e-5"

# A background job: mpirun over both hosts, a long training run; waits for its first
# checkpoint. Sets JOB (timeout's pid) and MPIRUN_PID.
start_long() {
    local name=$1
    shift
    timeout -k 5 120 ip netns exec "$NSA" "$MPIRUN" "${MPI_ARGS[@]}" "$@" "$BIN" train \
        --config "$CONFIG" --data "$DATA" --out "$TMP/$name" --set train.epochs=400 \
        "${EXTRA[@]}" >"$TMP/$name.log" 2>&1 &
    JOB=$!
    for _ in $(seq 300); do
        [ -f "$TMP/$name/last.h5" ] && break
        kill -0 $JOB 2>/dev/null || break
        sleep 0.1
    done
    [ -f "$TMP/$name/last.h5" ] || fail "$name: no first checkpoint" "$TMP/$name.log"
    MPIRUN_PID=$(pgrep -P $JOB)  # ip netns exec execs mpirun in place of itself
    [ -n "$MPIRUN_PID" ] || fail "$name: mpirun is not running" "$TMP/$name.log"
    sleep 0.5  # well inside the run, between checkpoints
}

finish() {  # waits for JOB; sets RC
    wait $JOB
    RC=$?
    JOB=
}

# remote processes (orted, rank 1) gone within a few seconds of the job's end
remote_empty() {
    for _ in $(seq 50); do
        [ -z "$(ip netns pids "$NSB")" ] && return 0
        sleep 0.1
    done
    return 1
}

# ---- 3. preemption: SIGUSR1 to mpirun reaches both hosts --------------------------------------
# first with two shells that say whether the signal reached them (regdist ranks agree on a
# stop, so one rank receiving it would be enough for the training run below to stop cleanly)
timeout -k 5 30 ip netns exec "$NSA" "$MPIRUN" "${MPI_ARGS[@]}" sh -c \
    'trap "echo rank $OMPI_COMM_WORLD_RANK got SIGUSR1; exit 0" USR1; echo ready; sleep 20 & wait' \
    >"$TMP/usr1_probe.log" 2>&1 &
JOB=$!
for _ in $(seq 100); do
    [ "$(grep -c '^ready$' "$TMP/usr1_probe.log")" = 2 ] && break
    sleep 0.1
done
kill -USR1 "$(pgrep -P $JOB)"
finish
grep -qx "rank 0 got SIGUSR1" "$TMP/usr1_probe.log" && grep -qx "rank 1 got SIGUSR1" "$TMP/usr1_probe.log" ||
    fail "SIGUSR1 to mpirun did not reach both ranks (exit $RC)" "$TMP/usr1_probe.log"
EXTRA=()
start_long usr1
t0=$(now)
kill -USR1 "$MPIRUN_PID"
finish
secs=$(since "$t0")
[ $RC = 0 ] || fail "SIGUSR1: the job exited $RC (want 0 after a checkpoint)" "$TMP/usr1.log"
grep -aq "stopped at step [0-9]* (SIGUSR1)" "$TMP/usr1.log" ||
    fail "SIGUSR1: no 'stopped at step N (SIGUSR1)' line" "$TMP/usr1.log"
say "3. SIGUSR1 to mpirun reached the ranks on both hosts; training stopped with a checkpoint" \
    "and exit 0 $secs s after the signal"

# ---- 4. the link cut, launcher keepalive tuned: mpirun notices the lost host -----------------
KA_TIME=2 KA_INTVL=1 KA_PROBES=3
# the launcher's connection to host B is idle during training; after the cut its next
# keepalive probe goes unanswered within KA_TIME s and the connection is declared dead
# KA_PROBES * KA_INTVL s later (5 s); then mpirun kills rank 0 (SIGTERM, and SIGKILL 1 s
# later) and exits. 12 s leaves 6 s for a loaded machine. dist.timeout is 30 s, out of reach.
KA_BOUND=12
link_up
EXTRA=(--set dist.timeout=30)
start_long cut_keepalive --mca oob_tcp_keepalive_time $KA_TIME \
    --mca oob_tcp_keepalive_intvl $KA_INTVL --mca oob_tcp_keepalive_probes $KA_PROBES
t0=$(now)
ip -n "$NSB" link set "$VB" down
finish
secs_ka=$(since "$t0")
log=$TMP/cut_keepalive.log
[ $RC = 124 ] || [ $RC = 137 ] && fail "link cut (keepalive): the job hung until timeout" "$log"
[ $RC != 0 ] || fail "link cut (keepalive): the job exited 0" "$log"
le "$secs_ka" $KA_BOUND || fail "link cut (keepalive): the job took $secs_ka s to end (bound $KA_BOUND s)" "$log"
grep -aq "lost communication with a remote daemon" "$log" ||
    fail "link cut (keepalive): no 'lost communication with a remote daemon' message" "$log"
"$BIN" eval --checkpoint "$TMP/cut_keepalive/last.h5" --data "$DATA" >/dev/null 2>"$TMP/eval.log" ||
    fail "link cut (keepalive): the last checkpoint does not load" "$TMP/eval.log"
remote_empty || fail "link cut (keepalive): processes left on host B: $(ip netns pids "$NSB" | tr '\n' ' ')"
# the comparison in 2 can fail: a checkpoint of another step differs beyond 1e-5
h5diff -q -d 1e-5 "$TMP/two_hosts/last.h5" "$TMP/cut_keepalive/last.h5" >/dev/null 2>&1
[ $? = 1 ] || fail "h5diff -d 1e-5 found no difference between checkpoints of different steps"
say "4. link cut, keepalive ${KA_TIME}+${KA_PROBES}x${KA_INTVL} s: mpirun reported the lost host," \
    "exit $RC, $secs_ka s after the cut (bound $KA_BOUND s); last.h5 intact; host B empty"

# ---- 5. the link cut, keepalive default: the watchdog reports; TCP ends the launcher ----------
WD_TIMEOUT=5 RETRIES2=4
# the ranks stall in a collective at the cut; the watchdog (0.5 s tick) ends rank 0 after
# dist.timeout; mpirun's kill order to host B then sits unacknowledged in TCP (keepalive does
# not probe a connection with data in flight) until the kernel gives up: with tcp_retries2 = 4
# retransmissions back off 0.2+0.4+0.8+1.6+3.2+6.4 s = 12.6 s at most. 5.5 + 12.6 + 1 s of
# SIGTERM grace = 19.1 s; 26 s leaves 7 s for a loaded machine. With Linux's default
# tcp_retries2 = 15 that wait is about 15 minutes instead.
WD_BOUND=26
ip netns exec "$NSA" sysctl -qw net.ipv4.tcp_retries2=$RETRIES2 &&
    ip netns exec "$NSB" sysctl -qw net.ipv4.tcp_retries2=$RETRIES2 ||
    fail "cannot set net.ipv4.tcp_retries2 inside the namespaces"
link_up
EXTRA=(--set "dist.timeout=$WD_TIMEOUT")
start_long cut_watchdog
t0=$(now)
ip -n "$NSB" link set "$VB" down
finish
secs_wd=$(since "$t0")
log=$TMP/cut_watchdog.log
[ $RC = 124 ] || [ $RC = 137 ] && fail "link cut (watchdog): the job hung until timeout" "$log"
[ $RC != 0 ] || fail "link cut (watchdog): the job exited 0" "$log"
le "$secs_wd" $WD_BOUND || fail "link cut (watchdog): the job took $secs_wd s to end (bound $WD_BOUND s)" "$log"
report=$(grep -ao "regdist: rank 0 of 2: stalled for .*(dist.timeout = $WD_TIMEOUT s)" "$log" | head -n 1)
[ -n "$report" ] || fail "link cut (watchdog): no stall report from rank 0" "$log"
"$BIN" eval --checkpoint "$TMP/cut_watchdog/last.h5" --data "$DATA" >/dev/null 2>"$TMP/eval.log" ||
    fail "link cut (watchdog): the last checkpoint does not load" "$TMP/eval.log"
remote_empty || fail "link cut (watchdog): processes left on host B: $(ip netns pids "$NSB" | tr '\n' ' ')"
say "5. link cut, dist.timeout=$WD_TIMEOUT, tcp_retries2=$RETRIES2: exit $RC, $secs_wd s after the cut" \
    "(bound $WD_BOUND s); host B empty; $report"

say "PASS in $(since "$T_START") s"
