#!/usr/bin/env bash
# Builds one static C executable of Director's (the exec agent, the tmpfs resizer) from a folder of
# sources: `build-static.sh LABEL DIR OUT [CFLAG...] -- SOURCE...` (sources relative to DIR).
# Rebuilt only when the hash of DIR's .c/.h files, its build.sh and this script differs from the
# one recorded beside OUT, and installed by a rename, so running sandboxes keep the inode they
# mounted. Needs gcc and Debian's libc6-dev (static glibc: no NSS, runs in any image).
# Prints the path of the executable on stdout; diagnostics go to stderr prefixed with LABEL.
set -euo pipefail
label=$1 dir=$2 out=$3
shift 3
cflags=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do cflags+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
sources=()
for s in "$@"; do sources+=("$dir/$s"); done
self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/build-static.sh
cc=${CC:-gcc}
hash=$( (cd "$dir" && find . -type f \( -name '*.c' -o -name '*.h' -o -name 'build.sh' \) -print0 | sort -z | xargs -0 sha256sum; sha256sum < "$self") | sha256sum | cut -c1-16)
if [ -x "$out" ] && [ "$(cat "$out.hash" 2> /dev/null)" = "$hash" ]; then
  echo "$out"
  exit 0
fi
command -v "$cc" > /dev/null || { echo "$label: $cc is not installed: apt-get install -y gcc libc6-dev" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$cc" -std=c11 -O2 -static -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 "${cflags[@]}" -o "$tmp" "${sources[@]}" >&2 \
  || { echo "$label: compiling failed (static linking needs libc6-dev)" >&2; exit 1; }
strip "$tmp" 2> /dev/null || true
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
printf '%s\n' "$hash" > "$out.hash"
echo "$label: built $out ($hash)" >&2
echo "$out"
