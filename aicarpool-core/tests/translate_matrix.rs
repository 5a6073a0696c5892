//! Any client on any account: the captured requests of Claude Code, Codex
//! and Gemini CLI served by mock accounts of the two other protocols,
//! through the gateway. Each direction runs a full tool-use turn (the
//! request, the tool call, the tool result sent back with the same id,
//! the final answer), streamed and whole, and the usage is recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_support;

use aicarpool_core::account::Protocol;
use aicarpool_testkit::mock::ReceivedRequest;
use aicarpool_testkit::{fixtures, Behavior, MockGemini, MockOpenAi, MockUpstream};
use proxy_support::*;
use serde_json::{json, Value};

/// The client protocols, by their real clients.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Client {
    ClaudeCode,
    Codex,
    GeminiCli,
}

/// A mock account of any protocol.
enum Mock {
    Claude(MockUpstream),
    Openai(MockOpenAi),
    Gemini(MockGemini),
}

impl Mock {
    async fn start(protocol: Protocol) -> Mock {
        match protocol {
            Protocol::Anthropic => Mock::Claude(MockUpstream::start(UPSTREAM_KEY).await.unwrap()),
            Protocol::Openai => Mock::Openai(MockOpenAi::start(UPSTREAM_KEY).await.unwrap()),
            Protocol::Gemini => Mock::Gemini(MockGemini::start(UPSTREAM_KEY).await.unwrap()),
        }
    }

    fn spec(&self) -> Spec {
        match self {
            Mock::Claude(m) => claude(&m.url),
            Mock::Openai(m) => openai(&m.url),
            Mock::Gemini(m) => gemini(&m.url),
        }
    }

    fn push(&self, b: Behavior) {
        match self {
            Mock::Claude(m) => m.push([b]),
            Mock::Openai(m) => m.push([b]),
            Mock::Gemini(m) => m.push([b]),
        }
    }

    fn received(&self) -> Vec<ReceivedRequest> {
        match self {
            Mock::Claude(m) => m.received(),
            Mock::Openai(m) => m.received(),
            Mock::Gemini(m) => m.received(),
        }
    }
}

/// The model each account is mapped to, by a glob over the client's names.
fn served_model(account: Protocol) -> &'static str {
    match account {
        Protocol::Anthropic => "claude-sonnet-4-5",
        Protocol::Openai => "deepseek-chat",
        Protocol::Gemini => "gemini-2.5-flash",
    }
}

impl Client {
    fn protocol(self) -> Protocol {
        match self {
            Client::ClaudeCode => Protocol::Anthropic,
            Client::Codex => Protocol::Openai,
            Client::GeminiCli => Protocol::Gemini,
        }
    }

    fn model_glob(self) -> &'static str {
        match self {
            Client::ClaudeCode => "claude-*",
            Client::Codex => "gpt-*",
            Client::GeminiCli => "gemini-*",
        }
    }

    /// A tool the captured request declares, and arguments for it.
    fn tool(self) -> (&'static str, Value) {
        match self {
            Client::ClaudeCode => ("Read", json!({"file_path": "/etc/hostname"})),
            Client::Codex => ("exec_command", json!({"cmd": "cat /etc/hostname"})),
            Client::GeminiCli => ("read_file", json!({"file_path": "/etc/hostname"})),
        }
    }

    /// The captured first request, its path, and its body (`stream` set).
    fn first(self, stream: bool) -> (String, Value) {
        match self {
            Client::ClaudeCode => {
                let mut body: Value =
                    serde_json::from_slice(&fixtures::claude_code_apikey().body).unwrap();
                body["stream"] = json!(stream);
                ("/api/v1/messages".into(), body)
            }
            Client::Codex => {
                let mut body: Value =
                    serde_json::from_slice(&fixtures::codex_responses().body).unwrap();
                body["stream"] = json!(stream);
                ("/api/ai-proxy/v1/responses".into(), body)
            }
            Client::GeminiCli => {
                let captured = fixtures::gemini_cli_stream();
                let body: Value = serde_json::from_slice(&captured.body).unwrap();
                let path = if stream {
                    "/api/ai-proxy/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
                } else {
                    "/api/ai-proxy/v1beta/models/gemini-2.5-pro:generateContent"
                };
                (path.into(), body)
            }
        }
    }

    /// The model the client asked for.
    fn model(self, body: &Value) -> String {
        match self {
            Client::GeminiCli => "gemini-2.5-pro".into(),
            _ => body["model"].as_str().unwrap().to_owned(),
        }
    }

    /// The one tool call of an answer: (id, name, arguments).
    fn tool_call(self, text: &str, stream: bool) -> (String, String, Value) {
        let calls = self.tool_calls(text, stream);
        assert_eq!(calls.len(), 1, "{text}");
        calls.into_iter().next().unwrap()
    }

    fn tool_calls(self, text: &str, stream: bool) -> Vec<(String, String, Value)> {
        let docs: Vec<Value> = if stream {
            sse_data(text)
        } else {
            vec![serde_json::from_str(text).unwrap()]
        };
        let mut calls = Vec::new();
        match self {
            Client::ClaudeCode if stream => {
                let mut starts: Vec<(String, String)> = Vec::new();
                let mut args = String::new();
                for d in &docs {
                    if d["type"] == "content_block_start"
                        && d["content_block"]["type"] == "tool_use"
                    {
                        let b = &d["content_block"];
                        starts.push((
                            b["id"].as_str().unwrap().to_owned(),
                            b["name"].as_str().unwrap().to_owned(),
                        ));
                    }
                    if d["delta"]["type"] == "input_json_delta" {
                        args += d["delta"]["partial_json"].as_str().unwrap();
                    }
                }
                return starts
                    .into_iter()
                    .map(|(id, name)| (id, name, serde_json::from_str(&args).unwrap()))
                    .collect();
            }
            Client::ClaudeCode => {
                for b in docs[0]["content"].as_array().unwrap() {
                    if b["type"] == "tool_use" {
                        calls.push((
                            b["id"].as_str().unwrap().to_owned(),
                            b["name"].as_str().unwrap().to_owned(),
                            b["input"].clone(),
                        ));
                    }
                }
            }
            Client::Codex => {
                let output: Vec<Value> = if stream {
                    let done = docs
                        .iter()
                        .find(|d| d["type"] == "response.completed")
                        .expect(text);
                    done["response"]["output"].as_array().unwrap().clone()
                } else {
                    docs[0]["output"].as_array().unwrap().clone()
                };
                for item in output {
                    if item["type"] == "function_call" {
                        calls.push((
                            item["call_id"].as_str().unwrap().to_owned(),
                            item["name"].as_str().unwrap().to_owned(),
                            serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap(),
                        ));
                    }
                }
            }
            Client::GeminiCli => {
                for d in &docs {
                    for part in d["candidates"][0]["content"]["parts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if let Some(call) = part.get("functionCall") {
                            calls.push((
                                call["id"].as_str().unwrap_or("").to_owned(),
                                call["name"].as_str().unwrap().to_owned(),
                                call["args"].clone(),
                            ));
                        }
                    }
                }
            }
        }
        calls
    }

    /// The first request's body with the tool call and its result added.
    fn second(self, mut body: Value, call: &(String, String, Value)) -> Value {
        let (id, name, args) = call;
        match self {
            Client::ClaudeCode => {
                let messages = body["messages"].as_array_mut().unwrap();
                messages.push(json!({"role": "assistant", "content": [
                    {"type": "tool_use", "id": id, "name": name, "input": args}]}));
                messages.push(json!({"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": id, "content": "carpool-host"}]}));
            }
            Client::Codex => {
                let input = body["input"].as_array_mut().unwrap();
                input.push(json!({"type": "function_call", "call_id": id, "name": name,
                                  "arguments": args.to_string()}));
                input.push(json!({"type": "function_call_output", "call_id": id,
                                  "output": "carpool-host"}));
            }
            Client::GeminiCli => {
                let contents = body["contents"].as_array_mut().unwrap();
                let mut call = json!({"name": name, "args": args});
                let mut response = json!({"name": name, "response": {"output": "carpool-host"}});
                if !id.is_empty() {
                    call["id"] = json!(id);
                    response["id"] = json!(id);
                }
                contents.push(json!({"role": "model", "parts": [{"functionCall": call}]}));
                contents.push(json!({"role": "user", "parts": [{"functionResponse": response}]}));
            }
        }
        body
    }

    /// The text of an answer.
    fn answer_text(self, text: &str, stream: bool) -> String {
        let docs: Vec<Value> = if stream {
            sse_data(text)
        } else {
            vec![serde_json::from_str(text).unwrap()]
        };
        let mut out = String::new();
        for d in &docs {
            match self {
                Client::ClaudeCode if stream => {
                    if d["delta"]["type"] == "text_delta" {
                        out += d["delta"]["text"].as_str().unwrap();
                    }
                }
                Client::ClaudeCode => {
                    for b in d["content"].as_array().unwrap() {
                        if b["type"] == "text" {
                            out += b["text"].as_str().unwrap();
                        }
                    }
                }
                Client::Codex if stream => {
                    if d["type"] == "response.output_text.delta" {
                        out += d["delta"].as_str().unwrap();
                    }
                }
                Client::Codex => {
                    for item in d["output"].as_array().unwrap() {
                        for c in item["content"].as_array().into_iter().flatten() {
                            if c["type"] == "output_text" {
                                out += c["text"].as_str().unwrap();
                            }
                        }
                    }
                }
                Client::GeminiCli => {
                    for part in d["candidates"][0]["content"]["parts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        if part["thought"] != json!(true) {
                            out += part["text"].as_str().unwrap_or("");
                        }
                    }
                }
            }
        }
        out
    }
}

/// The tool call and its result, as the account received them in the
/// second request: (the call's id, the result's id).
fn carried_ids(account: Protocol, received: &ReceivedRequest) -> (String, String) {
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    match account {
        Protocol::Anthropic => {
            let messages = body["messages"].as_array().unwrap();
            let n = messages.len();
            let call = messages[n - 2]["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_use")
                .expect("tool_use carried");
            let result = messages[n - 1]["content"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["type"] == "tool_result")
                .expect("tool_result carried");
            assert!(result.to_string().contains("carpool-host"));
            (s(&call["id"]), s(&result["tool_use_id"]))
        }
        Protocol::Openai => {
            let messages = body["messages"].as_array().unwrap();
            let call = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
                .expect("assistant tool_calls carried");
            let result = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "tool")
                .expect("tool message");
            assert!(result["content"].to_string().contains("carpool-host"));
            (s(&call["tool_calls"][0]["id"]), s(&result["tool_call_id"]))
        }
        Protocol::Gemini => {
            let contents = body["contents"].as_array().unwrap();
            let n = contents.len();
            let call = contents[n - 2]["parts"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|p| p.get("functionCall"))
                .expect("functionCall carried")
                .clone();
            let result = contents[n - 1]["parts"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|p| p.get("functionResponse"))
                .expect("functionResponse carried")
                .clone();
            assert!(result.to_string().contains("carpool-host"));
            assert_eq!(call["name"], result["name"]);
            (s(&call["id"]), s(&result["id"]))
        }
    }
}

/// One full tool-use turn of `client` on an account of `account` only.
async fn tool_turn(client: Client, account: Protocol, stream: bool) {
    let case = format!("{client:?} on {account:?}, stream {stream}");
    let mock = Mock::start(account).await;
    let spec = mock
        .spec()
        .serves(&[client.protocol()])
        .map(client.model_glob(), served_model(account));
    let h = harness(vec![spec]).await;
    let (name, args) = client.tool();

    let (path, first) = client.first(stream);
    mock.push(Behavior::ToolCall {
        name: name.into(),
        arguments: args.clone(),
    });
    let resp = h.gateway.handle(h.post(&path, first.to_string())).await;
    assert_eq!(resp.status(), 200, "{case}");
    let first_answer = text(resp).await;
    let call = client.tool_call(&first_answer, stream);
    assert_eq!(call.1, name, "{case}");
    assert_eq!(call.2, args, "{case}");

    let second = client.second(first.clone(), &call);
    mock.push(Behavior::Answer);
    let resp = h.gateway.handle(h.post(&path, second.to_string())).await;
    assert_eq!(resp.status(), 200, "{case}");
    let answer = client.answer_text(&text(resp).await, stream);
    assert!(
        answer.starts_with("Hello from the mock"),
        "{case}: {answer}"
    );

    let received = mock.received();
    assert_eq!(received.len(), 2, "{case}");
    let sent: Value = serde_json::from_slice(&received[0].body).unwrap();
    if account == Protocol::Gemini {
        assert!(received[0].path.contains(served_model(account)), "{case}");
    } else {
        assert_eq!(sent["model"], served_model(account), "{case}");
    }
    let (call_id, result_id) = carried_ids(account, &received[1]);
    assert_eq!(call_id, result_id, "{case}: the result answers the call");
    // A Gemini account gets the call's thought signature back instead of
    // the id the client saw (Gemini answers a call by name).
    if account != Protocol::Gemini {
        assert_eq!(
            call_id, call.0,
            "{case}: the id the client saw is the one carried"
        );
    }

    let records = h.records().await;
    assert_eq!(records.len(), 2, "{case}");
    for r in &records {
        assert_eq!(r.status, 200, "{case}");
        assert_eq!(r.model, client.model(&first), "{case}");
        assert_eq!(
            r.served_model.as_deref(),
            Some(served_model(account)),
            "{case}"
        );
        assert!(r.usage.output_tokens > 0, "{case}: usage recorded");
        assert!(r.cost_micro_usd > 0, "{case}: priced at the served model");
    }
}

macro_rules! directions {
    ($($name:ident: $client:expr, $account:expr;)*) => {$(
        mod $name {
            use super::*;

            #[tokio::test]
            async fn streamed() {
                tool_turn($client, $account, true).await;
            }

            #[tokio::test]
            async fn whole() {
                tool_turn($client, $account, false).await;
            }
        }
    )*};
}

directions! {
    claude_code_on_openai: Client::ClaudeCode, Protocol::Openai;
    claude_code_on_gemini: Client::ClaudeCode, Protocol::Gemini;
    codex_on_claude: Client::Codex, Protocol::Anthropic;
    codex_on_gemini: Client::Codex, Protocol::Gemini;
    gemini_cli_on_claude: Client::GeminiCli, Protocol::Anthropic;
    gemini_cli_on_openai: Client::GeminiCli, Protocol::Openai;
}

#[tokio::test]
async fn without_serves_an_account_of_another_protocol_is_not_used() {
    let mock = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![openai(&mock.url)]).await;
    let (path, body) = Client::ClaudeCode.first(false);
    let resp = h.gateway.handle(h.post(&path, body.to_string())).await;
    assert_eq!(resp.status(), 404);
    let v = json(resp).await;
    assert_eq!(v["type"], "error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("serves") && message.contains("anthropic"),
        "{message}"
    );
    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn a_gemini_429_reaches_claude_code_as_its_own_rate_limit_error() {
    let mock = MockGemini::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::ResourceExhausted {
        retry_delay: "37s".into(),
    }]);
    let h = harness(vec![gemini(&mock.url).serves(&[Protocol::Anthropic])]).await;
    let (path, body) = Client::ClaudeCode.first(true);
    let resp = h.gateway.handle(h.post(&path, body.to_string())).await;
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((30..=37).contains(&retry), "{retry}");
    let v = json(resp).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn an_error_mid_stream_reaches_codex_as_response_failed() {
    let mock = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    mock.push([Behavior::ErrorMidStream]);
    let h = harness(vec![claude(&mock.url).serves(&[Protocol::Openai])]).await;
    let (path, body) = Client::Codex.first(true);
    let resp = h.gateway.handle(h.post(&path, body.to_string())).await;
    assert_eq!(resp.status(), 200);
    let events = sse_data(&text(resp).await);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert!(events.iter().all(|e| e["type"] != "response.completed"));
    let records = h.records().await;
    assert_eq!(records.len(), 1);
    assert_ne!(records[0].status, 200);
}

#[tokio::test]
async fn the_own_protocol_comes_first_and_translation_takes_over_when_it_fails() {
    let own = MockUpstream::start(UPSTREAM_KEY).await.unwrap();
    own.push([
        Behavior::Overloaded,
        Behavior::Overloaded,
        Behavior::Overloaded,
    ]);
    let other = MockOpenAi::start(UPSTREAM_KEY).await.unwrap();
    let h = harness(vec![
        claude(&own.url),
        openai(&other.url)
            .serves(&[Protocol::Anthropic])
            .map("claude-*", "deepseek-chat"),
    ])
    .await;
    let (path, body) = Client::ClaudeCode.first(false);
    let resp = h.gateway.handle(h.post(&path, body.to_string())).await;
    assert_eq!(resp.status(), 200);
    let answer = Client::ClaudeCode.answer_text(&text(resp).await, false);
    assert!(answer.starts_with("Hello from the mock OpenAI"), "{answer}");
    assert_eq!(own.hits(), 1);
    assert_eq!(other.hits(), 1);
    let records = h.records().await;
    assert_eq!(records[0].failed_over.len(), 1);
}
