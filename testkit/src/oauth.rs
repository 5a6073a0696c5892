//! A mock Claude OAuth token endpoint (axum, 127.0.0.1, port 0).
//!
//! It plays both the browser and the token endpoint: [`MockOAuth::approve`]
//! takes the authorize URL a gateway produced, checks it, and returns what
//! Claude would show the owner to paste back (`code#state`). `POST
//! /v1/oauth/token` then answers `authorization_code` grants (PKCE S256
//! checked, each code usable once) and `refresh_token` grants (each
//! refresh token usable once, as Claude's rotate). Issued access tokens can
//! be handed to a [`MockUpstream`] so it accepts them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::mock::MockUpstream;

/// Path of the token endpoint on the mock.
pub const TOKEN_PATH: &str = "/v1/oauth/token";

/// A request the token endpoint received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub headers: HeaderMap,
    pub body: Value,
}

impl TokenRequest {
    pub fn grant_type(&self) -> &str {
        self.body["grant_type"].as_str().unwrap_or("")
    }
}

/// What the mock saw in an authorize URL it approved.
#[derive(Debug, Clone)]
pub struct Approval {
    pub params: HashMap<String, String>,
    pub code: String,
    /// What the owner pastes back: `code#state`.
    pub pasted: String,
}

#[derive(Debug)]
struct Code {
    challenge: String,
    state: String,
    client_id: String,
    redirect_uri: String,
    scope: String,
}

#[derive(Debug, Default)]
struct Tables {
    codes: HashMap<String, Code>,
    used_codes: HashSet<String>,
    /// Live refresh tokens → their scope.
    refresh: HashMap<String, String>,
    requests: Vec<TokenRequest>,
    /// Answer the next refresh grants with this (status, error) instead.
    refresh_failure: Option<(u16, String)>,
}

#[derive(Debug)]
struct OAuthState {
    client_id: String,
    expires_in: Mutex<u64>,
    delay: Mutex<Duration>,
    tables: Mutex<Tables>,
    upstream: Mutex<Option<MockUpstream>>,
    seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running mock OAuth server.
#[derive(Debug, Clone)]
pub struct MockOAuth {
    /// Base URL, e.g. `http://127.0.0.1:41235`.
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<OAuthState>,
}

fn refuse(status: u16, error: &str, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

impl MockOAuth {
    /// Starts a token endpoint expecting `client_id`.
    pub async fn start(client_id: &str) -> std::io::Result<Self> {
        let state = Arc::new(OAuthState {
            client_id: client_id.to_owned(),
            expires_in: Mutex::new(28_800),
            delay: Mutex::new(Duration::ZERO),
            tables: Mutex::default(),
            upstream: Mutex::new(None),
            seq: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(TOKEN_PATH, post(token))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            addr,
            state,
        })
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.url)
    }

    /// Issued access tokens are accepted by `upstream` from now on.
    pub fn link_upstream(&self, upstream: &MockUpstream) {
        *lock(&self.state.upstream) = Some(upstream.clone());
    }

    /// Lifetime (`expires_in`) of the access tokens issued from now on.
    pub fn set_expires_in(&self, secs: u64) {
        *lock(&self.state.expires_in) = secs;
    }

    /// Every grant waits this long before answering (widens races).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// Refresh grants answer `status` with `error` until cleared (`None`).
    pub fn fail_refresh(&self, failure: Option<(u16, &str)>) {
        lock(&self.state.tables).refresh_failure = failure.map(|(s, e)| (s, e.to_owned()));
    }

    /// A valid token pair, as if from an earlier sign-in: (access, refresh).
    pub fn mint(&self) -> (String, String) {
        self.issue("user:inference user:profile")
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.tables).requests.clone()
    }

    /// How many `refresh_token` grants were asked for.
    pub fn refresh_calls(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.grant_type() == "refresh_token")
            .count()
    }

    /// The browser part: checks the authorize URL, issues a code, and
    /// returns what the owner would paste back. Panics on a URL a real
    /// sign-in page would refuse.
    pub fn approve(&self, auth_url: &str) -> Approval {
        let query = auth_url.split_once('?').map_or("", |(_, q)| q);
        let params: HashMap<String, String> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (decode(k), decode(v)))
            .collect();
        let get = |k: &str| params.get(k).cloned().unwrap_or_default();
        assert_eq!(
            get("code_challenge_method"),
            "S256",
            "PKCE S256: {auth_url}"
        );
        assert_eq!(get("client_id"), self.state.client_id, "{auth_url}");
        for k in ["code_challenge", "state", "redirect_uri", "scope"] {
            assert!(!get(k).is_empty(), "{k} missing in {auth_url}");
        }
        let n = self.state.seq.fetch_add(1, Ordering::Relaxed);
        let code = format!("mock-code-{n}-{}", get("state").len());
        lock(&self.state.tables).codes.insert(
            code.clone(),
            Code {
                challenge: get("code_challenge"),
                state: get("state"),
                client_id: get("client_id"),
                redirect_uri: get("redirect_uri"),
                scope: get("scope"),
            },
        );
        Approval {
            pasted: format!("{code}#{}", get("state")),
            code,
            params,
        }
    }

    fn issue(&self, scope: &str) -> (String, String) {
        issue(&self.state, scope)
    }
}

fn issue(state: &OAuthState, scope: &str) -> (String, String) {
    let n = state.seq.fetch_add(1, Ordering::Relaxed);
    let access = format!("sk-ant-oat01-mock-{n}");
    let refresh = format!("sk-ant-ort01-mock-{n}");
    lock(&state.tables)
        .refresh
        .insert(refresh.clone(), scope.to_owned());
    if let Some(up) = lock(&state.upstream).as_ref() {
        up.accept_key(&access);
    }
    (access, refresh)
}

fn grant(state: &OAuthState, scope: &str) -> Response {
    let (access, refresh) = issue(state, scope);
    let expires_in = *lock(&state.expires_in);
    Json(json!({
        "token_type": "Bearer",
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": expires_in,
        "scope": scope,
        "organization": {"uuid": "org-mock-1", "name": "Mock Org"},
        "account": {"uuid": "acct-mock-1", "email_address": "owner@example.test"},
    }))
    .into_response()
}

async fn token(State(state): State<Arc<OAuthState>>, headers: HeaderMap, body: String) -> Response {
    let delay = *lock(&state.delay);
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return refuse(400, "invalid_request", "the body must be JSON");
    };
    lock(&state.tables).requests.push(TokenRequest {
        headers,
        body: body.clone(),
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let field = |k: &str| body[k].as_str().unwrap_or("").to_owned();
    if field("client_id") != state.client_id {
        return refuse(401, "invalid_client", "unknown client");
    }
    match field("grant_type").as_str() {
        "authorization_code" => {
            let code = field("code");
            let found = {
                let mut t = lock(&state.tables);
                if !t.used_codes.insert(code.clone()) {
                    return refuse(400, "invalid_grant", "authorization code already used");
                }
                t.codes.remove(&code)
            };
            let Some(c) = found else {
                return refuse(400, "invalid_grant", "unknown authorization code");
            };
            let challenge = B64URL.encode(Sha256::digest(field("code_verifier").as_bytes()));
            if challenge != c.challenge {
                return refuse(400, "invalid_grant", "code_verifier does not match");
            }
            if field("state") != c.state
                || field("redirect_uri") != c.redirect_uri
                || c.client_id != state.client_id
            {
                return refuse(400, "invalid_grant", "state or redirect_uri mismatch");
            }
            grant(&state, &c.scope)
        }
        "refresh_token" => {
            let scope = {
                let mut t = lock(&state.tables);
                if let Some((status, error)) = t.refresh_failure.clone() {
                    return refuse(status, &error, "refresh refused by the mock");
                }
                // Rotation: a refresh token works once.
                t.refresh.remove(&field("refresh_token"))
            };
            match scope {
                Some(scope) => grant(&state, &scope),
                None => refuse(400, "invalid_grant", "refresh token not found or invalid"),
            }
        }
        _ => refuse(400, "unsupported_grant_type", "unknown grant_type"),
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
