//! Usage and errors in Anthropic Messages responses.
//!
//! Streams carry usage in `message_start` (input and cache tokens) and in
//! each `message_delta` (cumulative output, and on newer APIs cumulative
//! input and cache counts too); a JSON body carries it in `usage`.

use serde::Deserialize;

use super::EventSink;
use crate::usage::Usage;

#[derive(Debug, Default, Deserialize)]
struct WireCacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

/// `usage` as the Anthropic API writes it.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<WireCacheCreation>,
}

impl WireUsage {
    /// Overwrites the fields this report carries (counts are cumulative).
    fn apply(&self, u: &mut Usage) {
        if let Some(v) = self.input_tokens {
            u.input_tokens = v;
        }
        if let Some(v) = self.output_tokens {
            u.output_tokens = v;
        }
        if let Some(v) = self.cache_read_input_tokens {
            u.cache_read_tokens = v;
        }
        match (&self.cache_creation, self.cache_creation_input_tokens) {
            (Some(split), total) => {
                let m5 = split.ephemeral_5m_input_tokens.unwrap_or(0);
                let h1 = split.ephemeral_1h_input_tokens.unwrap_or(0);
                // If the split does not add up, the rest is 5-minute writes.
                let total = total.unwrap_or(m5 + h1).max(m5 + h1);
                u.cache_write_1h_tokens = h1;
                u.cache_write_5m_tokens = total - h1;
            }
            (None, Some(total)) => {
                u.cache_write_5m_tokens = total;
                u.cache_write_1h_tokens = 0;
            }
            (None, None) => {}
        }
    }
}

#[derive(Deserialize)]
struct UsageHolder {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<UsageHolder>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Debug, Clone, Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// An `error` event seen in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub kind: String,
    pub message: String,
}

/// What an Anthropic stream said about usage and how it ended.
#[derive(Debug, Default)]
pub struct AnthropicStreamUsage {
    pub usage: Usage,
    pub model: Option<String>,
    /// `message_stop` arrived: the usage is final.
    pub completed: bool,
    pub error: Option<StreamError>,
}

impl EventSink for AnthropicStreamUsage {
    fn wants(&self, event: Option<&str>) -> bool {
        matches!(
            event,
            None | Some("message_start" | "message_delta" | "message_stop" | "error")
        )
    }

    fn on_event(&mut self, _event: Option<&str>, data: &[u8]) {
        let Ok(ev) = serde_json::from_slice::<StreamEvent>(data) else {
            return;
        };
        match ev.kind.as_str() {
            "message_start" => {
                if let Some(m) = ev.message {
                    if let Some(u) = m.usage {
                        u.apply(&mut self.usage);
                    }
                    self.model = m.model;
                }
            }
            "message_delta" => {
                if let Some(u) = ev.usage {
                    u.apply(&mut self.usage);
                }
            }
            "message_stop" => self.completed = true,
            "error" => {
                if let Some(e) = ev.error {
                    self.error = Some(StreamError {
                        kind: e.kind,
                        message: e.message,
                    });
                }
            }
            _ => {}
        }
    }
}

/// Usage from a non-streaming JSON answer (`/v1/messages`).
pub fn usage_from_body(body: &[u8]) -> Option<Usage> {
    let holder: UsageHolder = serde_json::from_slice(body).ok()?;
    let mut u = Usage::default();
    holder.usage?.apply(&mut u);
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::SseObserver;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",",
        "\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":40,",
        "\"cache_creation\":{\"ephemeral_5m_input_tokens\":100,\"ephemeral_1h_input_tokens\":200},\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":25}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn stream_usage_with_cache_split() {
        let mut o = SseObserver::new(AnthropicStreamUsage::default());
        for chunk in STREAM.as_bytes().chunks(7) {
            o.feed(chunk);
        }
        let s = o.finish();
        assert!(s.completed);
        assert_eq!(
            s.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 25,
                cache_write_5m_tokens: 100,
                cache_write_1h_tokens: 200,
                cache_read_tokens: 40,
            }
        );
        assert_eq!(s.model.as_deref(), Some("claude-sonnet-4-5"));
    }

    #[test]
    fn error_event_is_seen() {
        let mut o = SseObserver::new(AnthropicStreamUsage::default());
        o.feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        let s = o.finish();
        assert!(!s.completed);
        assert_eq!(s.error.unwrap().kind, "overloaded_error");
    }

    #[test]
    fn body_usage_without_split_is_5m() {
        let u = usage_from_body(br#"{"id":"m","usage":{"input_tokens":5,"output_tokens":7,"cache_creation_input_tokens":9}}"#).unwrap();
        assert_eq!(u.cache_write_5m_tokens, 9);
        assert_eq!(u.output_tokens, 7);
    }
}
