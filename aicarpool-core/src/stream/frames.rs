//! Whole SSE events, for taps that rewrite a stream.
//!
//! [`SseObserver`](super::SseObserver) only watches; a tap that drops or
//! translates events needs each event complete, with its raw bytes to
//! forward as they were. [`SseFrames`] cuts a byte stream into such
//! events across chunk boundaries.

use bytes::Bytes;

/// Largest event held whole; a longer one is passed on raw, unparsed.
const MAX_EVENT_BYTES: usize = 16 << 20;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, if the event has one.
    pub name: Option<String>,
    /// The `data:` lines joined by `\n`; `None` for an event too large to
    /// parse (its bytes are in `raw` all the same).
    pub data: Option<Vec<u8>>,
    /// The event's bytes exactly as received, blank line included.
    pub raw: Bytes,
}

impl SseEvent {
    /// The data as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        self.data
            .as_deref()
            .and_then(|d| std::str::from_utf8(d).ok())
    }
}

/// Cuts a byte stream into whole events.
#[derive(Debug, Default)]
pub struct SseFrames {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// Raw bytes of the event so far.
    raw: Vec<u8>,
    name: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    /// The event outgrew the bound: its lines go out raw as they come.
    oversized: bool,
}

impl SseFrames {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next chunk; returns the events it completed.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(pos + 1);
            chunk = rest;
            self.line.extend_from_slice(head);
            let line = std::mem::take(&mut self.line);
            self.on_line(line, &mut out);
        }
        self.line.extend_from_slice(chunk);
        if self.line.len() + self.raw.len() > MAX_EVENT_BYTES {
            self.overflow(&mut out);
        }
        out
    }

    /// The stream is over: an event without its blank line still counts.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            let mut out = Vec::new();
            self.on_line(line, &mut out);
            if let Some(e) = out.pop() {
                return Some(e);
            }
        }
        if self.raw.is_empty() {
            return None;
        }
        Some(self.take_event())
    }

    fn on_line(&mut self, line: Vec<u8>, out: &mut Vec<SseEvent>) {
        let content = line.strip_suffix(b"\n").unwrap_or(&line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let blank = content.is_empty();
        if self.oversized {
            out.push(SseEvent {
                name: None,
                data: None,
                raw: Bytes::from(line),
            });
            if blank {
                self.oversized = false;
            }
            return;
        }
        if !blank {
            if let Some(v) = field(content, b"event") {
                self.name = Some(String::from_utf8_lossy(v).into_owned());
            } else if let Some(v) = field(content, b"data") {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(v);
                self.has_data = true;
            }
        }
        self.raw.extend_from_slice(&line);
        if blank {
            out.push(self.take_event());
        } else if self.raw.len() > MAX_EVENT_BYTES {
            self.overflow(out);
        }
    }

    fn overflow(&mut self, out: &mut Vec<SseEvent>) {
        let mut raw = std::mem::take(&mut self.raw);
        raw.append(&mut self.line);
        self.name = None;
        self.data.clear();
        self.has_data = false;
        self.oversized = true;
        out.push(SseEvent {
            name: None,
            data: None,
            raw: Bytes::from(raw),
        });
    }

    fn take_event(&mut self) -> SseEvent {
        let event = SseEvent {
            name: self.name.take(),
            data: self.has_data.then(|| std::mem::take(&mut self.data)),
            raw: Bytes::from(std::mem::take(&mut self.raw)),
        };
        self.data.clear();
        self.has_data = false;
        event
    }
}

/// The value of `name: value` (one optional space after the colon).
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_whole_wherever_the_stream_is_cut() {
        let stream = b"event: a\ndata: {\"x\":1}\n\ndata: one\r\ndata: two\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut f = SseFrames::new();
            let mut got = f.push(&stream[..cut]);
            got.extend(f.push(&stream[cut..]));
            assert!(f.finish().is_none(), "cut {cut}");
            assert_eq!(got.len(), 3, "cut {cut}");
            assert_eq!(got[0].name.as_deref(), Some("a"));
            assert_eq!(got[0].text(), Some("{\"x\":1}"));
            assert_eq!(got[1].text(), Some("one\ntwo"));
            assert_eq!(got[2].text(), Some("[DONE]"));
            let raw: Vec<u8> = got.iter().flat_map(|e| e.raw.to_vec()).collect();
            assert_eq!(raw, stream, "cut {cut}");
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_delivered() {
        let mut f = SseFrames::new();
        assert!(f.push(b"data: {\"a\":1}").is_empty());
        let e = f.finish().unwrap();
        assert_eq!(e.text(), Some("{\"a\":1}"));
        assert_eq!(&e.raw[..], b"data: {\"a\":1}");
    }

    #[test]
    fn an_oversized_event_passes_raw() {
        let mut f = SseFrames::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 10];
        let mut got = f.push(b"data: ");
        got.extend(f.push(&big));
        got.extend(f.push(b"\n\ndata: small\n\n"));
        let raw: usize = got.iter().map(|e| e.raw.len()).sum();
        assert_eq!(raw, 6 + big.len() + 2 + 13);
        assert!(got.iter().any(|e| e.data.is_none()));
        assert_eq!(got.last().unwrap().text(), Some("small"));
    }
}
