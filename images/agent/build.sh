#!/usr/bin/env bash
# Builds Director's exec agent (docs/agent.md) as one static executable:
# .state/agent/director-agent (or $DIRECTOR_AGENT_OUT), through images/build-static.sh (rebuilt
# only when the sources change; replaced by a rename, so sandboxes running the previous build keep
# theirs). Prints the path of the executable on stdout. Stack variables start zeroed: the checkpoint
# reader runs in a fork of the agent (flag 8), on stack the agent used (proc.c, run_tree).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
exec "$here/../build-static.sh" agent "$here" "${DIRECTOR_AGENT_OUT:-$repo/.state/agent/director-agent}" \
  -Wno-unused-parameter -ftrivial-auto-var-init=zero -- main.c wire.c proc.c tree.c tree-path.c tree-capture.c tree-restore.c
