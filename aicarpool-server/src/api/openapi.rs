//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /api/openapi.json`.
//!
//! The data plane and the operations endpoints are mounted outside the
//! management API; they are described here by documentation-only items so
//! that the document lists every path a client can call.

use axum::Json;
use utoipa::OpenApi;

/// The management API, the data plane and the operations endpoints.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "AiCarpool",
        description = "Management API and data plane of the AiCarpool gateway. \
            Management calls take `Authorization: Bearer <session token>`; errors are \
            `{\"error\":{\"code\",\"message\"}}`."
    ),
    paths(
        super::auth::register,
        super::auth::login,
        super::auth::logout,
        super::auth::logout_all,
        super::auth::change_password,
        super::auth::me,
        super::groups::create,
        super::groups::list,
        super::groups::get,
        super::groups::patch,
        super::groups::delete,
        super::groups::members,
        super::groups::patch_member,
        super::groups::remove_member,
        super::invitations::create,
        super::invitations::preview,
        super::invitations::accept,
        super::invitations::page,
        super::accounts::create,
        super::accounts::list,
        super::accounts::get,
        super::accounts::patch,
        super::accounts::delete,
        super::accounts::test,
        super::accounts::health,
        super::oauth::start,
        super::oauth::finish,
        super::routing::routing,
        super::windows::windows,
        super::binding::put,
        super::binding::get,
        super::keys::create,
        super::keys::list,
        super::keys::get,
        super::keys::patch,
        super::keys::delete,
        super::keys::rotate,
        super::usage::report,
        super::requests::list,
        super::alerts::create_for_group,
        super::alerts::list_for_group,
        super::alerts::delete_for_group,
        super::alerts::create_for_enterprise,
        super::alerts::list_for_enterprise,
        super::alerts::delete_for_enterprise,
        super::usage::export::export_csv,
        super::statements::get,
        super::statements::csv,
        super::statements::close,
        super::enterprises::create,
        super::enterprises::list,
        super::enterprises::get,
        super::enterprises::patch,
        super::enterprises::delete,
        super::enterprises::members,
        super::enterprises::add_member,
        super::enterprises::patch_member,
        super::enterprises::remove_member,
        super::enterprises::create_account,
        super::enterprises::list_accounts,
        super::departments::create,
        super::departments::tree,
        super::departments::get,
        super::departments::patch,
        super::departments::delete,
        super::departments::add_admin,
        super::departments::remove_admin,
        super::events::list,
        super::audit::list,
        document,
        messages,
        messages_v1,
        messages_root,
        count_tokens,
        count_tokens_v1,
        count_tokens_root,
        gemini_generate,
        gemini_stream,
        gemini_count_tokens,
        openai_chat,
        openai_responses,
        openai_responses_socket,
        openai_models,
        openai_model,
        unified_chat,
        healthz,
        readyz,
        metrics,
    ),
    tags(
        (name = "identity"), (name = "enterprises"), (name = "departments"),
        (name = "groups"), (name = "invitations"), (name = "accounts"), (name = "binding"),
        (name = "keys"), (name = "usage"), (name = "fair share"), (name = "statements"),
        (name = "alerts"), (name = "audit"), (name = "data plane"),
        (name = "operations"),
    )
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "this document")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

// Documentation-only items for routes mounted outside the management API.

#[utoipa::path(post, path = "/api/v1/messages", tag = "data plane",
    responses((status = 200, description = "Anthropic Messages (Claude Code with ANTHROPIC_BASE_URL=…/api); member key as x-api-key or Bearer")))]
#[allow(dead_code)]
fn messages() {}

#[utoipa::path(post, path = "/api/v1/v1/messages", tag = "data plane",
    responses((status = 200, description = "Anthropic Messages (ANTHROPIC_BASE_URL=…/api/v1)")))]
#[allow(dead_code)]
fn messages_v1() {}

#[utoipa::path(post, path = "/v1/messages", tag = "data plane",
    responses((status = 200, description = "Anthropic Messages for SDKs pointed at the root")))]
#[allow(dead_code)]
fn messages_root() {}

#[utoipa::path(post, path = "/api/v1/messages/count_tokens", tag = "data plane",
    responses((status = 200, description = "Anthropic token counting (free, not recorded)")))]
#[allow(dead_code)]
fn count_tokens() {}

#[utoipa::path(post, path = "/api/v1/v1/messages/count_tokens", tag = "data plane",
    responses((status = 200, description = "Anthropic token counting")))]
#[allow(dead_code)]
fn count_tokens_v1() {}

#[utoipa::path(post, path = "/v1/messages/count_tokens", tag = "data plane",
    responses((status = 200, description = "Anthropic token counting")))]
#[allow(dead_code)]
fn count_tokens_root() {}

#[utoipa::path(post, path = "/api/ai-proxy/v1beta/models/{model}:generateContent", tag = "data plane",
    params(("model" = String, Path, description = "Gemini model; the same is served under /v1/")),
    responses((status = 200, description = "Gemini generateContent (Gemini CLI with GOOGLE_GEMINI_BASE_URL=…/api/ai-proxy, google-genai); key as x-goog-api-key, ?key= or Bearer")))]
#[allow(dead_code)]
fn gemini_generate() {}

#[utoipa::path(post, path = "/api/ai-proxy/v1beta/models/{model}:streamGenerateContent", tag = "data plane",
    params(("model" = String, Path, description = "Gemini model")),
    responses((status = 200, description = "Gemini streaming (alt=sse)")))]
#[allow(dead_code)]
fn gemini_stream() {}

#[utoipa::path(post, path = "/api/ai-proxy/v1beta/models/{model}:countTokens", tag = "data plane",
    params(("model" = String, Path, description = "Gemini model")),
    responses((status = 200, description = "Gemini token counting (free, not recorded)")))]
#[allow(dead_code)]
fn gemini_count_tokens() {}

#[utoipa::path(post, path = "/api/ai-proxy/v1/chat/completions", tag = "data plane",
    responses((status = 200, description = "OpenAI Chat Completions, served by OpenAI-compatible accounts, or translated for Claude and Gemini accounts")))]
#[allow(dead_code)]
fn openai_chat() {}

#[utoipa::path(post, path = "/api/ai-proxy/v1/responses", tag = "data plane",
    responses((status = 200, description = "OpenAI Responses (Codex with wire_api = \"responses\"), OpenAI-compatible accounts")))]
#[allow(dead_code)]
fn openai_responses() {}

#[utoipa::path(get, path = "/api/ai-proxy/v1/responses", tag = "data plane",
    responses((status = 426, description = "a WebSocket attempt is refused at once, so the client falls back to HTTP")))]
#[allow(dead_code)]
fn openai_responses_socket() {}

#[utoipa::path(get, path = "/api/ai-proxy/v1/models", tag = "data plane",
    responses((status = 200, description = "the models the key may use, in OpenAI's list shape")))]
#[allow(dead_code)]
fn openai_models() {}

#[utoipa::path(get, path = "/api/ai-proxy/v1/models/{id}", tag = "data plane",
    params(("id" = String, Path, description = "model")),
    responses((status = 200, description = "one model the key may use"), (status = 404, description = "not available to the key")))]
#[allow(dead_code)]
fn openai_model() {}

#[utoipa::path(post, path = "/api/ai-proxy/chat", tag = "data plane",
    responses((status = 200, description = "OpenAI chat shape, any bound service (translated for Claude and Gemini accounts)")))]
#[allow(dead_code)]
fn unified_chat() {}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the process is up")))]
#[allow(dead_code)]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "the database is reachable (503 when not)")))]
#[allow(dead_code)]
fn readyz() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text: requests, durations, the gateway's own overhead, upstream time, time to first byte, tokens, cost, requests in flight, account states, subscription windows, the usage writer's queue, limiter errors"),
        (status = 401, description = "no token"),
        (status = 403, description = "not the admin token"),
        (status = 404, description = "served on `AICARPOOL_METRICS_LISTEN` instead")))]
#[allow(dead_code)]
fn metrics() {}
