//! Gemini generateContent, both sides of translation.
//!
//! The client side serves Gemini CLI and `google-genai` from a Claude or
//! OpenAI Chat account: [`read_request`] reads a `generateContent` /
//! `streamGenerateContent` body (the model and the method come from the
//! URL), [`GeminiWriter`] writes the streamed answer, [`write_answer`]
//! the whole one, [`error_body`] an error. The account side serves
//! Anthropic Messages and Responses clients from a Gemini account:
//! [`write_request`] writes the body, [`GeminiReader`] reads the stream
//! (the gateway asks for `alt=sse`), [`read_answer`] a whole answer.
//!
//! ### Client side (a Gemini client's request)
//!
//! **Read**: `contents` (roles `user`/`model`, `function` as user;
//! consecutive turns of one role are merged): `text`, `inlineData`
//! images, `fileData` images by `http(s)` URL, `functionCall` and
//! `functionResponse` (the `response` object as text: its `output` or
//! `content` when that is its only key, `error` as an error result, else
//! the JSON; images in a response's `parts`), thought parts as thinking
//! (`thoughtSignature` as its signature); `systemInstruction` (text);
//! `tools[].functionDeclarations` (`parametersJsonSchema` or
//! `parameters`: Gemini's upper-case OpenAPI types become JSON Schema);
//! `toolConfig.functionCallingConfig` (`AUTO`, `ANY`, `NONE`; `ANY` with
//! one allowed name is that tool); `generationConfig`: `maxOutputTokens`,
//! `temperature`, `topP`, `topK`, `stopSequences`, `responseMimeType:
//! application/json` with `responseJsonSchema` or `responseSchema`,
//! `thinkingConfig` (`thinkingBudget` 0 is no reasoning, -1 reasoning
//! without a budget; `thinkingLevel`; `includeThoughts` shows it).
//!
//! **Ids**: a `functionCall` without an `id` at `contents[t].parts[p]`
//! gets [`synthesized_call_id`]`(t, p)` (`call_<t>_<p>`), the same every
//! time the history is sent. A `functionResponse` without an `id`
//! answers the first call of that name not answered yet in the model
//! turn before it (the n-th response named X answers the n-th call named
//! X). The writer sends each call's `id`, so clients that echo it back
//! keep it.
//!
//! **Dropped**: the built-in tools (`googleSearch`, `codeExecution`,
//! `urlContext`, …: only Gemini runs them; Gemini CLI's own
//! `google_web_search` is a function and is kept), `allowedFunctionNames`
//! with several names under `ANY`, `thoughtSignature` on parts other
//! than thoughts and calls, `presencePenalty`, `frequencyPenalty`,
//! `seed`, `safetySettings`, `cachedContent`, `labels` and fields not
//! listed here.
//!
//! **Refused**: non-image `inlineData`/`fileData`, `fileData` that is not
//! an `http(s)` URL or is a Files API upload, `executableCode` /
//! `codeExecutionResult` parts, non-text system parts, `candidateCount` >
//! 1, `responseLogprobs`, `responseModalities` other than `TEXT`, a
//! `responseMimeType` other than JSON or text; `functionCall` outside a
//! model turn, `functionResponse` inside one, or one that answers no
//! call (invalid).
//!
//! **Written back**: each text or thinking delta as its own chunk (a
//! thought part has `thought: true`), each tool call as one
//! `functionCall` part once its arguments are whole, the last chunk with
//! `finishReason` (`STOP`, also for tool use; `MAX_TOKENS`; `SAFETY` for
//! a refusal), `usageMetadata` (the prompt count includes cached and
//! cache-written tokens; `cachedContentTokenCount` the cache reads;
//! thought tokens are not known apart and are in the candidates count),
//! `modelVersion` and `responseId`. With `alt=sse` each chunk is a
//! `data:` event, otherwise the stream is one JSON array. Errors are
//! Gemini's `{"error": {"code", "message", "status"}}`.
//!
//! A signed thinking block (Claude's) is carried in the next call's
//! `thoughtSignature`, because Gemini CLI keeps that and drops thought
//! parts; it comes back as a thinking part before the call (see
//! `signature`).
//!
//! ### Account side (a request for a Gemini account)
//!
//! **Written**: `contents` with alternating `user`/`model` turns; text;
//! inline images, `http(s)` image URLs as `fileData` with the type their
//! extension names; `functionCall` with `id` and `args`;
//! `functionResponse` (`name` from the result or the call it answers,
//! `id`, `response: {"output": …}` or `{"error": …}`; a result's images
//! follow it as parts); `systemInstruction`; one `functionDeclarations`
//! tool with `parametersJsonSchema` (`$schema` stripped); `toolConfig`;
//! `generationConfig` (`maxOutputTokens`, `temperature`, `topP`, `topK`,
//! `stopSequences`, `responseMimeType` + `responseJsonSchema`,
//! `thinkingConfig` with the budget clamped to 128..=24576, what every
//! Gemini 2.5 thinking model takes).
//!
//! **Thought signatures**: a call Gemini signed keeps its signature in
//! its id (`gsig_…`), which goes back as the call's `thoughtSignature`;
//! the first call of a model turn without one gets Gemini's placeholder
//! (`skip_thought_signature_validator`), so Gemini 3 takes history from
//! other upstreams.
//!
//! **Dropped**: thinking parts (Gemini takes back only its own
//! signatures), `parallel_tool_calls`, `user`.
//!
//! **Refused**: more than 5 stop sequences, image URLs without a known
//! image extension; a tool result whose tool name cannot be found
//! (invalid), a conversation with no content (invalid).
//!
//! **Read back**: text, thoughts (with their signature), function calls
//! (id: Gemini's `id`, the signature folded in, or a new `call_…`),
//! `finishReason` (`STOP` is tool use after a function call; `MAX_TOKENS`;
//! `SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII` are a
//! refusal; others end the turn), `promptFeedback.blockReason` as a
//! refusal, an `{"error": …}` frame as an error event; usage is the
//! [`GeminiStreamUsage`](crate::stream::gemini::GeminiStreamUsage)
//! sink's, exactly the pass-through accounting. A stream that ends
//! without `finishReason` finishes with what was seen. Only the first
//! candidate is read.

mod client;
mod config;
mod reader;
mod schema;
mod signature;
mod upstream;
mod writer;

#[cfg(test)]
mod tests;

pub use client::{read_request, synthesized_call_id};
pub use reader::{read_answer, GeminiReader};
pub use upstream::write_request;
pub use writer::{error_body, error_status, write_answer, GeminiWriter};
