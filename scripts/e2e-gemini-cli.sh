#!/usr/bin/env bash
# End to end with the released Gemini CLI: a mock Gemini upstream and the
# gateway on 127.0.0.1, a carpool with a Gemini account set up over the
# HTTP API, then `gemini -p` through the gateway exactly as the key guide
# says (GOOGLE_GEMINI_BASE_URL, GEMINI_API_KEY, ~/.gemini/settings.json).
# Checks the answers and the usage recorded for each call.
set -euo pipefail
source "$(dirname "$0")/e2e-lib.sh"

if ! command -v gemini >/dev/null 2>&1; then
  # The version these checks last passed with; set AICARPOOL_E2E_GEMINI_CLI to try another.
  version="${AICARPOOL_E2E_GEMINI_CLI:-0.61.0}"
  echo "installing @google/gemini-cli@$version from npm"
  timeout 600 npm install -g --no-fund --no-audit "@google/gemini-cli@$version" >/dev/null
fi
echo "gemini: $(gemini --version)"

build_bins
start_mock gemini sk-gemini-e2e-upstream
upstream=$mock_url
echo "mock Gemini upstream: $upstream"
start_server
setup_team "{\"name\":\"gemini key\",\"platform\":\"gemini\",\"baseUrl\":\"$upstream\",\"credentials\":{\"apiKey\":\"sk-gemini-e2e-upstream\"}}"

# A home of its own for the guide's settings and environment.
mkdir -p "$work/home/.gemini" "$work/project"
field() { echo "$guide" | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['geminiCli']['$1']))"; }
# The guide's settings, and no update check: the run stays on 127.0.0.1.
field settingsJson | python3 -c 'import json,sys; s=json.load(sys.stdin)
s["general"]={"enableAutoUpdate":False,"enableAutoUpdateNotification":False}
print(json.dumps(s))' >"$work/home/.gemini/settings.json"
base_url=$(field GOOGLE_GEMINI_BASE_URL | tr -d '"')

run_gemini() {
  (cd "$work/project" && HOME="$work/home" GOOGLE_GEMINI_BASE_URL="$base_url" GEMINI_API_KEY="$key" \
    GEMINI_CLI_TRUST_WORKSPACE=true timeout 180 gemini "$@" </dev/null 2>"$work/gemini.err") || {
    cat "$work/gemini.err"; fail "gemini $*"; }
}

# Without -m: the routing call (JSON by schema), then the streamed turn.
answer=$(run_gemini -p "Say hello")
echo "gemini answered: $answer"
[[ "$answer" == *"Hello from the mock Gemini upstream."* ]] || fail "unexpected answer"
# With -m: one streamed call to that model.
answer=$(run_gemini -m gemini-2.5-flash -p "Say hello again")
echo "gemini -m gemini-2.5-flash answered: $answer"
[[ "$answer" == *"Hello from the mock Gemini upstream."* ]] || fail "unexpected answer"

report=$(usage_by_model 3)
check_usage gemini-2.5-flash "$report"
python3 - "$report" <<'PY' || fail "the routing call was not recorded"
import json, sys
r = json.loads(sys.argv[1])
assert r["totals"]["requests"] >= 3 and r["totals"]["errors"] == 0, r
print("recorded:", ", ".join(f"{x['bucket']} ×{x['requests']}" for x in r["rows"]))
PY
no_secrets "$key" sk-gemini-e2e-upstream
stop_server
echo "e2e gemini cli: passed"
