#!/usr/bin/env bash
# A throwaway Citus cluster on loopback: a coordinator and two workers, one PostgreSQL each,
# run as the `postgres` OS user (PostgreSQL refuses root) in a temporary directory.
#
#   test/citus/cluster.sh start    # prints the coordinator URL (also in $CITUS_DIR/url)
#   test/citus/cluster.sh stop     # stops the three servers and removes $CITUS_DIR
#   test/citus/cluster.sh status   # the URL and the nodes, when running
#   test/citus/cluster.sh adddb NAME   # one more database with Citus set up the same way (prints its URL)
#
# Needs Citus installed for the PostgreSQL in $PG_BIN. Citus is in neither Debian nor npm; it builds
# from source (as root, about 25 minutes on 2 cores, most of it the LLVM bitcode):
#   apt-get install -y postgresql-server-dev-15 liblz4-dev libzstd-dev libcurl4-openssl-dev libkrb5-dev
#   (source: the fetch tool's github:citusdata/citus, or a clone) git archive v13.2.2 | tar -x -C /tmp/citus-src
#   cd /tmp/citus-src
#   # PostgreSQL 15.20 exports have_createdb_privilege(), which Citus' pg_version_compat.h defines as a
#   # static helper for PG < 16: rename the helper and its one caller
#   sed -i '604s/have_createdb_privilege(void)/citus_have_createdb_privilege(void)/' src/include/pg_version_compat.h
#   sed -i 's/#define have_createdb_privilege() have_createdb_privilege()/#define citus_have_createdb_privilege() have_createdb_privilege()/' src/include/pg_version_compat.h
#   sed -i '262s/have_createdb_privilege()/citus_have_createdb_privilege()/' src/backend/distributed/commands/serialize_distributed_ddls.c
#   ./configure PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config && make -j2 && make install
# (installs citus.so into /usr/lib/postgresql/15/lib; it stays there).
# Every node: listen_addresses=127.0.0.1, trust authentication on loopback and the socket only,
# shared_preload_libraries=citus, free ports. In database $CITUS_DB (default saas) of every
# node: CREATE EXTENSION citus; on the coordinator citus_set_coordinator_host and citus_add_node
# for both workers. A login role $CITUS_USER (default pgtenant, superuser, password = the name)
# exists on every node, so a URL with a password works (trust ignores it).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
CITUS_DIR=${CITUS_DIR:-/tmp/pgtenant-citus}
CITUS_DB=${CITUS_DB:-saas}
CITUS_USER=${CITUS_USER:-pgtenant}
NODES=(coordinator worker1 worker2)

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

psql_node() { # node-dir database sql
  local port
  port=$(cat "$CITUS_DIR/$1/port")
  as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$CITUS_DIR" -p "$port" -U postgres -d "$2" -c "$3"
}

url() {
  echo "postgres://$CITUS_USER:$CITUS_USER@127.0.0.1:$(cat "$CITUS_DIR/coordinator/port")/$CITUS_DB"
}

start() {
  if [ -e "$CITUS_DIR" ]; then
    echo "$CITUS_DIR exists: run '$0 stop' first (or set CITUS_DIR)" >&2
    exit 1
  fi
  [ -e "$("$PG_BIN/pg_config" --pkglibdir)/citus.so" ] || {
    echo "citus.so not found in $("$PG_BIN/pg_config" --pkglibdir): build and install Citus first" >&2
    exit 1
  }
  mkdir -p "$CITUS_DIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$CITUS_DIR"
  for n in "${NODES[@]}"; do
    local d="$CITUS_DIR/$n" port
    port=$(free_port)
    as_pg "$PG_BIN/initdb" -D "$d/data" --no-sync -A trust -U postgres -E UTF8 --locale=C >"$CITUS_DIR/$n.initdb.log"
    cat >>"$d/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$CITUS_DIR'
shared_preload_libraries = 'citus'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
citus.log_distributed_deadlock_detection = off
# PostgreSQL 15.20 lets only listed libraries be logical decoding output plugins; Citus' shard split
# (isolate_tenant_to_new_shard, citus_split_shard_by_split_points) decodes with its own
output_plugin_libraries = 'pgoutput, test_decoding, citus'
CONF
    printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' 'host replication all 127.0.0.1/32 trust' >"$d/data/pg_hba.conf"
    echo "$port" | as_pg tee "$d/port" >/dev/null
    as_pg "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" -w -t 60 start >/dev/null
    psql_node "$n" postgres "CREATE ROLE $CITUS_USER LOGIN SUPERUSER PASSWORD '$CITUS_USER'"
  done
  citus_db "$CITUS_DB" >/dev/null
  url | tee "$CITUS_DIR/url"
}

# database $1 on every node, the extension in it, the coordinator and both workers registered
citus_db() {
  local db=$1
  for n in "${NODES[@]}"; do
    psql_node "$n" postgres "CREATE DATABASE $db OWNER $CITUS_USER"
    psql_node "$n" "$db" "CREATE EXTENSION citus"
  done
  psql_node coordinator "$db" "SELECT citus_set_coordinator_host('127.0.0.1', $(cat "$CITUS_DIR/coordinator/port"))" >/dev/null
  for n in worker1 worker2; do
    psql_node coordinator "$db" "SELECT citus_add_node('127.0.0.1', $(cat "$CITUS_DIR/$n/port"))" >/dev/null
  done
  echo "postgres://$CITUS_USER:$CITUS_USER@127.0.0.1:$(cat "$CITUS_DIR/coordinator/port")/$db"
}

stop() {
  [ -d "$CITUS_DIR" ] || { echo "no cluster in $CITUS_DIR"; return 0; }
  for n in "${NODES[@]}"; do
    [ -d "$CITUS_DIR/$n/data" ] && as_pg "$PG_BIN/pg_ctl" -D "$CITUS_DIR/$n/data" -m fast -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$CITUS_DIR"
  echo "stopped"
}

status() {
  [ -f "$CITUS_DIR/url" ] || { echo "no cluster in $CITUS_DIR" >&2; exit 1; }
  cat "$CITUS_DIR/url"
  psql_node coordinator "$CITUS_DB" "SELECT nodeid, groupid, nodename || ':' || nodeport, isactive FROM pg_dist_node ORDER BY nodeid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  adddb)
    [ -n "${2:-}" ] || { echo "usage: $0 adddb NAME" >&2; exit 2; }
    citus_db "$2"
    ;;
  *)
    echo "usage: $0 start|stop|status|adddb NAME" >&2
    exit 2
    ;;
esac
