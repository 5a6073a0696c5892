//! Watching Server-Sent Events go by.
//!
//! [`SseObserver`] is fed the response bytes exactly as they are forwarded
//! to the client; it never changes or holds them. It splits lines across
//! chunk boundaries, and keeps the `data:` of only the events its protocol
//! cares about, so large content deltas cost a line scan and nothing more.

pub mod anthropic;
pub mod frames;
pub mod gemini;
pub mod openai;
pub mod tap;

/// Longest event data kept for inspection; longer ones are skipped.
const MAX_EVENT_DATA: usize = 1 << 20;

/// A protocol's view of the events in a stream.
pub trait EventSink {
    /// Whether the data of events named `event` should be collected. The
    /// name is `None` for events without an `event:` line.
    fn wants(&self, event: Option<&str>) -> bool;

    /// One complete event whose data was wanted.
    fn on_event(&mut self, event: Option<&str>, data: &[u8]);
}

/// Incremental SSE line reader feeding an [`EventSink`].
#[derive(Debug)]
pub struct SseObserver<S> {
    sink: S,
    line: Vec<u8>,
    event: Option<String>,
    data: Vec<u8>,
    collecting: bool,
    skipped_oversized: bool,
}

impl<S: EventSink> SseObserver<S> {
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            line: Vec::new(),
            event: None,
            data: Vec::new(),
            collecting: true,
            skipped_oversized: false,
        }
    }

    /// Observes the next chunk of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(pos);
            chunk = &rest[1..];
            if self.line.is_empty() {
                self.on_line(head);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                self.on_line(&line);
            }
        }
        if !chunk.is_empty() {
            // Only keep a partial line if it may matter: a field name, or
            // data we are collecting.
            if self.line.len() + chunk.len() <= MAX_EVENT_DATA {
                self.line.extend_from_slice(chunk);
            }
        }
    }

    /// The sink, once the stream is over. A final event without its blank
    /// line is still delivered.
    pub fn finish(mut self) -> S {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.on_line(&line);
        }
        self.dispatch();
        self.sink
    }

    pub fn sink(&self) -> &S {
        &self.sink
    }

    fn on_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if let Some(value) = field(line, b"event") {
            let name = String::from_utf8_lossy(value).into_owned();
            self.collecting = self.sink.wants(Some(&name));
            self.event = Some(name);
        } else if let Some(value) = field(line, b"data") {
            if self.event.is_none() {
                self.collecting = self.sink.wants(None);
            }
            if self.collecting {
                if self.data.len() + value.len() + 1 > MAX_EVENT_DATA {
                    self.skipped_oversized = true;
                    return;
                }
                if !self.data.is_empty() {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
            }
        }
    }

    fn dispatch(&mut self) {
        if self.collecting && !self.data.is_empty() && !self.skipped_oversized {
            self.sink.on_event(self.event.as_deref(), &self.data);
        }
        self.event = None;
        self.data.clear();
        self.collecting = true;
        self.skipped_oversized = false;
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

    #[derive(Default)]
    struct Collect(Vec<(Option<String>, String)>);

    impl EventSink for Collect {
        fn wants(&self, event: Option<&str>) -> bool {
            event != Some("ping")
        }
        fn on_event(&mut self, event: Option<&str>, data: &[u8]) {
            self.0.push((
                event.map(str::to_owned),
                String::from_utf8_lossy(data).into(),
            ));
        }
    }

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream =
            b"event: a\ndata: {\"x\":1}\n\nevent: ping\ndata: {}\n\r\ndata: one\ndata: two\n\n";
        for cut in 0..stream.len() {
            let mut o = SseObserver::new(Collect::default());
            o.feed(&stream[..cut]);
            o.feed(&stream[cut..]);
            let got = o.finish().0;
            assert_eq!(
                got,
                vec![
                    (Some("a".into()), "{\"x\":1}".into()),
                    (None, "one\ntwo".into())
                ],
                "cut at {cut}"
            );
        }
    }
}
