#!/usr/bin/env bash
# Director's test command: provision this machine, then `npm test` (typecheck + lint + every
# unit and integration test). Extra arguments are passed to the test runner as file filters:
#   scripts/test.sh            all tests
#   scripts/test.sh sandbox    only test files whose path contains "sandbox"
# The output always ends with the line `N passed, N failed`; the exit code is npm test's
# (1 when provisioning fails).
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo" || exit 1
if ! DIRECTOR_PROVISION_TESTS=1 bash scripts/provision.sh; then
  echo "test: provisioning failed (see above); no tests ran"
  echo "0 passed, 1 failed"
  exit 1
fi
# shellcheck source=/dev/null
. .state/env.sh
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if [ $# -gt 0 ]; then npm test -- "$@" 2>&1 | tee "$out"; else npm test 2>&1 | tee "$out"; fi
rc=${PIPESTATUS[0]}
# npm test stops before the runner when typecheck or lint fails: still end with the count.
if ! grep -v '^[[:space:]]*$' "$out" | tail -n 1 | grep -qE '^[0-9]+ passed, [0-9]+ failed'; then
  echo "test: npm test ended before the test runner reported (typecheck or lint failed?)"
  echo "0 passed, 1 failed"
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
