#!/usr/bin/env bash
# Director's main command: provision this machine (idempotent, a few seconds when all is in
# place), then run the API server in the foreground on ${DIRECTOR_HOST:-127.0.0.1}:${DIRECTOR_PORT:-8080}.
# Every DIRECTOR_* / DOCKER_HOST variable in the environment is passed through, e.g.
#   DIRECTOR_HOST=0.0.0.0 scripts/up.sh     (inside a VM whose port is forwarded)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
bash scripts/provision.sh
# shellcheck source=/dev/null
. .state/env.sh
echo "up: starting Director API on ${DIRECTOR_HOST:-127.0.0.1}:${DIRECTOR_PORT:-8080} (node $(node --version))"
exec node api/main.ts "$@"
