#!/usr/bin/env bash
# director/base: Debian bookworm minbase with bash, coreutils, python3, nodejs, git and
# ca-certificates, a non-root `sandbox` user (uid 1000) and /workspace.
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
  --include=bash,coreutils,procps,python3,nodejs,git,ca-certificates,util-linux,iproute2 \
  bookworm "$root" "$mirror"
chroot "$root" groupadd --gid 1000 sandbox
chroot "$root" useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash sandbox
mkdir -p "$root/workspace"
chown 1000:1000 "$root/workspace"
# Keep the image small: package caches and docs are not needed at run time.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
