#!/usr/bin/env bash
# director/busybox: a ~2 MB image from Debian's busybox-static, for fast tests.
# Usage: rootfs.sh <empty-dir>. Needs: busybox-static.
set -euo pipefail
root=$1
bb=/bin/busybox
[ -x "$bb" ] || { echo "busybox-static is not installed: apt-get install -y busybox-static" >&2; exit 1; }
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,workspace,home/sandbox,proc,sys,dev,root}
cp "$bb" "$root/bin/busybox"
# One symlink per applet so `sh`, `ls`, `kill`, `setsid` ... exist as commands.
for applet in $("$bb" --list-full); do
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
sandbox:x:1000:1000:sandbox:/home/sandbox:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
sandbox:x:1000:
nogroup:x:65534:
G
chmod 1777 "$root/tmp"
chown 1000:1000 "$root/workspace" "$root/home/sandbox"
