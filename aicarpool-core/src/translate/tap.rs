//! The stream tap that translates an upstream's stream into the client's
//! protocol event by event: an upstream reader turns each SSE event into
//! neutral [`Event`]s, a client writer turns those into the client's
//! bytes. Nothing is buffered beyond one SSE event, so the client's first
//! byte goes out with the upstream's first token.

use bytes::Bytes;

use super::neutral::{Block, Event, StopReason};
use crate::stream::frames::{SseEvent, SseFrames};
use crate::stream::tap::{StreamSummary, StreamTap};

/// Reads one upstream protocol's stream.
pub trait ReadUpstream: Send {
    /// One SSE event of the upstream's stream, as neutral events.
    fn event(&mut self, event: &SseEvent, out: &mut Vec<Event>);

    /// The upstream's stream is over: events still owed (a `Finish` the
    /// upstream implied but never sent).
    fn end(&mut self, out: &mut Vec<Event>);

    /// The usage seen and how the stream ended, for settlement (the same
    /// accounting a pass-through stream of this protocol gets).
    fn summary(self) -> StreamSummary;
}

/// Writes one client protocol's stream.
pub trait WriteClient: Send {
    /// One neutral event, as the client's bytes.
    fn event(&mut self, event: &Event, out: &mut Vec<u8>);

    /// The upstream's stream is over and nothing broke: closing frames
    /// not written yet (a stream that ended without `Finish` still ends
    /// well-formed).
    fn end(&mut self, out: &mut Vec<u8>);

    /// The upstream broke off: the client's own error event.
    fn broken(&mut self, status: u16, message: &str, out: &mut Vec<u8>);
}

/// Changes events on their way from reader to writer (see
/// [`JsonFromTool`]).
pub trait Adapt: Send {
    fn adapt(&mut self, events: &mut Vec<Event>);
}

/// No change.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unchanged;

impl Adapt for Unchanged {
    fn adapt(&mut self, _events: &mut Vec<Event>) {}
}

/// A JSON answer an upstream could only give as a forced tool call (see
/// [`super::neutral::JsonOutput`]): the call's arguments become the
/// answer's text, and the stop is an end of turn.
#[derive(Debug, Clone)]
pub struct JsonFromTool {
    tool: String,
}

impl JsonFromTool {
    pub fn new(tool: &str) -> Self {
        Self {
            tool: tool.to_owned(),
        }
    }
}

impl Adapt for JsonFromTool {
    fn adapt(&mut self, events: &mut Vec<Event>) {
        for e in events.iter_mut() {
            match e {
                Event::BlockStart(Block::ToolCall { name, .. }) if *name == self.tool => {
                    *e = Event::BlockStart(Block::Text);
                }
                Event::Finish { stop, .. } if *stop == StopReason::ToolUse => {
                    *stop = StopReason::EndTurn;
                }
                _ => {}
            }
        }
    }
}

/// Translates a stream from `R`'s protocol to `W`'s.
#[derive(Debug)]
pub struct Translated<R, W, A = Unchanged> {
    frames: SseFrames,
    reader: R,
    writer: W,
    adapt: A,
    events: Vec<Event>,
}

impl<R: ReadUpstream, W: WriteClient> Translated<R, W, Unchanged> {
    pub fn new(reader: R, writer: W) -> Self {
        Self::adapted(reader, writer, Unchanged)
    }
}

impl<R: ReadUpstream, W: WriteClient, A: Adapt> Translated<R, W, A> {
    pub fn adapted(reader: R, writer: W, adapt: A) -> Self {
        Self {
            frames: SseFrames::new(),
            reader,
            writer,
            adapt,
            events: Vec::new(),
        }
    }

    fn write_events(&mut self, out: &mut Vec<u8>) {
        self.adapt.adapt(&mut self.events);
        for e in self.events.drain(..) {
            self.writer.event(&e, out);
        }
    }
}

impl<R: ReadUpstream, W: WriteClient, A: Adapt> StreamTap for Translated<R, W, A> {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        let mut out = Vec::new();
        for ev in self.frames.push(&chunk) {
            self.reader.event(&ev, &mut self.events);
        }
        self.write_events(&mut out);
        Bytes::from(out)
    }

    fn end(mut self: Box<Self>, broken: Option<&str>) -> (Bytes, StreamSummary) {
        let mut out = Vec::new();
        if let Some(ev) = self.frames.finish() {
            self.reader.event(&ev, &mut self.events);
        }
        match broken {
            Some(reason) => {
                self.write_events(&mut out);
                self.writer.broken(502, reason, &mut out);
            }
            None => {
                self.reader.end(&mut self.events);
                self.write_events(&mut out);
                self.writer.end(&mut out);
            }
        }
        let this = *self;
        (Bytes::from(out), this.reader.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::neutral::Blocks;
    use crate::usage::Usage;

    /// Reads `data: <text>` events as text deltas, `data: !` as a stop.
    #[derive(Default)]
    struct Lines {
        blocks: Blocks,
        seen: usize,
    }

    impl ReadUpstream for Lines {
        fn event(&mut self, event: &SseEvent, out: &mut Vec<Event>) {
            self.seen += 1;
            match event.text() {
                Some("!") => self
                    .blocks
                    .finish(StopReason::EndTurn, Usage::default(), out),
                Some(t) => self.blocks.text(t, out),
                None => {}
            }
        }
        fn end(&mut self, out: &mut Vec<Event>) {
            self.blocks
                .finish(StopReason::MaxTokens, Usage::default(), out);
        }
        fn summary(self) -> StreamSummary {
            StreamSummary {
                completed: self.blocks.finished(),
                ..StreamSummary::default()
            }
        }
    }

    /// Writes deltas as they come, `.` for a finish, `E` for an error.
    #[derive(Default)]
    struct Plain;

    impl WriteClient for Plain {
        fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
            match event {
                Event::Delta(d) => out.extend_from_slice(d.as_bytes()),
                Event::Finish { stop, .. } => {
                    out.extend_from_slice(format!("[{stop:?}]").as_bytes())
                }
                _ => {}
            }
        }
        fn end(&mut self, out: &mut Vec<u8>) {
            out.push(b'.');
        }
        fn broken(&mut self, _status: u16, message: &str, out: &mut Vec<u8>) {
            out.extend_from_slice(format!("E:{message}").as_bytes());
        }
    }

    #[test]
    fn each_event_goes_out_as_soon_as_it_is_whole() {
        let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(Lines::default(), Plain));
        assert_eq!(&tap.chunk(Bytes::from_static(b"data: Hel"))[..], b"");
        assert_eq!(
            &tap.chunk(Bytes::from_static(b"lo\n\ndata: wor"))[..],
            b"Hello"
        );
        assert_eq!(&tap.chunk(Bytes::from_static(b"ld\n\n"))[..], b"world");
        let (tail, summary) = tap.end(None);
        assert_eq!(&tail[..], b"[MaxTokens].");
        assert!(summary.completed);
    }

    #[test]
    fn a_broken_stream_ends_with_the_writers_error() {
        let mut tap: Box<dyn StreamTap> = Box::new(Translated::new(Lines::default(), Plain));
        tap.chunk(Bytes::from_static(b"data: a\n\n"));
        let (tail, summary) = tap.end(Some("reset"));
        assert_eq!(&tail[..], b"E:reset");
        assert!(!summary.completed);
    }

    #[test]
    fn a_forced_json_tool_call_becomes_text() {
        let mut events = Vec::new();
        let mut b = Blocks::default();
        b.tool_call("t", "json_answer", &mut events);
        b.arguments("{\"a\":1}", &mut events);
        b.finish(StopReason::ToolUse, Usage::default(), &mut events);
        JsonFromTool::new("json_answer").adapt(&mut events);
        let answer = crate::translate::neutral::fold(events).unwrap();
        assert_eq!(
            answer.parts,
            vec![crate::translate::neutral::Part::Text("{\"a\":1}".into())]
        );
        assert_eq!(answer.stop, StopReason::EndTurn);
    }
}
