#!/usr/bin/env bash
# Prepares the client libraries' work trees for run.sh: sources at a recorded commit,
# their dev dependencies, node-postgres's TypeScript packages built, harness patches
# (harness/patch.mjs) applied.
#
#   bench/client-suites/setup.sh
#   NODE_POSTGRES_GIT=/path/to/bare/node-postgres.git POSTGRES_JS_GIT=... bench/client-suites/setup.sh
#
# NODE_POSTGRES_GIT / POSTGRES_JS_GIT: a git URL (cloned) or an existing git directory
# (bare mirror: its HEAD is exported with git archive). NODE_POSTGRES_REF / POSTGRES_JS_REF:
# a commit to use instead of HEAD. pg-native needs libpq headers (apt-get install libpq-dev);
# without them the native variant is skipped by run.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${CLIENT_SUITES_SRC:-/tmp/pgtenant-client-suites}
NODE_POSTGRES_GIT=${NODE_POSTGRES_GIT:-https://github.com/brianc/node-postgres.git}
POSTGRES_JS_GIT=${POSTGRES_JS_GIT:-https://github.com/porsager/postgres.git}
mkdir -p "$SRC"

get() { # get NAME GIT REF
  local name=$1 git=$2 ref=$3 dir=$SRC/$1
  [ -d "$dir" ] && { echo "$dir exists (delete it to fetch again)"; return; }
  if [ -d "$git" ]; then
    git --git-dir="$git" rev-parse "$ref" >"$SRC/$name.commit"
    mkdir -p "$dir" && git --git-dir="$git" archive "$ref" | tar -x -C "$dir"
  else
    git clone -q "$git" "$dir" && git -C "$dir" checkout -q "$ref" && git -C "$dir" rev-parse HEAD >"$SRC/$name.commit"
  fi
}
get node-postgres "$NODE_POSTGRES_GIT" "${NODE_POSTGRES_REF:-HEAD}"
get postgres "$POSTGRES_JS_GIT" "${POSTGRES_JS_REF:-HEAD}"

# node-postgres is a yarn workspace; npm understands its workspaces too. pg-protocol and
# pg-connection-string... are TypeScript: build them (yarn build = tsc --build).
(cd "$SRC/node-postgres" && [ -d node_modules ] || npm install --no-audit --no-fund)
(cd "$SRC/node-postgres" && npx tsc --build)
# postgres.js has no dependencies.
node "$HERE/harness/patch.mjs" "$SRC/node-postgres" "$SRC/postgres"
(cd "$SRC/node-postgres/packages/pg" && node -e "require('pg-native')" 2>/dev/null && echo "pg-native: loads") || echo "pg-native: cannot be loaded (libpq headers missing?); run.sh will skip it"
echo "ready: $SRC ($(cat "$SRC/node-postgres.commit") / $(cat "$SRC/postgres.commit"))"
