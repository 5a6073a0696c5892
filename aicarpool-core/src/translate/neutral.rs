//! The neutral form every protocol is read into and written from: a
//! [`Conversation`] for requests, an [`Answer`] or a sequence of
//! [`Event`]s for what comes back.
//!
//! Three client protocols and three account protocols make nine pairs;
//! through this form each protocol needs one reader and one writer per
//! direction instead of one translator per pair. The form keeps what all
//! three can say (text, images, tool calls and results with their ids,
//! reasoning, stop reasons, usage); what only one protocol has stays in
//! that protocol's module, which drops, emulates or refuses it.

use serde_json::{Map, Value};

use crate::usage::Usage;

/// A request, read from any client protocol.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    /// The model the client asked for; the account's model map picks the
    /// one sent upstream.
    pub model: String,
    /// System instructions, in order (Anthropic `system` blocks, Responses
    /// `instructions` and system or developer items, Gemini
    /// `systemInstruction` parts).
    pub system: Vec<String>,
    pub turns: Vec<Turn>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)`: at most one tool call per answer.
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub reasoning: Option<Reasoning>,
    /// The answer must be JSON (Gemini `responseMimeType`, OpenAI
    /// `response_format`, Responses `text.format`).
    pub json: Option<JsonOutput>,
    /// The end user, for the upstream's abuse tracking (Anthropic
    /// `metadata.user_id`, OpenAI `user`).
    pub user: Option<String>,
}

impl Conversation {
    /// The name of the tool `call_id` called, from the calls earlier in
    /// the history (Gemini answers a call by name, not by id).
    pub fn tool_name(&self, call_id: &str) -> Option<&str> {
        self.turns
            .iter()
            .flat_map(|t| &t.parts)
            .find_map(|p| match p {
                Part::ToolCall(c) if c.id == call_id => Some(c.name.as_str()),
                _ => None,
            })
    }
}

/// Who speaks a turn. System instructions are not turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the history. Tool results are user parts, as in Anthropic
/// Messages; a protocol with a separate tool role splits them out.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// A piece of a turn or of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    /// Reasoning the model showed. `signature` is the upstream's opaque
    /// proof (Anthropic's `signature`, a Responses item's
    /// `encrypted_content`): only the protocol that made it can check it.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

/// An image in a turn or a tool result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// Base64 data.
    Inline { media_type: String, data: String },
    /// An `http(s)` URL (only some upstreams fetch them).
    Url(String),
}

/// The model calling one of the request's tools.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Kept over turns: the result names the call by it.
    pub id: String,
    pub name: String,
    /// The arguments: a JSON object, or (arguments that were not valid
    /// JSON) the text as the model wrote it.
    pub arguments: Value,
}

impl ToolCall {
    /// The arguments as JSON text (what OpenAI carries).
    pub fn arguments_json(&self) -> String {
        match &self.arguments {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        }
    }

    /// The arguments as an object (what Anthropic and Gemini carry):
    /// anything else is wrapped as `{"input": …}`.
    pub fn arguments_object(&self) -> Map<String, Value> {
        match &self.arguments {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            Value::String(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(m)) => m,
                _ => Map::from_iter([("input".to_owned(), Value::String(raw.clone()))]),
            },
            other => Map::from_iter([("input".to_owned(), other.clone())]),
        }
    }

    /// Arguments read from JSON text: parsed when they parse.
    pub fn parse_arguments(raw: &str) -> Value {
        if raw.trim().is_empty() {
            return Value::Object(Map::new());
        }
        serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
    }
}

/// What a tool returned, sent back in a user turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The [`ToolCall::id`] answered.
    pub call_id: String,
    /// The tool's name, when the protocol says it (Gemini); otherwise
    /// [`Conversation::tool_name`] finds it.
    pub name: Option<String>,
    /// Text and images.
    pub content: Vec<Part>,
    pub is_error: bool,
}

impl ToolResult {
    /// The text parts joined: what a protocol with text-only results gets.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.content {
            if let Part::Text(t) = p {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(t);
            }
        }
        out
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema object for the arguments.
    pub parameters: Value,
}

/// Which tools the model may or must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// At least one tool, any of them.
    Any,
    /// This tool.
    Tool(String),
}

/// The reasoning the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasoning {
    /// A token budget, when the client gave one.
    pub budget_tokens: Option<u64>,
    /// An effort level, when the client gave one.
    pub effort: Option<Effort>,
    /// The client wants the reasoning text in the answer.
    pub show: bool,
}

/// How hard the model should think.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
}

impl Effort {
    /// Reads `minimal`, `low`, `medium`, `high` (any case); `xhigh` and
    /// `max` are `High`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "minimal" | "none" => Some(Effort::Minimal),
            "low" => Some(Effort::Low),
            "medium" => Some(Effort::Medium),
            "high" | "xhigh" | "max" => Some(Effort::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
        }
    }

    /// The token budget an effort stands for, for upstreams that take a
    /// budget.
    pub fn budget_tokens(self) -> u64 {
        match self {
            Effort::Minimal => 1024,
            Effort::Low => 2048,
            Effort::Medium => 8192,
            Effort::High => 24576,
        }
    }

    /// The effort a token budget stands for, for upstreams that take an
    /// effort.
    pub fn for_budget(budget: u64) -> Self {
        match budget {
            0..=1024 => Effort::Minimal,
            1025..=4096 => Effort::Low,
            4097..=16384 => Effort::Medium,
            _ => Effort::High,
        }
    }
}

impl Reasoning {
    /// The budget to ask a budget-taking upstream for.
    pub fn budget(&self) -> u64 {
        self.budget_tokens
            .or_else(|| self.effort.map(Effort::budget_tokens))
            .unwrap_or(Effort::Medium.budget_tokens())
    }

    /// The effort to ask an effort-taking upstream for.
    pub fn effort_level(&self) -> Effort {
        self.effort
            .or_else(|| self.budget_tokens.map(Effort::for_budget))
            .unwrap_or(Effort::Medium)
    }
}

/// The answer must be JSON.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonOutput {
    /// The JSON Schema it must match, when the client gave one.
    pub schema: Option<Value>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopReason {
    #[default]
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    /// Refused or filtered by the upstream's safety system.
    Refusal,
}

/// A whole (not streamed) answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// The upstream's id for the answer, when it gave one.
    pub id: Option<String>,
    /// Text, thinking and tool calls, in order.
    pub parts: Vec<Part>,
    pub stop: StopReason,
    pub usage: Usage,
}

/// One step of a streamed answer.
///
/// A reader emits `Start` first, then blocks: each `BlockStart` is
/// followed by its `Delta`s (and a thinking block's `Signature`) and a
/// `BlockEnd` before the next block opens, then `Finish` once. `Error`
/// may come at any point and ends the stream. [`Blocks`] keeps a reader
/// to this order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The answer began. `usage` is what is known so far (Anthropic says
    /// the input tokens here).
    Start {
        id: Option<String>,
        usage: Usage,
    },
    BlockStart(Block),
    /// More of the open block: text, thinking text, or a fragment of a
    /// tool call's arguments JSON.
    Delta(String),
    /// The open thinking block's signature.
    Signature(String),
    BlockEnd,
    /// The answer is complete. `usage` is the final total.
    Finish {
        stop: StopReason,
        usage: Usage,
    },
    /// The upstream reported an error inside the stream.
    Error {
        status: u16,
        message: String,
    },
}

/// The kind of a content block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Text,
    Thinking,
    ToolCall { id: String, name: String },
}

/// Keeps a reader's events in [`Event`]'s order: opens the block a delta
/// needs and closes the one before.
#[derive(Debug, Default)]
pub struct Blocks {
    open: Option<Block>,
    started: bool,
    finished: bool,
}

impl Blocks {
    /// `Start`, once.
    pub fn start(&mut self, id: Option<String>, usage: Usage, out: &mut Vec<Event>) {
        if !self.started {
            self.started = true;
            out.push(Event::Start { id, usage });
        }
    }

    /// Text, in the open text block or a new one.
    pub fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        self.delta(Block::Text, text, out);
    }

    /// Thinking text, in the open thinking block or a new one.
    pub fn thinking(&mut self, text: &str, out: &mut Vec<Event>) {
        self.delta(Block::Thinking, text, out);
    }

    /// A thinking block's signature (opening the block if none is open).
    pub fn signature(&mut self, signature: &str, out: &mut Vec<Event>) {
        self.open_as(Block::Thinking, out);
        out.push(Event::Signature(signature.to_owned()));
    }

    /// A new tool call; its arguments follow with [`Blocks::arguments`].
    pub fn tool_call(&mut self, id: &str, name: &str, out: &mut Vec<Event>) {
        self.close(out);
        self.start(None, Usage::default(), out);
        let block = Block::ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        out.push(Event::BlockStart(block.clone()));
        self.open = Some(block);
    }

    /// A fragment of the open tool call's arguments (dropped when no tool
    /// call is open).
    pub fn arguments(&mut self, fragment: &str, out: &mut Vec<Event>) {
        if matches!(self.open, Some(Block::ToolCall { .. })) && !fragment.is_empty() {
            out.push(Event::Delta(fragment.to_owned()));
        }
    }

    /// Closes the open block, if any.
    pub fn close(&mut self, out: &mut Vec<Event>) {
        if self.open.take().is_some() {
            out.push(Event::BlockEnd);
        }
    }

    /// Closes the open block and finishes the answer, once.
    pub fn finish(&mut self, stop: StopReason, usage: Usage, out: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        self.start(None, Usage::default(), out);
        self.close(out);
        self.finished = true;
        out.push(Event::Finish { stop, usage });
    }

    /// An upstream error: ends the stream.
    pub fn error(&mut self, status: u16, message: &str, out: &mut Vec<Event>) {
        if self.finished {
            return;
        }
        self.finished = true;
        out.push(Event::Error {
            status,
            message: message.to_owned(),
        });
    }

    /// Whether `Finish` or `Error` went out.
    pub fn finished(&self) -> bool {
        self.finished
    }

    fn delta(&mut self, kind: Block, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        self.open_as(kind, out);
        out.push(Event::Delta(text.to_owned()));
    }

    fn open_as(&mut self, kind: Block, out: &mut Vec<Event>) {
        self.start(None, Usage::default(), out);
        if self.open.as_ref() != Some(&kind) {
            self.close(out);
            out.push(Event::BlockStart(kind.clone()));
            self.open = Some(kind);
        }
    }
}

/// Folds a stream's events into the whole answer they make (for tests,
/// and for a whole answer a client asked for but an upstream streamed).
pub fn fold(events: impl IntoIterator<Item = Event>) -> Result<Answer, (u16, String)> {
    let mut answer = Answer::default();
    let mut open: Option<(Block, String, Option<String>)> = None;
    let flush = |open: &mut Option<(Block, String, Option<String>)>, parts: &mut Vec<Part>| {
        if let Some((block, text, signature)) = open.take() {
            parts.push(match block {
                Block::Text => Part::Text(text),
                Block::Thinking => Part::Thinking { text, signature },
                Block::ToolCall { id, name } => Part::ToolCall(ToolCall {
                    id,
                    name,
                    arguments: ToolCall::parse_arguments(&text),
                }),
            });
        }
    };
    for event in events {
        match event {
            Event::Start { id, usage } => {
                answer.id = id;
                answer.usage = usage;
            }
            Event::BlockStart(block) => {
                flush(&mut open, &mut answer.parts);
                open = Some((block, String::new(), None));
            }
            Event::Delta(d) => {
                if let Some((_, text, _)) = open.as_mut() {
                    text.push_str(&d);
                }
            }
            Event::Signature(s) => {
                if let Some((_, _, signature)) = open.as_mut() {
                    *signature = Some(s);
                }
            }
            Event::BlockEnd => flush(&mut open, &mut answer.parts),
            Event::Finish { stop, usage } => {
                flush(&mut open, &mut answer.parts);
                answer.stop = stop;
                answer.usage = usage;
            }
            Event::Error { status, message } => return Err((status, message)),
        }
    }
    flush(&mut open, &mut answer.parts);
    Ok(answer)
}

/// The events that stream `answer` (the inverse of [`fold`]).
pub fn unfold(answer: &Answer) -> Vec<Event> {
    let mut out = Vec::new();
    let mut blocks = Blocks::default();
    blocks.start(answer.id.clone(), Usage::default(), &mut out);
    for part in &answer.parts {
        match part {
            Part::Text(t) => {
                blocks.close(&mut out);
                blocks.text(t, &mut out);
            }
            Part::Thinking { text, signature } => {
                blocks.close(&mut out);
                blocks.thinking(text, &mut out);
                if let Some(s) = signature {
                    blocks.signature(s, &mut out);
                }
            }
            Part::ToolCall(c) => {
                blocks.tool_call(&c.id, &c.name, &mut out);
                blocks.arguments(&c.arguments_json(), &mut out);
            }
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    blocks.finish(answer.stop, answer.usage, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_open_and_close_in_order() {
        let mut out = Vec::new();
        let mut b = Blocks::default();
        b.text("Hel", &mut out);
        b.text("lo", &mut out);
        b.tool_call("t1", "Read", &mut out);
        b.arguments("{\"path\":", &mut out);
        b.arguments("\"a\"}", &mut out);
        b.finish(StopReason::ToolUse, Usage::default(), &mut out);
        b.finish(StopReason::EndTurn, Usage::default(), &mut out);
        assert_eq!(
            out,
            vec![
                Event::Start {
                    id: None,
                    usage: Usage::default()
                },
                Event::BlockStart(Block::Text),
                Event::Delta("Hel".into()),
                Event::Delta("lo".into()),
                Event::BlockEnd,
                Event::BlockStart(Block::ToolCall {
                    id: "t1".into(),
                    name: "Read".into()
                }),
                Event::Delta("{\"path\":".into()),
                Event::Delta("\"a\"}".into()),
                Event::BlockEnd,
                Event::Finish {
                    stop: StopReason::ToolUse,
                    usage: Usage::default()
                },
            ]
        );
    }

    #[test]
    fn fold_and_unfold_are_inverse() {
        let answer = Answer {
            id: Some("msg_1".into()),
            parts: vec![
                Part::Thinking {
                    text: "hmm".into(),
                    signature: Some("sig".into()),
                },
                Part::Text("I'll read it.".into()),
                Part::ToolCall(ToolCall {
                    id: "t1".into(),
                    name: "Read".into(),
                    arguments: json!({"path": "a"}),
                }),
                Part::ToolCall(ToolCall {
                    id: "t2".into(),
                    name: "Read".into(),
                    arguments: json!({"path": "b"}),
                }),
            ],
            stop: StopReason::ToolUse,
            usage: Usage {
                input_tokens: 5,
                output_tokens: 7,
                ..Usage::default()
            },
        };
        assert_eq!(fold(unfold(&answer)), Ok(answer));
    }

    #[test]
    fn arguments_survive_either_shape() {
        let call = ToolCall {
            id: "c".into(),
            name: "f".into(),
            arguments: ToolCall::parse_arguments("{\"a\":1}"),
        };
        assert_eq!(call.arguments_json(), "{\"a\":1}");
        let broken = ToolCall {
            arguments: ToolCall::parse_arguments("{\"a\":"),
            ..call.clone()
        };
        assert_eq!(broken.arguments_json(), "{\"a\":");
        assert_eq!(broken.arguments_object()["input"], "{\"a\":");
        assert!(ToolCall::parse_arguments("")
            .as_object()
            .unwrap()
            .is_empty());
    }

    #[test]
    fn effort_and_budget_map_both_ways() {
        for e in [Effort::Minimal, Effort::Low, Effort::Medium, Effort::High] {
            assert_eq!(Effort::for_budget(e.budget_tokens()), e);
            assert_eq!(Effort::parse(e.as_str()), Some(e));
        }
        let r = Reasoning {
            budget_tokens: Some(30_000),
            ..Reasoning::default()
        };
        assert_eq!(r.effort_level(), Effort::High);
        assert_eq!(r.budget(), 30_000);
    }
}
