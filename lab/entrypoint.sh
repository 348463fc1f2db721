#!/bin/sh
# Entry point of a lab node container. A killed container that is started again keeps its old
# /run: remove what its charon left there. Under a plain `docker compose up` (FLAB_MODE=standalone)
# the node configures itself and runs its part of the lab (harness/compose_node.py). Under the
# harness (FLAB_MODE=harness) the node agent is the container's main process: the harness reaches
# it over one `docker exec -i` stream (the agent's relay mode) and starts charon, the service
# stand-ins and the probes through it; the agent reaps them (compose's `init: true` reaps the rest).
rm -f /run/charon.pid /run/charon.vici /run/charon.ctl
if [ "${FLAB_MODE:-harness}" = standalone ] && [ -n "${FLAB_NODE:-}" ]; then
    exec python3 -m harness.compose_node
fi
exec python3 -I /opt/failover-lab/harness/agents/node_agent.py --listen unix:/lab/agent.sock
