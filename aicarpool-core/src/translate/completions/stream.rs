//! Reading a `chat.completion.chunk` stream into neutral events.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{read_usage, stop_reason};
use crate::stream::frames::SseEvent;
use crate::stream::openai::{ChatStreamUsage, OpenAiError};
use crate::stream::tap::{StreamSummary, Summarize};
use crate::stream::EventSink;
use crate::translate::neutral::{Blocks, Event, StopReason};
use crate::translate::tap::ReadUpstream;
use crate::usage::Usage;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Gathered until the answer finishes.
    #[default]
    Waiting,
    /// Streaming as its fragments come.
    Live,
    Written,
}

/// A tool call gathered from its fragments.
#[derive(Debug, Default)]
struct PendingCall {
    id: Option<String>,
    name: String,
    arguments: String,
    state: CallState,
}

/// Reads an OpenAI-compatible chat stream. Owns the pass-through usage
/// sink, so [`ReadUpstream::summary`] is the same accounting a chat
/// stream passed through gets.
#[derive(Debug, Default)]
pub struct CompletionsReader {
    sink: ChatStreamUsage,
    blocks: Blocks,
    /// Tool calls by their `index`.
    calls: BTreeMap<u64, PendingCall>,
    live: Option<u64>,
    /// Only the first call streams live: the others may interleave.
    streamed_one: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl CompletionsReader {
    pub fn new() -> Self {
        Self::default()
    }

    fn chunk(&mut self, chunk: &Value, out: &mut Vec<Event>) {
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let parsed: OpenAiError = serde_json::from_value(error.clone()).unwrap_or_default();
            let message = match (parsed.message.is_empty(), error.as_str()) {
                (false, _) => parsed.message.clone(),
                (true, Some(s)) => s.to_owned(),
                (true, None) => error.to_string(),
            };
            self.blocks.error(parsed.http_status(), &message, out);
            return;
        }
        let id = chunk.get("id").and_then(Value::as_str).map(str::to_owned);
        self.blocks.start(id, Usage::default(), out);
        let choice = chunk.pointer("/choices/0");
        if let Some(choice) = choice {
            if let Some(delta) = choice.get("delta").filter(|d| d.is_object()) {
                for key in ["reasoning_content", "reasoning"] {
                    if let Some(t) = delta.get(key).and_then(Value::as_str) {
                        self.prose(t, true, out);
                    }
                }
                for key in ["content", "refusal"] {
                    if let Some(t) = delta.get(key).and_then(Value::as_str) {
                        self.prose(t, false, out);
                    }
                }
                if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                    for call in calls {
                        self.tool_fragment(call, out);
                    }
                }
            }
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.stop = Some(stop_reason(f));
            }
        }
        // Kimi puts the usage in the choice.
        let usage = chunk.get("usage").filter(|u| u.is_object()).or_else(|| {
            choice
                .and_then(|c| c.get("usage"))
                .filter(|u| u.is_object())
        });
        if let Some(u) = usage {
            self.usage = Some(read_usage(u));
            let no_choices = chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_none_or(|c| c.is_empty());
            // Usage in every chunk (continuous usage stats) is not the end.
            if self.stop.is_some() || no_choices {
                self.finish(out);
            }
        }
    }

    /// Text or reasoning text; closes a call streaming live.
    fn prose(&mut self, text: &str, thinking: bool, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        if let Some(i) = self.live.take() {
            if let Some(c) = self.calls.get_mut(&i) {
                c.state = CallState::Written;
            }
        }
        if thinking {
            self.blocks.thinking(text, out);
        } else {
            self.blocks.text(text, out);
        }
    }

    fn tool_fragment(&mut self, call: &Value, out: &mut Vec<Event>) {
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let index = match call.get("index").and_then(Value::as_u64) {
            Some(i) => i,
            // Without an index: a new id is a new call, else the last call.
            None => {
                let known = id.and_then(|id| {
                    self.calls
                        .iter()
                        .find(|(_, c)| c.id.as_deref() == Some(id))
                        .map(|(i, _)| *i)
                });
                let last = self.calls.keys().next_back().copied();
                match (known, id, last) {
                    (Some(i), _, _) => i,
                    (None, Some(_), Some(l)) => l + 1,
                    (None, _, l) => l.unwrap_or(0),
                }
            }
        };
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let fragment = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let entry = self.calls.entry(index).or_default();
        if entry.id.is_none() {
            entry.id = id.map(str::to_owned);
        }
        if entry.name.is_empty() {
            if let Some(n) = name {
                entry.name = n.to_owned();
            }
        }
        match entry.state {
            CallState::Live => self.blocks.arguments(fragment, out),
            // A fragment after its call was closed by text: nowhere to go.
            CallState::Written => {}
            CallState::Waiting => {
                entry.arguments.push_str(fragment);
                if !self.streamed_one && self.live.is_none() && !entry.name.is_empty() {
                    let id = entry.id.clone().unwrap_or_else(|| format!("call_{index}"));
                    self.blocks.tool_call(&id, &entry.name, out);
                    self.blocks
                        .arguments(&std::mem::take(&mut entry.arguments), out);
                    entry.state = CallState::Live;
                    self.live = Some(index);
                    self.streamed_one = true;
                }
            }
        }
    }

    /// Writes the gathered calls, then `Finish`, once.
    fn finish(&mut self, out: &mut Vec<Event>) {
        if self.blocks.finished() {
            return;
        }
        self.blocks.start(None, Usage::default(), out);
        self.blocks.close(out);
        self.live = None;
        for (index, call) in self.calls.iter_mut() {
            if call.state != CallState::Waiting {
                continue;
            }
            call.state = CallState::Written;
            if call.name.is_empty() && call.arguments.is_empty() {
                continue;
            }
            let id = call.id.clone().unwrap_or_else(|| format!("call_{index}"));
            self.blocks.tool_call(&id, &call.name, out);
            self.blocks.arguments(&call.arguments, out);
        }
        let mut stop = self.stop.unwrap_or(StopReason::EndTurn);
        // Some providers say `stop` even when the answer is tool calls.
        if stop == StopReason::EndTurn && !self.calls.is_empty() {
            stop = StopReason::ToolUse;
        }
        let usage = self
            .usage
            .or_else(|| self.sink.usage.map(|u| u.to_usage()))
            .unwrap_or_default();
        self.blocks.finish(stop, usage, out);
    }
}

impl ReadUpstream for CompletionsReader {
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
        let name = event.name.as_deref();
        let Some(data) = event.data.as_deref() else {
            return;
        };
        if self.sink.wants(name) {
            self.sink.on_event(name, data);
        }
        let data = data.trim_ascii();
        if data.is_empty() || self.blocks.finished() {
            return;
        }
        if data == b"[DONE]" {
            self.finish(out);
            return;
        }
        if let Ok(chunk) = serde_json::from_slice::<Value>(data) {
            self.chunk(&chunk, out);
        }
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        if self.blocks.finished() {
            return;
        }
        if self.stop.is_none() && !self.sink.done {
            self.blocks.error(
                502,
                "the upstream ended the stream without a finish_reason",
                out,
            );
            return;
        }
        self.finish(out);
    }

    fn summary(self) -> StreamSummary {
        self.sink.summary()
    }
}
