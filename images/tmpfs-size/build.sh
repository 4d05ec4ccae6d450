#!/usr/bin/env bash
# Builds director-tmpfs-size (main.c: resizes a running container's tmpfs mounts from the host, for
# the warm pool's `disk` fit) as one static executable: .state/helpers/director-tmpfs-size (or
# $DIRECTOR_TMPFS_SIZE_OUT). Rebuilt only when the hash of this folder differs from the one
# recorded beside it. Needs gcc and Debian's libc6-dev. Prints the path of the executable on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
out=${DIRECTOR_TMPFS_SIZE_OUT:-$repo/.state/helpers/director-tmpfs-size}
cc=${CC:-gcc}
hash=$(cd "$here" && find . -type f \( -name '*.c' -o -name 'build.sh' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ -x "$out" ] && [ "$(cat "$out.hash" 2> /dev/null)" = "$hash" ]; then
  echo "$out"
  exit 0
fi
command -v "$cc" > /dev/null || { echo "tmpfs-size: $cc is not installed: apt-get install -y gcc libc6-dev" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$cc" -std=c11 -O2 -static -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -o "$tmp" "$here"/main.c >&2 \
  || { echo "tmpfs-size: compiling failed (static linking needs libc6-dev)" >&2; exit 1; }
strip "$tmp" 2> /dev/null || true
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
printf '%s\n' "$hash" > "$out.hash"
echo "tmpfs-size: built $out ($hash)" >&2
echo "$out"
