#!/usr/bin/env bash
# Builds every image under images/<name>/ (each folder with a rootfs.sh; images/agent/ is the
# exec agent, built by its own build.sh) as director/<name>:latest, offline from Debian
# packages (no registry needed). An image is rebuilt only when the hash of its definition
# (every file in its folder) differs from the `director.image.hash` label of the image the
# engine already has. Usage: images/build.sh [name ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# The Debian mirror for debootstrap (images/base): DIRECTOR_DEBIAN_MIRROR, else the first
# Debian mirror this machine's apt uses (deb822 or one-line sources; files may be absent),
# else deb.debian.org. Resolved here so every rootfs.sh gets a value.
if [ -z "${DIRECTOR_DEBIAN_MIRROR:-}" ]; then
  srcs=()
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && srcs+=("$f")
  done
  mirror=""
  if [ ${#srcs[@]} -gt 0 ]; then
    mirror=$( (grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' "${srcs[@]}" || true) | head -n1 | awk '{print $2}')
  fi
  export DIRECTOR_DEBIAN_MIRROR=${mirror:-http://deb.debian.org/debian}
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -f "$d/rootfs.sh" ] && names+=("$(basename "$d")"); done
fi
for name in "${names[@]}"; do
  dir="$here/$name"
  [ -f "$dir/rootfs.sh" ] || { echo "images: no definition $dir/rootfs.sh" >&2; exit 1; }
  hash=$(cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  ref="director/$name:latest"
  have=$(docker image inspect --format '{{ index .Config.Labels "director.image.hash" }}' "$ref" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then
    echo "images: $ref is up to date ($hash)"
    continue
  fi
  echo "images: building $ref ($hash)${have:+, replacing $have} ..."
  start=$SECONDS
  work=$(mktemp -d)
  # A definition that fails half-way may leave file systems mounted in its root (debootstrap
  # leaves /proc): unmount them before removing the tree, never delete through a mount.
  cleanup() {
    awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$work"
  }
  trap cleanup EXIT
  rc=0
  "$dir/rootfs.sh" "$work/rootfs" > "$work/build.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$work/build.log" >&2
    echo "images: building $ref failed ($dir/rootfs.sh exited with $rc)" >&2
    exit 1
  fi
  tar --numeric-owner -C "$work/rootfs" -c . | docker import \
    --change "LABEL director.image.hash=$hash" \
    --change "LABEL director.image.name=$name" \
    --change 'USER 1000:1000' \
    --change 'WORKDIR /workspace' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/home/sandbox' \
    --change 'CMD ["sleep", "infinity"]' \
    - "$ref" > /dev/null
  cleanup
  trap - EXIT
  echo "images: built $ref in $((SECONDS - start)) s"
done
