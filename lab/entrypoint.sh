#!/bin/sh
# Entry point of a lab node container. A killed container that is started again keeps its old
# /run: remove what its charon left there. Then idle; the harness starts charon, the service
# stand-ins and the probes with `docker exec` (compose's `init: true` reaps what they leave).
rm -f /run/charon.pid /run/charon.vici /run/charon.ctl
exec sleep infinity
