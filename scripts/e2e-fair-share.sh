#!/usr/bin/env bash
# End to end: the fair share of a subscription window with the released
# Claude Code. A subscription mock whose 5-hour window holds $20 of
# list-price use, one group with an owner who keeps asking and a member who
# asks now and then: the owner is held to their share with a 429 that
# Claude Code shows, the member goes on, and the windows report says why.
set -euo pipefail
source "$(dirname "$0")/e2e-lib.sh"

if ! command -v claude >/dev/null 2>&1; then
  version="${AICARPOOL_E2E_CLAUDE_CODE:-2.1.197}"
  echo "installing @anthropic-ai/claude-code@$version from npm"
  npm install -g --no-fund --no-audit "@anthropic-ai/claude-code@$version" >/dev/null
fi
echo "claude: $(claude --version)"

build_bins
out="$work/mock-subscription.out"
AICARPOOL_MOCK_WINDOW_USD=20 "$bin/aicarpool-mock-upstream" 127.0.0.1:0 sk-ant-sub subscription >"$out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q 'listening on' "$out" && break; sleep 0.1; done
mock_url=$(sed -n 's/^listening on //p' "$out")
[ -n "$mock_url" ] || fail "the subscription mock did not start"
start_server
setup_team "{\"name\":\"Max of the owner\",\"platform\":\"claude_api\",\"baseUrl\":\"$mock_url\",\"credentials\":{\"apiKey\":\"sk-ant-sub\"}}"
owner_key=$key

# A member joins by invitation and makes a key.
invitation=$(curl -fsS "$gw/api/groups/$group/invitations" "${auth[@]}" -d '{}' | json "['token']")
member_token=$(curl -fsS -X POST "$gw/api/invitations/$invitation/accept" -H 'content-type: application/json' \
  -d '{"email":"bo@example.com","password":"correct horse battery","name":"Bo"}' | json "['token']")
member_auth=(-H "authorization: Bearer $member_token" -H 'content-type: application/json')
member_key=$(curl -fsS "$gw/api/groups/$group/keys" "${member_auth[@]}" -d '{"name":"laptop"}' | json "['key']")

# ask <home> <key>: one `claude -p`; prints the answer (or the error Claude Code shows).
ask() {
  mkdir -p "$work/$1"
  ANTHROPIC_BASE_URL="$gw/api/v1" ANTHROPIC_AUTH_TOKEN="$2" CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    HOME="$work/$1" timeout 120 claude -p "Say hello" </dev/null 2>"$work/$1.err" || true
}

answer=$(ask member "$member_key")
echo "member: $answer"
[ "$answer" = "Done." ] || fail "the member's first request: $answer"
refused=""
for i in $(seq 1 30); do
  answer=$(ask owner "$owner_key")
  case "$answer" in
    *"fair share"*) refused=$answer; echo "owner, request $i: $answer"; break ;;
    "Done.") ;;
    *) fail "owner, request $i: $answer" ;;
  esac
done
[ -n "$refused" ] || fail "the owner was never held to their share"
case "$refused" in
  *"429"*"Max of the owner"*"resets at"*"other members still have their share"*) ;;
  *) fail "the refusal does not say whose window, when it resets and that others keep their share" ;;
esac
answer=$(ask member "$member_key")
echo "member, after: $answer"
[ "$answer" = "Done." ] || fail "the member was refused after the owner: $answer"

windows=$(curl -fsS "$gw/api/groups/$group/windows" "${auth[@]}")
echo "$windows" | python3 -c '
import json, sys
for w in json.load(sys.stdin):
    if w["window"] != "5h":
        continue
    print("5h window: %d %% used, capacity about $%s" % (100 * w["utilization"], w["capacityEstimateUsd"]))
    for m in w["members"]:
        print("  %s: $%s of $%s (%s)" % (m["name"], m["usedUsd"], m["shareUsd"], m["state"]))
    states = sorted(m["state"] for m in w["members"])
    assert states == ["over", "within"], states
' || fail "the windows report"
echo "e2e fair share: passed"
