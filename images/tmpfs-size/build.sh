#!/usr/bin/env bash
# Builds director-tmpfs-size (main.c: resizes a running container's tmpfs mounts from the host, for
# the warm pool's `disk` fit) as one static executable: .state/helpers/director-tmpfs-size (or
# $DIRECTOR_TMPFS_SIZE_OUT), through images/build-static.sh (rebuilt only when the sources change).
# Prints the path of the executable on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
exec "$here/../build-static.sh" tmpfs-size "$here" "${DIRECTOR_TMPFS_SIZE_OUT:-$repo/.state/helpers/director-tmpfs-size}" -- main.c
