#!/usr/bin/env bash
# End to end with the released Codex CLI: a mock OpenAI-compatible upstream
# and the gateway on 127.0.0.1, a carpool with an openai_compatible account
# set up over the HTTP API, then `codex exec` through the gateway with the
# key guide's config.toml (custom provider, wire_api = "responses").
# Checks the answer, the recorded usage, and that a WebSocket attempt on
# /v1/responses is refused at once (so the built-in provider falls back).
set -euo pipefail
source "$(dirname "$0")/e2e-lib.sh"

if ! command -v codex >/dev/null 2>&1; then
  # The version these checks last passed with; set AICARPOOL_E2E_CODEX to try another.
  version="${AICARPOOL_E2E_CODEX:-0.169.0}"
  echo "installing @openai/codex@$version from npm"
  timeout 600 npm install -g --no-fund --no-audit "@openai/codex@$version" >/dev/null
fi
echo "codex: $(codex --version)"

build_bins
start_mock openai sk-openai-e2e-upstream
upstream=$mock_url
echo "mock OpenAI upstream: $upstream"
start_server
setup_team "{\"name\":\"openai key\",\"platform\":\"openai_compatible\",\"baseUrl\":\"$upstream/v1\",\"credentials\":{\"apiKey\":\"sk-openai-e2e-upstream\"}}"

mkdir -p "$work/codex" "$work/project"
# The guide's config.toml, without update checks and analytics: the run
# stays on 127.0.0.1.
{
  echo 'check_for_update_on_startup = false'
  echo "$guide" | python3 -c 'import json,sys; print(json.load(sys.stdin)["codex"]["configToml"])'
  printf '[analytics]\nenabled = false\n'
} >"$work/codex/config.toml"
answer=$(cd "$work/project" && HOME="$work" CODEX_HOME="$work/codex" AICARPOOL_API_KEY="$key" \
  timeout 180 codex exec --skip-git-repo-check -m gpt-5-codex "Say hello" </dev/null 2>"$work/codex.err") || {
  cat "$work/codex.err"; fail "codex exec"; }
echo "codex answered: $answer"
[[ "$answer" == *"Hello from the mock OpenAI upstream."* ]] || { cat "$work/codex.err"; fail "unexpected answer"; }

status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$gw/api/ai-proxy/v1/responses" \
  -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H "authorization: Bearer $key")
[ "$status" = 426 ] || fail "a WebSocket attempt got $status, not 426"
echo "websocket attempt: $status"

report=$(usage_by_model 1)
check_usage gpt-5-codex "$report"
no_secrets "$key" sk-openai-e2e-upstream
stop_server
echo "e2e codex: passed"
