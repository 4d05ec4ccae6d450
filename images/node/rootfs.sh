#!/usr/bin/env bash
# director/node: Debian bookworm minbase with Node.js and npm (the `node` and `web-api`
# environment templates), bash, coreutils, git and ca-certificates, a non-root `sandbox` user
# (uid 1000) and /workspace. npm's cache and global prefix live under the user's home, so
# `npm install` works with a read-only root when /workspace and /tmp are writable.
# Usage: rootfs.sh <empty-dir>. Needs: debootstrap and a reachable Debian mirror.
set -euo pipefail
root=$1
mirror=${DIRECTOR_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The mirror this machine already uses (deb822 or one-line sources).
  # (|| true: a missing sources file must not end the script under pipefail)
  mirror=$({ grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true; } \
    | head -n1 | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed: apt-get install -y debootstrap" >&2; exit 1; }
debootstrap --variant=minbase \
  --include=bash,coreutils,procps,nodejs,git,ca-certificates,util-linux,iproute2 \
  bookworm "$root" "$mirror"
# npm depends on virtual packages (node-npm-normalize-package-bin, ...) that debootstrap's own
# resolver cannot satisfy, so it is installed by apt inside the new root.
mount -t proc proc "$root/proc"
trap 'umount -l "$root/proc" 2>/dev/null || true' EXIT
cp /etc/resolv.conf "$root/etc/resolv.conf"
chroot "$root" apt-get update -q
DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends npm
chroot "$root" apt-get clean
umount -l "$root/proc"
trap - EXIT
: > "$root/etc/resolv.conf"
chroot "$root" groupadd --gid 1000 sandbox
chroot "$root" useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash sandbox
mkdir -p "$root/workspace"
chown 1000:1000 "$root/workspace"
# The root is read-only in a sandbox: npm writes its cache to /tmp (a writable tmpfs) and
# installs globals under the user's home rather than /usr.
cat > "$root/etc/npmrc" <<'N'
cache=/tmp/.npm
prefix=/home/sandbox/.npm-global
update-notifier=false
fund=false
audit=false
N
# Keep the image small: package caches and docs are not needed at run time.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
