#!/usr/bin/env bash
# Runs node-postgres's and postgres.js's own test suites three ways — directly against a
# throwaway PostgreSQL 15, through pgtenant in session mode, through pgtenant in
# transaction mode (plain pass-through config, no tenant section) — and writes per-test
# results and a summary (counts, tests that pass directly but not through pgtenant).
#
#   bench/client-suites/setup.sh                      # once: sources + dev dependencies
#   bench/client-suites/run.sh                        # everything (about 15 minutes)
#   SUITES=pg-cursor,postgres.js MODES=direct,transaction bench/client-suites/run.sh
#   PG_FILES='test/integration/client/*-tests.js' SUITES=pg bench/client-suites/run.sh
#
# Environment:
#   CLIENT_SUITES_SRC  where setup.sh put the work trees (default /tmp/pgtenant-client-suites)
#   SUITES             comma list of pg, pg-native, pg-pool, pg-cursor, pg-query-stream, postgres.js
#   MODES              comma list of direct, session, transaction
#   OUT                results directory (default $CLIENT_SUITES_SRC/results/<timestamp>)
#   PG_FILES           glob(s) under packages/pg for the pg / pg-native runs (default all integration files)
#   NO_BUILD=1         do not compile pgtenant: run $PGTENANT_JS (default <repo>/dist/server/cli.js) as it is
#   PGTENANT_COMMIT    what to record as the pgtenant version in meta.txt (with NO_BUILD: the commit $PGTENANT_JS was built from)
# Needs: root (PostgreSQL runs as the `postgres` OS user via runuser), PostgreSQL 15 binaries
# in /usr/lib/postgresql/15/bin, openssl, node ≥ 20.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SRC=${CLIENT_SUITES_SRC:-/tmp/pgtenant-client-suites}
SUITES=${SUITES:-pg,pg-native,pg-pool,pg-cursor,pg-query-stream,postgres.js}
MODES=${MODES:-direct,session,transaction}
OUT=${OUT:-$SRC/results/$(date -u +%Y%m%dT%H%M%SZ)}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
NP=$SRC/node-postgres
PJS=$SRC/postgres
FILE_TIMEOUT=${FILE_TIMEOUT:-120}     # seconds per node-postgres integration file
SUITE_TIMEOUT=${SUITE_TIMEOUT:-900}   # seconds per mocha / postgres.js run

[ -d "$NP/node_modules" ] || [ -d "$PJS/tests" ] || { echo "run $HERE/setup.sh first (no work trees in $SRC)" >&2; exit 2; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/pgtenant-cs.XXXXXX)
chmod 755 "$WORK"
PG_DIRS=()      # data dirs of running PostgreSQL servers
PROXY_PID=''

cleanup() {
  set +e
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
  for d in "${PG_DIRS[@]}"; do runuser -u postgres -- "$PGBIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE   # a closed stdout (| head) must not kill the script before its cleanup

has() { [[ ",$1," == *",$2,"* ]]; }
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

# One self-signed certificate for every server (PostgreSQL and pgtenant), CN=localhost.
openssl req -new -x509 -nodes -days 2 -subj /CN=localhost -keyout "$WORK/server.key" -out "$WORK/server.crt" >/dev/null 2>&1
chmod 644 "$WORK/server.key"

# start_pg NAME HBA_LINES... → sets PG_PORT, PG_SOCK, PG_DATA
start_pg() {
  local name=$1; shift
  local dir=$WORK/$name
  mkdir -p "$dir" && chown postgres: "$dir"
  PG_DATA=$dir/data PG_SOCK=$dir PG_PORT=$(free_port)
  runuser -u postgres -- "$PGBIN/initdb" -D "$PG_DATA" --no-sync -A trust -U postgres -E UTF8 --locale=C >/dev/null
  cp "$WORK/server.crt" "$WORK/server.key" "$PG_DATA/" && chown postgres: "$PG_DATA/server."* && chmod 600 "$PG_DATA/server.key"
  cat >>"$PG_DATA/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
ssl = on
wal_level = logical
max_prepared_transactions = 100
CONF
  printf '%s\n' "$@" >"$PG_DATA/pg_hba.conf"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$dir/server.log" -w -t 60 start >/dev/null
  PG_DIRS+=("$PG_DATA")
}
stop_pg() {
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
  cp "$(dirname "$PG_DATA")/server.log" "$1" 2>/dev/null || true
  PG_DIRS=("${PG_DIRS[@]/$PG_DATA}")
}
psql_su() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d postgres "$@" >/dev/null; }

# start_proxy MODE DATABASE TLS(yes|no) USERS_YAML → sets TARGET_PORT (pgtenant's)
start_proxy() {
  local mode=$1 db=$2 tls=$3 users=$4 log=$5
  TARGET_PORT=$(free_port)
  {
    echo "listen: 127.0.0.1:$TARGET_PORT"
    echo "log_level: warn"
    [ "$tls" = yes ] && echo "tls: { cert: $WORK/server.crt, key: $WORK/server.key }"
    echo "users:"
    printf '%s\n' "$users"
    echo "backends:"
    echo "  main: { url: \"postgres://127.0.0.1:$PG_PORT/$db?sslmode=disable\", pool: 100 }"
    # Every database name the client gives goes to that database on the server, as directly
    # (issue 14 item 5: without this only "main" and $db are accepted, others get 3D000).
    echo "databases: { \"*\": main }"
    echo "pool: { mode: $mode, max_server_connections: 250 }"
  } >"$WORK/pgtenant-$mode.yaml"
  cp "$WORK/pgtenant-$mode.yaml" "$(dirname "$log")/"
  node "$PGTENANT_JS" --config "$WORK/pgtenant-$mode.yaml" >"$log" 2>&1 &
  PROXY_PID=$!
  wait_port "$TARGET_PORT"
}
stop_proxy() {
  [ -n "$PROXY_PID" ] && { kill "$PROXY_PID" 2>/dev/null; wait "$PROXY_PID" 2>/dev/null || true; }
  PROXY_PID=''
}

# A process-level result line, for files whose tests are not all reported one by one.
exit_line() { node -e 'const [f,rc]=process.argv.slice(1);console.log(JSON.stringify({file:f,test:"(process exit)",status:rc==="0"?"pass":"fail",error:rc==="0"?undefined:"exit code "+rc}))' "$@"; }

# mocha SUITE DIR RESULTS ARGS... : runs mocha with a JSON reporter, converts to JSON lines
run_mocha() {
  local suite=$1 dir=$2 res=$3; shift 3
  local rc=0 mocha=$dir/node_modules/.bin/mocha
  [ -x "$mocha" ] || mocha=$NP/node_modules/.bin/mocha
  (cd "$dir" && timeout --foreground -k 10 "$SUITE_TIMEOUT" "$mocha" --reporter json --reporter-option "output=$res/$suite.mocha.json" --exit "$@") >"$res/$suite.log" 2>&1 || rc=$?
  node "$HERE/harness/report.mjs" mocha "$res/$suite.mocha.json" "$suite" >"$res/$suite.jsonl" || true
  exit_line "(mocha)" "$rc" >>"$res/$suite.jsonl"
}

# ---------------------------------------------------------------- node-postgres
run_node_postgres() {
  local mode=$1 res=$OUT/$mode
  mkdir -p "$res"
  # As in node-postgres's CI (.github/workflows/ci.yml): password auth (md5 method) for
  # postgres/postgres, database ci_db_test, two SCRAM roles, SSL on (PGTESTNOSSL=true, but
  # ssl-tests.js connects with SSL). pgtenant gets the same certificate.
  start_pg "np-$mode" 'local all all trust' 'host all all 127.0.0.1/32 md5'
  psql_su -c "ALTER ROLE postgres PASSWORD 'postgres'" -c 'CREATE DATABASE ci_db_test' \
    -c "SET password_encryption = 'scram-sha-256'" -c "CREATE ROLE scram_test LOGIN PASSWORD 'test4scram'" \
    -c "CREATE ROLE scram_unicode_test LOGIN PASSWORD U&'IX-\\2168'"
  TARGET_PORT=$PG_PORT
  if [ "$mode" != direct ]; then
    start_proxy "$mode" ci_db_test yes "$(printf '  postgres: { password: postgres }\n  scram_test: { password: test4scram }\n  scram_unicode_test: { password: "IX-\u2168" }')" "$res/pgtenant-node-postgres.log"
  fi
  export PGUSER=postgres PGPASSWORD=postgres PGHOST=127.0.0.1 PGPORT=$TARGET_PORT PGDATABASE=ci_db_test PGTESTNOSSL=true \
    SCRAM_TEST_PGUSER=scram_test SCRAM_TEST_PGPASSWORD=test4scram SCRAM_TEST_PGUSER_UNICODE=scram_unicode_test \
    SCRAM_TEST_PGPASSWORD_UNICODE=$'IX-\u2168'
  local files
  files=$(cd "$NP/packages/pg" && if [ -n "${PG_FILES:-}" ]; then ls $PG_FILES; else find test/integration -name '*-tests.js'; fi | sort)
  local variants=()
  has "$SUITES" pg && variants+=(js)
  if has "$SUITES" pg-native; then
    if (cd "$NP/packages/pg" && node -e "require('pg-native')" 2>/dev/null); then variants+=(native)
    else log "pg-native cannot be loaded: skipping native"; fi
  fi
  for v in "${variants[@]}"; do
    local suite=pg; [ "$v" = native ] && suite=pg.native
    log "$mode: node-postgres packages/pg ($v)"
    : >"$res/$suite.jsonl"; : >"$res/$suite.log"
    local list=$files
    [ "$v" = native ] && list=$(cd "$NP/packages/pg" && { ls test/native/*-tests.js; echo "$files"; })
    for f in $list; do
      local rc=0
      echo "=== $f" >>"$res/$suite.log"
      (cd "$NP/packages/pg" && CS_RESULTS=$res/$suite.jsonl timeout --foreground -k 10 "$FILE_TIMEOUT" node "$f" postgres:// $([ "$v" = native ] && echo native)) >>"$res/$suite.log" 2>&1 || rc=$?
      exit_line "$f" "$rc" >>"$res/$suite.jsonl"
    done
  done
  if has "$SUITES" pg-pool; then log "$mode: pg-pool"; run_mocha pg-pool "$NP/packages/pg-pool" "$res"; fi
  if has "$SUITES" pg-cursor; then log "$mode: pg-cursor"; run_mocha pg-cursor "$NP/packages/pg-cursor" "$res"; fi
  if has "$SUITES" pg-query-stream; then log "$mode: pg-query-stream"; run_mocha pg-query-stream "$NP/packages/pg-query-stream" "$res" -r ts-node/register 'test/**/*.ts'; fi
  if has "$SUITES" pg-native && (cd "$NP/packages/pg-native" && node -e "require('libpq')" 2>/dev/null); then
    log "$mode: pg-native"; run_mocha pg-native "$NP/packages/pg-native" "$res"
  fi
  unset PGUSER PGPASSWORD PGHOST PGPORT PGDATABASE PGTESTNOSSL
  stop_proxy
  stop_pg "$res/postgresql-node-postgres.log"
}

# ---------------------------------------------------------------- postgres.js
run_postgres_js() {
  local mode=$1 res=$OUT/$mode
  mkdir -p "$res"
  # As in postgres.js's CI (.github/workflows/test.yml, tests/pg_hba.conf; "samehost" is
  # 127.0.0.1 here): trust for postgres and postgres_js_test, md5 and scram roles; SSL on,
  # wal_level logical, prepared transactions. tests/bootstrap.js creates roles and database.
  start_pg "pjs-$mode" 'local all all trust' 'host all postgres 127.0.0.1/32 trust' \
    'host postgres_js_test postgres_js_test 127.0.0.1/32 trust' \
    'host postgres_js_test postgres_js_test_md5 127.0.0.1/32 md5' \
    'host postgres_js_test postgres_js_test_scram 127.0.0.1/32 scram-sha-256'
  # The suite runs psql/createdb/dropdb from PATH for its set-up and for ALTER SYSTEM; they go
  # to PostgreSQL directly over its socket as the superuser, as on the CI machine.
  mkdir -p "$WORK/pjs-bin"
  for b in psql createdb dropdb; do
    printf '#!/bin/sh\nPGHOST=%s PGPORT=%s PGUSER=postgres PGDATABASE=postgres PGPASSWORD= exec %s "$@"\n' "$PG_SOCK" "$PG_PORT" "$PGBIN/$b" >"$WORK/pjs-bin/$b"
    chmod +x "$WORK/pjs-bin/$b"
  done
  TARGET_PORT=$PG_PORT
  if [ "$mode" != direct ]; then
    # The users PostgreSQL trusts are trusted by pgtenant too (users.NAME.trust, issue 14
    # item 8); no PGPASSWORD, as on postgres.js's CI.
    start_proxy "$mode" postgres_js_test yes "$(printf '  postgres: { trust: true }\n  postgres_js_test: { trust: true }\n  postgres_js_test_md5: { password: postgres_js_test_md5 }\n  postgres_js_test_scram: { password: postgres_js_test_scram }')" "$res/pgtenant-postgres.js.log"
  fi
  log "$mode: postgres.js tests/index.js"
  local rc=0
  (cd "$PJS" && PATH=$WORK/pjs-bin:$PATH PGHOST=127.0.0.1 PGPORT=$TARGET_PORT PGUSER=postgres PGSOCKET=$PG_SOCK \
    CS_RESULTS=$res/postgres.js.jsonl timeout --foreground -k 10 "$SUITE_TIMEOUT" node tests/index.js) >"$res/postgres.js.log" 2>&1 || rc=$?
  [ -f "$res/postgres.js.jsonl" ] || : >"$res/postgres.js.jsonl"
  exit_line "tests/index.js" "$rc" >>"$res/postgres.js.jsonl"
  stop_proxy
  stop_pg "$res/postgresql-postgres.js.log"
}

# ---------------------------------------------------------------- main
# pgtenant is compiled from the working tree into this run's own directory (not dist/, which
# others rebuild while the suites run); the uncommitted part of the source is saved with the results.
PGTENANT_JS=${PGTENANT_JS:-$ROOT/dist/server/cli.js}
if has "$MODES" session || has "$MODES" transaction; then
  if [ -n "${NO_BUILD:-}" ]; then
    log "NO_BUILD: using $PGTENANT_JS as it is"
  else
    mkdir -p "$WORK/build" && cp "$ROOT/package.json" "$WORK/build/" && ln -s "$ROOT/node_modules" "$WORK/build/node_modules"
    for attempt in 1 2 3 4 5; do
      log "building pgtenant from $ROOT (attempt $attempt)"
      git -C "$ROOT" diff HEAD -- server parser routing >"$OUT/pgtenant-uncommitted.diff"
      (cd "$ROOT" && npx tsc -p tsconfig.json --outDir "$WORK/build/dist") >"$OUT/build.log" 2>&1 && break
      [ $attempt = 5 ] && { cat "$OUT/build.log" >&2; exit 1; }
      log "build failed (someone's tree is mid-change?); retrying in 60 s"; sleep 60
    done
    PGTENANT_JS=$WORK/build/dist/server/cli.js
  fi
fi
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if [ -n "${PGTENANT_COMMIT:-}" ]; then echo "pgtenant: $PGTENANT_COMMIT ($PGTENANT_JS)"; else
  echo "pgtenant: $(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server parser routing || echo ' + uncommitted changes (pgtenant-uncommitted.diff) in:' $(git -C "$ROOT" diff --name-only HEAD -- server parser routing))"; fi
  echo "node-postgres: $(cat "$SRC/node-postgres.commit" 2>/dev/null || echo unknown)"
  echo "postgres.js: $(cat "$SRC/postgres.commit" 2>/dev/null || echo unknown)"
  echo "postgresql: $("$PGBIN/postgres" --version)"
  echo "node: $(node --version)"
  echo "suites: $SUITES"
  echo "modes: $MODES"
  echo "pg files: ${PG_FILES:-all of test/integration}"
} >"$OUT/meta.txt"
cat "$OUT/meta.txt" >&2

for mode in ${MODES//,/ }; do
  if has "$SUITES" pg || has "$SUITES" pg-native || has "$SUITES" pg-pool || has "$SUITES" pg-cursor || has "$SUITES" pg-query-stream; then
    run_node_postgres "$mode"
  fi
  if has "$SUITES" postgres.js; then run_postgres_js "$mode"; fi
done

node "$HERE/harness/report.mjs" summary "$OUT" | tee "$OUT/summary.md"
log "results in $OUT"
