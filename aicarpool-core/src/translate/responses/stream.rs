//! Writing the answer as a Responses stream, and as a whole response.

use bytes::Bytes;
use serde_json::{json, Value};

use super::object::{
    call_item, custom_input, message_item, output_text, reasoning_item, CallNames, Envelope,
};
use super::{failure_code, ResponsesRequest};
use crate::translate::neutral::{unfold, Answer, Block, Event};
use crate::translate::tap::WriteClient;

/// The output item being written.
#[derive(Debug)]
enum Open {
    Message {
        id: String,
        index: usize,
        text: String,
    },
    /// Reasoning goes out when its first shown text or its signature
    /// comes: reasoning with neither is not written at all.
    Reasoning {
        id: String,
        index: Option<usize>,
        text: String,
        signature: Option<String>,
        summary_open: bool,
    },
    Call {
        call: CallNames,
        index: usize,
        arguments: String,
    },
}

/// Writes neutral events as the Responses event stream, each event with
/// its `sequence_number`.
#[derive(Debug)]
pub struct ResponsesWriter {
    envelope: Envelope,
    /// The request's custom and namespaced tools (no conversation).
    tools: ResponsesRequest,
    show_reasoning: bool,
    sequence: u64,
    started: bool,
    done: bool,
    open: Option<Open>,
    /// Finished output items, for the final response object.
    output: Vec<Value>,
    /// The last response object written (the whole answer, once done).
    last: Option<Value>,
}

impl ResponsesWriter {
    /// A writer answering `request` as `model` (the name the client asked
    /// for).
    pub fn new(model: &str, request: &ResponsesRequest) -> Self {
        Self {
            envelope: Envelope::new(model, request),
            tools: ResponsesRequest {
                custom_tools: request.custom_tools.clone(),
                namespaced: request.namespaced.clone(),
                ..ResponsesRequest::default()
            },
            show_reasoning: request.conversation.reasoning.is_some_and(|r| r.show),
            sequence: 0,
            started: false,
            done: false,
            open: None,
            output: Vec::new(),
            last: None,
        }
    }

    /// The response id the client sees.
    pub fn response_id(&self) -> &str {
        &self.envelope.id
    }

    fn emit(&mut self, kind: &str, mut data: Value, out: &mut Vec<u8>) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(format!("event: {kind}\ndata: {data}\n\n").as_bytes());
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.envelope.object("in_progress", &[], None, None);
        self.emit("response.created", json!({"response": response}), out);
        let response = self.envelope.object("in_progress", &[], None, None);
        self.emit("response.in_progress", json!({"response": response}), out);
    }

    fn open_block(&mut self, block: &Block, out: &mut Vec<u8>) {
        self.close(out);
        let index = self.output.len();
        self.open = Some(match block {
            Block::Text => {
                let id = format!("msg_{}", crate::id::new_id());
                let item = message_item(&id, "in_progress", None);
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.emit(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": output_text("")}),
                    out,
                );
                Open::Message {
                    id,
                    index,
                    text: String::new(),
                }
            }
            Block::Thinking => Open::Reasoning {
                id: format!("rs_{}", crate::id::new_id()),
                index: None,
                text: String::new(),
                signature: None,
                summary_open: false,
            },
            Block::ToolCall { id, name } => {
                let call = CallNames::new(&self.tools, id, name);
                let item = call_item(&call, "in_progress", "");
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                Open::Call {
                    call,
                    index,
                    arguments: String::new(),
                }
            }
        });
    }

    /// Announces the reasoning item, once; returns its output index.
    fn announce_reasoning(
        &mut self,
        id: &str,
        index: &mut Option<usize>,
        out: &mut Vec<u8>,
    ) -> usize {
        if let Some(i) = *index {
            return i;
        }
        let i = self.output.len();
        *index = Some(i);
        let item = reasoning_item(id, None, None);
        self.emit(
            "response.output_item.added",
            json!({"output_index": i, "item": item}),
            out,
        );
        i
    }

    fn delta(&mut self, delta: &str, out: &mut Vec<u8>) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        match &mut open {
            Open::Message { id, index, text } => {
                text.push_str(delta);
                let data = json!({"item_id": id, "output_index": index, "content_index": 0,
                                  "delta": delta, "logprobs": []});
                self.emit("response.output_text.delta", data, out);
            }
            Open::Reasoning {
                id,
                index,
                text,
                summary_open,
                ..
            } => {
                text.push_str(delta);
                if self.show_reasoning {
                    let i = self.announce_reasoning(id, index, out);
                    let base = json!({"item_id": id, "output_index": i, "summary_index": 0});
                    if !*summary_open {
                        *summary_open = true;
                        let mut added = base.clone();
                        added["part"] = json!({"type": "summary_text", "text": ""});
                        self.emit("response.reasoning_summary_part.added", added, out);
                    }
                    let mut data = base;
                    data["delta"] = json!(delta);
                    self.emit("response.reasoning_summary_text.delta", data, out);
                }
            }
            Open::Call {
                call,
                index,
                arguments,
            } => {
                arguments.push_str(delta);
                // A custom tool's input is JSON-encoded until the call is whole.
                if !call.custom {
                    let data =
                        json!({"item_id": call.item_id, "output_index": index, "delta": delta});
                    self.emit("response.function_call_arguments.delta", data, out);
                }
            }
        }
        self.open = Some(open);
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let (index, item) = match open {
            Open::Message { id, index, text } => {
                let base = json!({"item_id": id, "output_index": index, "content_index": 0});
                let mut done = base.clone();
                done["text"] = json!(text);
                done["logprobs"] = json!([]);
                self.emit("response.output_text.done", done, out);
                let mut part = base;
                part["part"] = output_text(&text);
                self.emit("response.content_part.done", part, out);
                (index, message_item(&id, "completed", Some(&text)))
            }
            Open::Reasoning {
                id,
                mut index,
                text,
                signature,
                summary_open,
            } => {
                // Hidden reasoning without a signature leaves nothing to carry.
                if index.is_none() && signature.is_none() {
                    return;
                }
                let index = self.announce_reasoning(&id, &mut index, out);
                if summary_open {
                    let base = json!({"item_id": id, "output_index": index, "summary_index": 0});
                    let mut done = base.clone();
                    done["text"] = json!(text);
                    self.emit("response.reasoning_summary_text.done", done, out);
                    let mut part = base;
                    part["part"] = json!({"type": "summary_text", "text": text});
                    self.emit("response.reasoning_summary_part.done", part, out);
                }
                let summary = summary_open.then_some(text.as_str());
                (index, reasoning_item(&id, summary, signature.as_deref()))
            }
            Open::Call {
                call,
                index,
                arguments,
            } => {
                let base = json!({"item_id": call.item_id, "output_index": index});
                let payload = if call.custom {
                    let input = custom_input(&arguments);
                    let mut delta = base.clone();
                    delta["delta"] = json!(input);
                    self.emit("response.custom_tool_call_input.delta", delta, out);
                    let mut done = base;
                    done["input"] = json!(input);
                    self.emit("response.custom_tool_call_input.done", done, out);
                    input
                } else {
                    // Clients parse the arguments: an empty call is `{}`.
                    let arguments = if arguments.trim().is_empty() {
                        "{}".to_owned()
                    } else {
                        arguments
                    };
                    let mut done = base;
                    done["arguments"] = json!(arguments);
                    done["name"] = json!(call.name);
                    self.emit("response.function_call_arguments.done", done, out);
                    arguments
                };
                (index, call_item(&call, "completed", &payload))
            }
        };
        self.emit(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            out,
        );
        self.output.push(item);
    }

    fn fail(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        self.done = true;
        self.open = None;
        let response = self
            .envelope
            .failed(&self.output, failure_code(status), message);
        self.emit(
            "response.failed",
            json!({"response": response.clone()}),
            out,
        );
        self.last = Some(response);
    }
}

impl WriteClient for ResponsesWriter {
    fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.start(out);
        match event {
            Event::Start { .. } => {}
            Event::BlockStart(block) => self.open_block(block, out),
            Event::Delta(d) => self.delta(d, out),
            Event::Signature(s) => {
                if let Some(Open::Reasoning { signature, .. }) = &mut self.open {
                    *signature = Some(s.clone());
                }
            }
            Event::BlockEnd => self.close(out),
            Event::Finish { stop, usage } => {
                self.close(out);
                self.done = true;
                let response = self.envelope.finished(&self.output, usage, *stop);
                self.emit(
                    "response.completed",
                    json!({"response": response.clone()}),
                    out,
                );
                self.last = Some(response);
            }
            Event::Error { status, message } => self.fail(*status, message, out),
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if !self.done {
            self.close(out);
            self.fail(
                502,
                "the upstream ended the stream before the answer was complete",
                out,
            );
        }
    }

    fn broken(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        self.fail(status, message, out);
    }
}

/// The whole response object for `answer` (a client that did not stream).
pub fn write_answer(answer: &Answer, model: &str, request: &ResponsesRequest) -> Bytes {
    let mut writer = ResponsesWriter::new(model, request);
    let mut sink = Vec::new();
    for event in unfold(answer) {
        writer.event(&event, &mut sink);
    }
    writer.end(&mut sink);
    let body = writer.last.unwrap_or(Value::Null);
    Bytes::from(body.to_string())
}
