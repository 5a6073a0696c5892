"""Calls the gateway with the released Python SDKs, as a member would.

Usage: sdk_clients.py <gateway URL> <member key>

google-genai (Gemini API), openai (Chat Completions native and translated
for Claude and Gemini accounts, Responses, models) and anthropic (Messages),
each pointed at the gateway by its documented base-URL setting. Prints one
line per check and exits non-zero on the first failure.
"""

import sys

import anthropic
import openai
from google import genai
from google.genai import types

GEMINI = "Hello from the mock Gemini upstream."
OPENAI = "Hello from the mock OpenAI upstream."
CLAUDE = "Hello from the mock upstream."


def check(name, got, want):
    if got != want:
        raise SystemExit(f"FAILED {name}: got {got!r}, want {want!r}")
    print(f"ok   {name}: {got!r}")


def gemini_sdk(gw, key):
    client = genai.Client(
        api_key=key, http_options=types.HttpOptions(base_url=f"{gw}/api/ai-proxy")
    )
    r = client.models.generate_content(
        model="gemini-2.5-flash",
        contents="say pong",
        config=types.GenerateContentConfig(system_instruction="Be terse.", max_output_tokens=64),
    )
    check("google-genai generate_content", r.text, GEMINI)
    if not r.usage_metadata or not r.usage_metadata.candidates_token_count:
        raise SystemExit("FAILED google-genai: no usage_metadata")
    text = "".join(c.text or "" for c in client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="say pong"))
    check("google-genai generate_content_stream", text, GEMINI)
    n = client.models.count_tokens(model="gemini-2.5-flash", contents="say pong").total_tokens
    check("google-genai count_tokens > 0", n > 0, True)


def openai_sdk(gw, key):
    client = openai.OpenAI(base_url=f"{gw}/api/ai-proxy/v1", api_key=key, max_retries=0)
    msgs = [{"role": "user", "content": "say pong"}]
    r = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    check("openai chat", r.choices[0].message.content, OPENAI)
    check("openai chat usage", r.usage.completion_tokens > 0, True)

    usage, parts = None, []
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini", messages=msgs, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage:
            usage = chunk.usage
        parts += [c.delta.content or "" for c in chunk.choices]
    check("openai chat stream", "".join(parts), OPENAI)
    check("openai chat stream usage chunk", bool(usage and usage.total_tokens), True)

    parts, done = [], None
    for ev in client.responses.create(model="gpt-4o-mini", input="say pong", stream=True):
        if ev.type == "response.output_text.delta":
            parts.append(ev.delta)
        elif ev.type == "response.completed":
            done = ev.response
    check("openai responses stream", "".join(parts), OPENAI)
    check("openai responses usage", bool(done and done.usage.output_tokens), True)

    ids = [m.id for m in client.models.list()]
    check("openai models lists gpt-4o-mini, gemini and claude",
          all(any(i.startswith(p) for i in ids) for p in ("gpt-4o-mini", "gemini-", "claude-")), True)

    # Claude and Gemini accounts behind the same chat API, translated.
    parts, usage = [], None
    for chunk in client.chat.completions.create(
        model="claude-sonnet-4-6", messages=msgs, stream=True, stream_options={"include_usage": True}
    ):
        if chunk.usage:
            usage = chunk.usage
        parts += [c.delta.content or "" for c in chunk.choices]
    check("openai chat → Claude account (stream)", "".join(parts), CLAUDE)
    check("openai chat → Claude usage", bool(usage and usage.prompt_tokens_details.cached_tokens), True)
    r = client.chat.completions.create(model="gemini-2.5-flash", messages=msgs, max_tokens=64)
    check("openai chat → Gemini account", r.choices[0].message.content, GEMINI)

    try:
        client.chat.completions.create(model="claude-sonnet-4-6", messages=msgs, n=2)
        raise SystemExit("FAILED: n=2 was not refused")
    except openai.BadRequestError as e:
        check("openai chat n=2 refused with 400", "n > 1" in str(e), True)
    bad = openai.OpenAI(base_url=f"{gw}/api/ai-proxy/v1", api_key="aicp_nope", max_retries=0)
    try:
        bad.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        raise SystemExit("FAILED: a bad key was accepted")
    except openai.AuthenticationError:
        print("ok   openai bad key: 401")


def anthropic_sdk(gw, key):
    client = anthropic.Anthropic(base_url=f"{gw}/api", api_key=key, max_retries=0)
    r = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "say pong"}]
    )
    check("anthropic messages", r.content[0].text, CLAUDE)


def main():
    gw, key = sys.argv[1], sys.argv[2]
    print(f"google-genai {genai.__version__}, openai {openai.__version__}, anthropic {anthropic.__version__}")
    gemini_sdk(gw, key)
    openai_sdk(gw, key)
    anthropic_sdk(gw, key)
    print("all SDK checks passed")


if __name__ == "__main__":
    main()
