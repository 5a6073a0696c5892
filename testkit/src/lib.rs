//! # aicarpool-testkit
//!
//! Test support shared by the workspace's tests, examples and benchmarks:
//!
//! - [`mock::MockUpstream`], an in-process Anthropic Messages upstream on
//!   port 0 that speaks the real wire format (JSON and SSE), and can be told
//!   to rate limit (429 with `retry-after` or the unified reset header),
//!   overload (529), fail (5xx), send an `error` event mid-stream, drop the
//!   connection mid-stream, or hold a stream open until released;
//! - [`fixtures`], requests captured from released clients (Claude Code,
//!   the Python SDK), to use as real request bodies and headers.

pub mod fixtures;
pub mod mock;

pub use mock::{Behavior, MockUpstream};
