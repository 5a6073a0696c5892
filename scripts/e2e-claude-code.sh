#!/usr/bin/env bash
# End to end with the released Claude Code CLI: start a mock Anthropic
# upstream and the gateway, set a carpool up over the HTTP API exactly as the
# README shows, then run `claude -p` through the gateway and check the
# answer and the recorded usage. Everything stays on 127.0.0.1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v claude >/dev/null 2>&1; then
  # The version these checks last passed with; set AICARPOOL_E2E_CLAUDE_CODE to try another.
  version="${AICARPOOL_E2E_CLAUDE_CODE:-2.1.197}"
  echo "installing @anthropic-ai/claude-code@$version from npm"
  npm install -g --no-fund --no-audit "@anthropic-ai/claude-code@$version" >/dev/null
fi
echo "claude: $(claude --version)"

cargo build --quiet -p aicarpool-server -p aicarpool-testkit --bins
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin/aicarpool-mock-upstream" 127.0.0.1:0 sk-ant-e2e-upstream >"$work/mock.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q 'listening on' "$work/mock.out" && break; sleep 0.1; done
upstream=$(sed -n 's/^listening on //p' "$work/mock.out")
echo "mock upstream: $upstream"

# Two faulty upstreams for the failover check below: one that never
# answers, one that answers gzip although asked for identity.
start_faulty() {
  AICARPOOL_MOCK_FAULT=$1 "$bin/aicarpool-mock-upstream" 127.0.0.1:0 sk-ant-e2e-upstream >"$work/$1.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do grep -q 'listening on' "$work/$1.out" && break; sleep 0.1; done
  sed -n 's/^listening on //p' "$work/$1.out"
}
stalling=$(start_faulty stall)
gzipping=$(start_faulty gzip)

port=$(free_port)
gw="http://127.0.0.1:$port"
# The mock upstream is on loopback, which the outbound guard denies by
# default. A stalled first byte fails over after 5 s rather than 30.
AICARPOOL_STREAM_FIRST_BYTE_TIMEOUT_MS=5000 AICARPOOL_FIRST_BYTE_TIMEOUT_MS=5000 \
AICARPOOL_UPSTREAM_ALLOW="127.0.0.0/8,::1" AICARPOOL_LISTEN="127.0.0.1:$port" AICARPOOL_PUBLIC_URL="$gw" \
  AICARPOOL_DATABASE_URL="sqlite://$work/aicarpool.db" \
  "$bin/aicarpool" serve >"$work/server.log" 2>&1 &
server=$!
pids+=($server)
for _ in $(seq 100); do curl -fs "$gw/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$gw/readyz" >/dev/null || { cat "$work/server.log"; echo "server did not start"; exit 1; }
echo "gateway: $gw"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

token=$(curl -fsS "$gw/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"owner@example.com","password":"correct horse battery","name":"Owner"}' | json "['token']")
auth=(-H "authorization: Bearer $token" -H 'content-type: application/json')
group=$(curl -fsS "$gw/api/groups" "${auth[@]}" -d '{"name":"e2e carpool"}' | json "['id']")
account=$(curl -fsS "$gw/api/groups/$group/accounts" "${auth[@]}" \
  -d "{\"name\":\"team key\",\"platform\":\"claude_api\",\"baseUrl\":\"$upstream\",\"credentials\":{\"apiKey\":\"sk-ant-e2e-upstream\"}}" | json "['id']")
curl -fsS -X PUT "$gw/api/groups/$group/binding" "${auth[@]}" \
  -d "{\"mode\":\"dedicated\",\"accounts\":[{\"accountId\":\"$account\"}]}" >/dev/null
created=$(curl -fsS "$gw/api/groups/$group/keys" "${auth[@]}" -d '{"name":"e2e"}')
key=$(echo "$created" | json "['key']")
key_id=$(echo "$created" | json "['id']")
base_url=$(echo "$created" | json "['guide']['claudeCode']['ANTHROPIC_BASE_URL']")
echo "group $group, account $account, key ${key:0:24}…"

mkdir -p "$work/home"
ask_claude() {
  (cd "$work" && HOME="$work/home" ANTHROPIC_BASE_URL="$base_url" ANTHROPIC_AUTH_TOKEN="$key" \
    DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    timeout 180 claude -p "Say hello" </dev/null 2>"$work/claude.err") || {
    echo "claude failed:"; cat "$work/claude.err"; tail -20 "$work/server.log"; exit 1; }
}
answer=$(ask_claude)
echo "claude answered: $answer"
case "$answer" in
  *"Hello from the mock upstream."*) ;;
  *) echo "unexpected answer"; cat "$work/claude.err"; exit 1 ;;
esac

# Failover: a silent account and a gzip one are tried before the healthy one.
add_account() {
  curl -fsS "$gw/api/groups/$group/accounts" "${auth[@]}" \
    -d "{\"name\":\"$1\",\"platform\":\"claude_api\",\"baseUrl\":\"$2\",\"credentials\":{\"apiKey\":\"sk-ant-e2e-upstream\"}}" | json "['id']"
}
silent_account=$(add_account "silent relay" "$stalling")
gzip_account=$(add_account "gzip relay" "$gzipping")
curl -fsS -X PUT "$gw/api/groups/$group/binding" "${auth[@]}" \
  -d "{\"mode\":\"dedicated\",\"accounts\":[{\"accountId\":\"$silent_account\",\"priority\":1},{\"accountId\":\"$gzip_account\",\"priority\":2},{\"accountId\":\"$account\",\"priority\":3}]}" >/dev/null
started=$(date +%s)
answer=$(ask_claude)
took=$(( $(date +%s) - started ))
echo "claude answered past a silent account in ${took} s: $answer"
case "$answer" in
  *"Hello from the mock upstream."*) ;;
  *) echo "unexpected answer after failover"; cat "$work/claude.err"; exit 1 ;;
esac
[ "$took" -lt 60 ] || { echo "failover took too long"; exit 1; }
# The usage of a scope once it counts a request (the writer flushes in moments).
usage_of() {
  local report=""
  for _ in $(seq 30); do
    report=$(curl -fsS "$gw/api/usage?scope=$1&id=$2" -H "authorization: Bearer $token")
    [ "$(echo "$report" | json "['totals']['requests']")" -ge 1 ] && break
    sleep 0.2
  done
  echo "$report"
}
gzip_usage=$(usage_of account "$gzip_account")
echo "usage on the gzip account: $(echo "$gzip_usage" | json "['totals']")"
[ "$(echo "$gzip_usage" | json "['totals']['outputTokens']")" -gt 0 ] || { echo "the gzip answer's usage was not read"; exit 1; }

usage=$(usage_of key "$key_id")
echo "usage: $(echo "$usage" | json "['totals']")"
[ "$(echo "$usage" | json "['totals']['outputTokens']")" -gt 0 ] || { echo "usage not recorded"; exit 1; }
if grep -q "$key" "$work/server.log" || grep -q sk-ant-e2e-upstream "$work/server.log"; then
  echo "a secret appeared in the server log"; exit 1
fi

kill -TERM "$server"
wait "$server" && echo "server stopped cleanly on SIGTERM"
echo "e2e claude code: passed"
