//! # aicarpool-testkit
//!
//! Test support shared by the workspace's tests, examples and benchmarks:
//!
//! - [`mock::MockUpstream`], an in-process Anthropic Messages upstream on
//!   port 0 that speaks the real wire format (JSON and SSE), and can be told
//!   to rate limit (429 with `retry-after` or the unified reset header),
//!   overload (529), fail (5xx), send an `error` event mid-stream, drop the
//!   connection mid-stream, hold a stream open until released, stall
//!   before or after its headers, or answer compressed;
//! - [`fixtures`], requests captured from released clients (Claude Code,
//!   the Python SDK), to use as real request bodies and headers;
//! - [`MockGemini`] and [`MockOpenAi`], Gemini and OpenAI-compatible
//!   upstreams on the same terms (real wire formats, SSE, errors,
//!   scripted [`Behavior`]s);
//! - [`oauth::MockOAuth`], a Claude OAuth token endpoint (PKCE checked,
//!   single-use codes, rotating refresh tokens);
//! - [`proxy`], loopback HTTP and SOCKS5 proxies that record their traffic;
//! - [`subscription::SubscriptionMock`], a Claude subscription with 5-hour
//!   and 7-day usage windows that fill with the cost served, on a clock
//!   the test drives.

pub mod encoding;
pub mod fixtures;
pub mod mock;
pub mod mock_gemini;
pub mod mock_openai;
pub mod oauth;
pub mod proxy;
pub mod subscription;
pub mod upstream;

pub use encoding::Encoding;
pub use mock::{Behavior, MockUpstream, MockUsage};
pub use mock_gemini::{MockGemini, GEMINI_ANSWER};
pub use mock_openai::{MockOpenAi, OPENAI_ANSWER};
pub use oauth::MockOAuth;
pub use proxy::{HttpProxy, Socks5Proxy};
