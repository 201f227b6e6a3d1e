#!/usr/bin/env bash
# Run a command inside private network + PID namespaces: only loopback exists there,
# so Ray (which listens on all interfaces) and test servers are unreachable from
# outside, and `ray stop` or a stray process can only touch what the tests started.
# Needs root (or unprivileged user namespaces). NO_NETNS=1 runs the command as is.
set -euo pipefail
if [ "${NO_NETNS:-0}" = "1" ]; then
  exec "$@"
fi
if [ "$(id -u)" = "0" ]; then
  prefix=(unshare --net --pid --fork --mount-proc)
else
  prefix=(unshare --user --map-root-user --net --pid --fork --mount-proc)
fi
if ! "${prefix[@]}" true 2>/dev/null; then
  echo "netns_run: cannot create a private network namespace here (need root or user namespaces)." >&2
  echo "netns_run: rerun with NO_NETNS=1 to run without one (Ray will then listen beyond loopback)." >&2
  exit 3
fi
exec "${prefix[@]}" bash -c 'ip link set lo up && exec "$@"' netns_run "$@"
