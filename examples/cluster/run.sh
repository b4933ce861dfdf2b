#!/usr/bin/env bash
# Build examples/cluster for real on this machine and run its fault cases:
# redis-server on 127.0.2.1, three luaserv hosts (app.lua) on 127.0.1.1-3,
# HAProxy (haproxy.cfg) on 127.0.3.1, all inside a network namespace of
# their own (`unshare -n`, so nothing outside sees them), then prints what
# it measured (README "Running on several machines").
#
#   examples/cluster/run.sh [--clients N] [--conns N] [--messages N] [--rounds N] [--keep]
#
# --messages: chat messages to have acked after each fault (60);
# --rounds: rolling reloads of the three hosts (1); --keep: keep the logs.
#
# Needs root (for unshare -n), a built luaserv ($LUASERV_BIN, default
# build/luaserv), redis-server, haproxy and python3-websockets (.ci/deps).
# Every process it starts is stopped by pid before it exits.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export LUASERV_BIN="${LUASERV_BIN:-$ROOT/build/luaserv}"
if [ "${CLUSTER_IN_NETNS:-}" != 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: needs root, to make a network namespace (unshare -n)" >&2
        exit 2
    fi
    exec env CLUSTER_IN_NETNS=1 unshare -n "$0" "$@"
fi
ip link set lo up
cd "$ROOT"
exec lua5.4 "$HERE/run.lua" "$@"
