#!/usr/bin/env bash
# Makes a PostgreSQL server ready for Slipway's tests and prints the DSN they
# use (the SLIPWAY_TEST_POSTGRES of `make test`) on stdout:
#
#   postgres://slipway:slipway@127.0.0.1:5432/slipway_test?sslmode=disable
#
# On Debian as root it installs the postgresql package when missing, creates
# and starts a cluster listening on 127.0.0.1 only, and creates the role and
# database (a throwaway password: the server answers on loopback only).
# Elsewhere it only checks that the DSN answers and says what is missing.
# Safe to run again, with the server already running or not.
#
# Overrides: SLIPWAY_PG_USER, SLIPWAY_PG_PASSWORD, SLIPWAY_PG_DB, SLIPWAY_PG_PORT.
set -euo pipefail

user=${SLIPWAY_PG_USER:-slipway}
password=${SLIPWAY_PG_PASSWORD:-slipway}
db=${SLIPWAY_PG_DB:-slipway_test}
port=${SLIPWAY_PG_PORT:-5432}
dsn="postgres://$user:$password@127.0.0.1:$port/$db?sslmode=disable"

log() { printf 'postgres: %s\n' "$*" >&2; }

answers() { command -v psql >/dev/null 2>&1 && psql "$dsn" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

if answers; then
  log "ready on 127.0.0.1:$port"
  printf '%s\n' "$dsn"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "no PostgreSQL answers at $dsn, and only root on Debian can set one up here"
  log "run this script as root, or point SLIPWAY_TEST_POSTGRES at a server of your own"
  exit 1
fi

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The package's own start may fail without an init system; we start the
  # cluster ourselves below.
  apt-get install -y -qq postgresql >/dev/null
fi

# The newest installed major version, and its cluster on our port: the one
# that exists, or "main" created now.
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
cluster=$(pg_lsclusters -h | awk -v v="$version" -v p="$port" '$1 == v && $3 == p { print $2; exit }')
if [ -z "$cluster" ]; then
  cluster=main
  if pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    cluster=slipway
  fi
  log "creating cluster $version/$cluster on port $port"
  pg_createcluster --port "$port" "$version" "$cluster" >/dev/null
fi

# Loopback only, over IPv4: the tests' role has a known password.
conf=/etc/postgresql/$version/$cluster/conf.d/slipway.conf
want="listen_addresses = '127.0.0.1'"
restart=false
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$(dirname "$conf")"
  printf '%s\n' "$want" >"$conf"
  restart=true
fi

status=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $4 }')
if [ "$status" = online ] && $restart; then
  log "restarting cluster $version/$cluster to listen on 127.0.0.1 only"
  pg_ctlcluster "$version" "$cluster" restart
elif [ "$status" != online ]; then
  log "starting cluster $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start
fi

# sql runs stdin as the postgres superuser; psql quotes the :'names' and
# :"names" it is given, which it does for stdin but not for -c.
sql() {
  runuser -u postgres -- psql -X -p "$port" -d postgres -v ON_ERROR_STOP=1 -qAt \
    -v u="$user" -v p="$password" -v d="$db"
}
for _ in $(seq 1 60); do
  sql <<<'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.5
done

if [ -z "$(sql <<<"SELECT 1 FROM pg_roles WHERE rolname = :'u'")" ]; then
  log "creating role $user"
  sql <<<"CREATE ROLE :\"u\" LOGIN PASSWORD :'p'"
else
  sql <<<"ALTER ROLE :\"u\" LOGIN PASSWORD :'p'"
fi
if [ -z "$(sql <<<"SELECT 1 FROM pg_database WHERE datname = :'d'")" ]; then
  log "creating database $db"
  sql <<<"CREATE DATABASE :\"d\" OWNER :\"u\""
fi

if ! answers; then
  log "PostgreSQL does not answer at $dsn; its log:"
  tail -20 "/var/log/postgresql/postgresql-$version-$cluster.log" >&2 || true
  exit 1
fi
log "ready: PostgreSQL $version/$cluster on 127.0.0.1:$port"
printf '%s\n' "$dsn"
