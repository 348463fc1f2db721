#!/bin/sh
# Entry point of a lab node container. A killed container that is started again keeps its old
# /run: remove what its charon left there. Under a plain `docker compose up` (FLAB_MODE=standalone)
# the node configures itself and runs its part of the lab (harness/compose_node.py). Under the
# harness (FLAB_MODE=harness) it idles: the harness starts charon, the service stand-ins and the
# probes with `docker exec` (compose's `init: true` reaps what they leave).
rm -f /run/charon.pid /run/charon.vici /run/charon.ctl
if [ "${FLAB_MODE:-harness}" = standalone ] && [ -n "${FLAB_NODE:-}" ]; then
    exec python3 -m harness.compose_node
fi
exec sleep infinity
