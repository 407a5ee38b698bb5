#!/usr/bin/env bash
# Installs and starts what Slipway's tests and demo use, when missing:
# a Docker engine (dockerd), busybox-static (the tests build their base images
# from it: there is no Docker Hub here), the AWS CLI and Debian's chromium (the
# dashboard's browser test drives it headless). On Debian as root it
# installs with apt-get; elsewhere it only says what is missing.
# Safe to run again: it does nothing that is already done.
#
#   scripts/deps.sh          everything the tests use, and PostgreSQL
#   scripts/deps.sh --demo   only what `slipway demo` uses: the Docker engine
#                            and busybox-static
set -euo pipefail

log() { printf 'deps: %s\n' "$*" >&2; }

demo=false
case "${1:-}" in
  --demo) demo=true ;;
  "") ;;
  *) log "unknown argument $1: want --demo or nothing"; exit 2 ;;
esac

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
if ! $demo; then
  [ -x /usr/bin/aws ] || need_pkgs+=(awscli)
  command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    log "missing ${need_pkgs[*]}: install them (Debian: apt-get install ${need_pkgs[*]})"
    exit 1
  fi
fi

if ! docker version >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    log "no Docker engine answers and only root can start one here"
    exit 1
  fi
  state=${SLIPWAY_DEPS_DIR:-/var/tmp/slipway-deps}
  mkdir -p "$state"
  log "starting dockerd (log: $state/dockerd.log)"
  # No iptables here; containers still reach each other on user-defined networks.
  nohup dockerd --iptables=false >"$state/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker version >/dev/null 2>&1 || { log "dockerd did not come up:"; tail -20 "$state/dockerd.log" >&2; exit 1; }
fi
if $demo; then
  log "ready: docker $(docker version --format '{{.Server.Version}}')"
  exit 0
fi
bash "$(dirname "${BASH_SOURCE[0]}")/postgres.sh" >/dev/null
log "ready: docker $(docker version --format '{{.Server.Version}}'), $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1)"
