#!/bin/bash
# netns_agent.sh: an rsh agent for Open MPI (--mca plm_rsh_agent) that "logs in" to a host by
# entering a network namespace on this machine instead of using ssh.
#
# Open MPI calls it as an rsh/ssh replacement: the first argument is the host name from the
# hostfile, the rest is the remote command line (orted and its options, quoted for a shell).
# REGDIST_NETNS_HOSTS maps host names to namespaces: "10.77.0.1=ns-a 10.77.0.2=ns-b".
# The agent is a child of mpirun and inherits its environment, so the map travels with it.
if [ $# -lt 2 ]; then
    echo "netns_agent: usage: netns_agent.sh HOST COMMAND..." >&2
    exit 2
fi
host=$1
shift
ns=
for pair in ${REGDIST_NETNS_HOSTS:-}; do
    if [ "${pair%%=*}" = "$host" ]; then
        ns=${pair#*=}
    fi
done
if [ -z "$ns" ]; then
    echo "netns_agent: no namespace for host '$host' in REGDIST_NETNS_HOSTS='${REGDIST_NETNS_HOSTS:-}'" >&2
    exit 2
fi
# the command line arrives as words quoted for a remote shell (as ssh would pass them on)
exec ip netns exec "$ns" /bin/sh -c "$*"
