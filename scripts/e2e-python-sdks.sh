#!/usr/bin/env bash
# End to end with the released Python SDKs (google-genai, openai,
# anthropic): mock Gemini, OpenAI-compatible and Anthropic upstreams and
# the gateway on 127.0.0.1, a carpool with one account of each, then
# scripts/py/sdk_clients.py calls every path the key guide documents —
# Gemini native, OpenAI chat and Responses, chat translated for Claude and
# Gemini accounts, /v1/models — and the usage of each model is checked.
set -euo pipefail
source "$(dirname "$0")/e2e-lib.sh"

if ! python3 -c 'import google.genai, openai, anthropic' 2>/dev/null; then
  # The versions these checks last passed with.
  echo "installing google-genai, openai and anthropic from PyPI"
  timeout 600 pip install --quiet google-genai==3.6.1 openai==3.57.0 anthropic==2.14.0
fi

build_bins
k=sk-sdk-e2e-upstream
start_mock gemini $k
gemini=$mock_url
start_mock openai $k
openai=$mock_url
start_mock anthropic $k
claude=$mock_url
echo "mock upstreams: $gemini $openai $claude"
start_server
setup_team \
  "{\"name\":\"gemini\",\"platform\":\"gemini\",\"baseUrl\":\"$gemini\",\"credentials\":{\"apiKey\":\"$k\"}}" \
  "{\"name\":\"openai\",\"platform\":\"openai_compatible\",\"baseUrl\":\"$openai/v1\",\"models\":[\"gpt-*\"],\"credentials\":{\"apiKey\":\"$k\"}}" \
  "{\"name\":\"claude\",\"platform\":\"claude_api\",\"baseUrl\":\"$claude\",\"models\":[\"claude-*\"],\"credentials\":{\"apiKey\":\"$k\"}}"

timeout 180 python3 -W ignore::DeprecationWarning scripts/py/sdk_clients.py "$gw" "$key" \
  || fail "SDK checks"

# genai: generate + stream (count_tokens is free); openai: chat, chat
# stream, Responses on gpt-4o-mini; chat translated to Claude (+ the
# refused n=2) and to Gemini; anthropic: one Messages call.
report=$(usage_by_model 10)
for m in gemini-2.5-flash gpt-4o-mini claude-sonnet-4-6; do check_usage "$m" "$report"; done
python3 - "$report" <<'PY' || fail "usage per model"
import json, sys
rows = {r["bucket"]: r for r in json.loads(sys.argv[1])["rows"]}
assert rows["gemini-2.5-flash"]["requests"] == 3, rows   # 2 genai + 1 translated chat
assert rows["gpt-4o-mini"]["requests"] == 3, rows        # chat, chat stream, Responses
assert rows["claude-sonnet-4-6"]["requests"] == 3, rows  # translated chat, n=2 (400), Messages
assert rows["claude-sonnet-4-6"]["errors"] == 1, rows
assert rows["claude-sonnet-4-6"]["cacheWriteTokens"] > 0, rows
PY
no_secrets "$key" "$k"
stop_server
echo "e2e python sdks: passed"
