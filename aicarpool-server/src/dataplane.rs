//! Data-plane routes: what CLIs and SDKs call. Each route hands the request
//! to the core [`Gateway`](aicarpool_core::gateway::Gateway).

use aicarpool_core::gateway::AI_PROXY_PREFIX;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{any, post};
use axum::Router;

use crate::state::AppState;

/// Prefixes under which the Anthropic Messages API is served: Claude Code
/// with `ANTHROPIC_BASE_URL=…/api` calls `/api/v1/messages`, with `…/api/v1`
/// it calls `/api/v1/v1/messages`, and SDKs pointed at the root call
/// `/v1/messages`.
const ANTHROPIC_PREFIXES: [&str; 3] = ["/api/v1", "/api/v1/v1", "/v1"];

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for prefix in ANTHROPIC_PREFIXES {
        router = router
            .route(&format!("{prefix}/messages"), post(forward))
            .route(&format!("{prefix}/messages/count_tokens"), post(forward));
    }
    // Gemini (`/{v1beta|v1}/models/{model}:{method}`) and OpenAI
    // (`/v1/chat/completions`, `/v1/responses`, `/v1/models`, `/chat`): the
    // gateway routes inside, answering unknown paths and methods — and a
    // WebSocket attempt on `/v1/responses` — in the path's protocol.
    router.route(&format!("{AI_PROXY_PREFIX}/{{*rest}}"), any(forward))
}

/// Whether `path` is served by the data plane (and so answers in an AI
/// protocol's shape rather than the management API's).
pub fn is_data_plane(path: &str) -> bool {
    path.starts_with(AI_PROXY_PREFIX)
        || ANTHROPIC_PREFIXES.iter().any(|prefix| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with("/messages"))
        })
}

async fn forward(State(state): State<AppState>, req: Request) -> Response {
    state.gateway.serve(req).await.map(Body::new)
}
