//! Taps: what stands between an upstream stream and the client.
//!
//! The relay pumps every upstream chunk through a [`StreamTap`]. A
//! [`Passthrough`] tap forwards each chunk unchanged while an
//! [`EventSink`] watches for usage; other taps re-frame the stream (to
//! drop an event the client did not ask for, or to translate it into the
//! client's protocol). When the stream is over the tap says what it saw,
//! as one [`StreamSummary`] whatever the protocol, so settlement is shared.

use bytes::Bytes;
use serde_json::json;

use super::anthropic::AnthropicStreamUsage;
use super::{EventSink, SseObserver};
use crate::usage::Usage;

/// An error the upstream reported inside a stream, as an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamFailure {
    pub status: u16,
    pub message: String,
}

/// What a stream said about usage and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub usage: Usage,
    /// The final usage was seen: the record is exact.
    pub completed: bool,
    pub error: Option<StreamFailure>,
}

/// A sink that can sum up what it saw.
pub trait Summarize {
    fn summary(self) -> StreamSummary;
}

/// Stands between the upstream's bytes and the client's.
pub trait StreamTap: Send {
    /// One upstream chunk in; the bytes the client gets for it (often the
    /// same bytes, possibly none).
    fn chunk(&mut self, chunk: Bytes) -> Bytes;

    /// The upstream stream is over; `broken` says why when it ended early.
    /// Returns the last bytes for the client (closing frames, or the
    /// protocol's error event when broken) and what was seen.
    fn end(self: Box<Self>, broken: Option<&str>) -> (Bytes, StreamSummary);
}

/// The protocol a client reads a stream in, for the event that tells it
/// the stream broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStream {
    Anthropic,
    Gemini,
    OpenAiChat,
    OpenAiResponses,
}

impl ClientStream {
    /// What keeps a client's stream alive while nothing else is sent:
    /// Anthropic's own `ping` event, an SSE comment for the others (their
    /// clients skip comments).
    pub fn ping(self) -> Bytes {
        match self {
            ClientStream::Anthropic => {
                Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
            }
            ClientStream::Gemini | ClientStream::OpenAiChat | ClientStream::OpenAiResponses => {
                Bytes::from_static(b": ping\n\n")
            }
        }
    }

    /// The event that ends a client's stream when the upstream broke.
    pub fn error_event(self, message: &str) -> Bytes {
        let text = match self {
            ClientStream::Anthropic => {
                let data =
                    json!({"type": "error", "error": {"type": "api_error", "message": message}});
                format!("event: error\ndata: {data}\n\n")
            }
            ClientStream::Gemini => {
                let data =
                    json!({"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}});
                format!("data: {data}\r\n\r\n")
            }
            ClientStream::OpenAiChat => {
                let data = json!({"error": {"message": message, "type": "api_error", "code": 502}});
                format!("data: {data}\n\n")
            }
            ClientStream::OpenAiResponses => {
                let data = json!({"type": "response.failed", "response": {
                    "object": "response", "status": "failed",
                    "error": {"code": "server_error", "message": message},
                }});
                format!("event: response.failed\ndata: {data}\n\n")
            }
        };
        Bytes::from(text)
    }
}

/// Forwards every byte unchanged while `S` watches the events go by.
#[derive(Debug)]
pub struct Passthrough<S> {
    observer: SseObserver<S>,
    client: ClientStream,
}

impl<S: EventSink> Passthrough<S> {
    pub fn new(sink: S, client: ClientStream) -> Self {
        Self {
            observer: SseObserver::new(sink),
            client,
        }
    }
}

impl<S: EventSink + Summarize + Send> StreamTap for Passthrough<S> {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        self.observer.feed(&chunk);
        chunk
    }

    fn end(self: Box<Self>, broken: Option<&str>) -> (Bytes, StreamSummary) {
        let tail = broken.map_or_else(Bytes::new, |m| self.client.error_event(m));
        (tail, self.observer.finish().summary())
    }
}

/// The status an Anthropic `error` event stands for.
pub fn anthropic_error_status(kind: &str) -> u16 {
    match kind {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "invalid_request_error" => 400,
        "api_error" => 500,
        _ => 502,
    }
}

impl Summarize for AnthropicStreamUsage {
    fn summary(self) -> StreamSummary {
        StreamSummary {
            usage: self.usage,
            completed: self.completed,
            error: self.error.map(|e| StreamFailure {
                status: anthropic_error_status(&e.kind),
                message: e.message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_forwards_the_same_bytes_and_reports_usage() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let mut tap: Box<dyn StreamTap> = Box::new(Passthrough::new(
            AnthropicStreamUsage::default(),
            ClientStream::Anthropic,
        ));
        let mut out = Vec::new();
        for c in stream.as_bytes().chunks(5) {
            out.extend_from_slice(&tap.chunk(Bytes::copy_from_slice(c)));
        }
        let (tail, seen) = tap.end(None);
        assert!(tail.is_empty());
        assert_eq!(out, stream.as_bytes());
        assert!(seen.completed);
        assert_eq!(seen.usage.input_tokens, 3);
        assert_eq!(seen.usage.output_tokens, 9);
    }

    #[test]
    fn a_broken_stream_ends_with_the_clients_error_event() {
        let tap: Box<dyn StreamTap> = Box::new(Passthrough::new(
            AnthropicStreamUsage::default(),
            ClientStream::Anthropic,
        ));
        let (tail, seen) = tap.end(Some("gone"));
        assert!(!seen.completed);
        assert!(tail.starts_with(b"event: error\n"));
        for client in [
            ClientStream::Gemini,
            ClientStream::OpenAiChat,
            ClientStream::OpenAiResponses,
        ] {
            let e = client.error_event("gone");
            let text = std::str::from_utf8(&e).unwrap();
            let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            assert!(v.to_string().contains("gone"), "{client:?}");
        }
    }
}
