# Shared by the end-to-end scripts of the /api/ai-proxy clients (sourced,
# not run): mock upstreams and the gateway on 127.0.0.1, a carpool set up
# over the HTTP API as the README shows, and usage read back.
# shellcheck shell=bash

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=$(mktemp -d)
pids=()
e2e_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap e2e_cleanup EXIT

fail() { echo "FAILED: $*"; [ -f "$work/server.log" ] && tail -20 "$work/server.log"; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

build_bins() {
  cargo build --quiet -p aicarpool-server -p aicarpool-testkit --bins
  bin="${CARGO_TARGET_DIR:-$root/target}/debug"
}

# start_mock <anthropic|gemini|openai> <upstream key>: sets $mock_url. (Not
# for $(…): the mock's pid must reach this shell's cleanup.)
start_mock() {
  local out="$work/mock-$1.out"
  "$bin/aicarpool-mock-upstream" 127.0.0.1:0 "$2" "$1" >"$out" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q 'listening on' "$out" && break; sleep 0.1; done
  mock_url=$(sed -n 's/^listening on //p' "$out")
  [ -n "$mock_url" ] || fail "the $1 mock did not start"
}

# start_server: the gateway on a free loopback port; sets $gw and $server.
start_server() {
  local port
  port=$(free_port)
  gw="http://127.0.0.1:$port"
  # The mock upstream is on loopback, which the outbound guard denies by default.
  AICARPOOL_UPSTREAM_ALLOW="127.0.0.0/8,::1" AICARPOOL_LISTEN="127.0.0.1:$port" AICARPOOL_PUBLIC_URL="$gw" \
    AICARPOOL_DATABASE_URL="sqlite://$work/aicarpool.db" \
    "$bin/aicarpool" serve >"$work/server.log" 2>&1 &
  server=$!
  pids+=($server)
  for _ in $(seq 100); do curl -fs "$gw/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "$gw/readyz" >/dev/null || fail "server did not start"
  echo "gateway: $gw"
}

# setup_team <account JSON>...: an owner, a group with these accounts bound,
# and a member key; sets $token, $group, $key, $key_id and $guide (JSON).
setup_team() {
  token=$(curl -fsS "$gw/api/auth/register" -H 'content-type: application/json' \
    -d '{"email":"owner@example.com","password":"correct horse battery","name":"Owner"}' | json "['token']")
  auth=(-H "authorization: Bearer $token" -H 'content-type: application/json')
  group=$(curl -fsS "$gw/api/groups" "${auth[@]}" -d '{"name":"e2e carpool"}' | json "['id']")
  local entries="" id
  for account in "$@"; do
    id=$(curl -fsS "$gw/api/groups/$group/accounts" "${auth[@]}" -d "$account" | json "['id']")
    entries="$entries${entries:+,}{\"accountId\":\"$id\"}"
  done
  curl -fsS -X PUT "$gw/api/groups/$group/binding" "${auth[@]}" \
    -d "{\"mode\":\"dedicated\",\"accounts\":[$entries]}" >/dev/null
  local created
  created=$(curl -fsS "$gw/api/groups/$group/keys" "${auth[@]}" -d '{"name":"e2e"}')
  key=$(echo "$created" | json "['key']")
  key_id=$(echo "$created" | json "['id']")
  guide=$(echo "$created" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["guide"]))')
  echo "group $group, key ${key:0:24}…"
}

# usage_by_model <at least N requests>: waits for the writer, prints the
# key's usage grouped by model (JSON) to stdout.
usage_by_model() {
  local usage=""
  for _ in $(seq 50); do
    usage=$(curl -fsS "$gw/api/usage?scope=key&id=$key_id&groupBy=model" -H "authorization: Bearer $token")
    [ "$(echo "$usage" | json "['totals']['requests']")" -ge "$1" ] && break
    sleep 0.2
  done
  echo "$usage"
}

# check_usage <model> <usage JSON>: the model has requests and output tokens.
check_usage() {
  python3 - "$1" "$2" <<'EOF' || fail "usage of $1 not recorded"
import json, sys
model, report = sys.argv[1], json.loads(sys.argv[2])
rows = [r for r in report["rows"] if r["bucket"] == model]
assert rows and rows[0]["requests"] >= 1 and rows[0]["outputTokens"] > 0, report
print(f"usage {model}: {rows[0]['requests']} requests, {rows[0]['inputTokens']} in, "
      f"{rows[0]['outputTokens']} out, {rows[0]['cacheReadTokens']} cache read, ${rows[0]['costUsd']:.6f}")
EOF
}

# no_secrets <secret>...: none of them is in the server log.
no_secrets() {
  for s in "$@"; do
    if grep -qF "$s" "$work/server.log"; then fail "a secret appeared in the server log"; fi
  done
}

stop_server() {
  kill -TERM "$server"
  wait "$server" && echo "server stopped cleanly on SIGTERM"
}
