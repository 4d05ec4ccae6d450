#!/usr/bin/env bash
# Builds Director's exec agent (docs/agent.md) from the C sources in this folder as one static
# executable: .state/agent/director-agent (or $DIRECTOR_AGENT_OUT). It is rebuilt only when
# the hash of this folder (sources and this script) differs from the one recorded beside it,
# and replaced by a rename, so sandboxes running the previous build keep theirs.
# Needs gcc and Debian's libc6-dev (static glibc; the agent uses no NSS, so it runs in any image).
# Prints the path of the executable on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
out=${DIRECTOR_AGENT_OUT:-$repo/.state/agent/director-agent}
cc=${CC:-gcc}
hash=$(cd "$here" && find . -type f \( -name '*.c' -o -name '*.h' -o -name 'build.sh' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ -x "$out" ] && [ "$(cat "$out.hash" 2> /dev/null)" = "$hash" ]; then
  echo "$out"
  exit 0
fi
command -v "$cc" > /dev/null || { echo "agent: $cc is not installed: apt-get install -y gcc libc6-dev" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmp"' EXIT
"$cc" -std=c11 -O2 -static -Wall -Wextra -Werror -Wno-unused-parameter -D_FORTIFY_SOURCE=2 \
  -o "$tmp" "$here"/main.c "$here"/wire.c "$here"/proc.c >&2 \
  || { echo "agent: compiling failed (static linking needs libc6-dev)" >&2; exit 1; }
strip "$tmp" 2> /dev/null || true
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
printf '%s\n' "$hash" > "$out.hash"
echo "agent: built $out ($hash)" >&2
echo "$out"
