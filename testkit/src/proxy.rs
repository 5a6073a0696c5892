//! Tiny loopback proxies that record what goes through them.
//!
//! - [`HttpProxy`]: a forward proxy for `http://` targets (absolute-form
//!   requests, no CONNECT), optionally asking for Basic proxy credentials;
//! - [`Socks5Proxy`]: SOCKS5 `CONNECT` (RFC 1928) with optional
//!   username/password authentication (RFC 1929).
//!
//! Tests point an account's `proxy` at one and check that its traffic (API
//! calls, token refresh) really went through it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request an [`HttpProxy`] forwarded (or refused).
#[derive(Debug, Clone)]
pub struct ProxiedRequest {
    pub method: String,
    /// The absolute URI the client asked for.
    pub uri: String,
    /// Whether it carried the expected `Proxy-Authorization`.
    pub authorized: bool,
}

#[derive(Debug)]
struct HttpState {
    /// Expected `Proxy-Authorization` value, if credentials are required.
    expected: Option<String>,
    seen: Mutex<Vec<ProxiedRequest>>,
    client: reqwest::Client,
}

/// A running HTTP forward proxy.
#[derive(Debug, Clone)]
pub struct HttpProxy {
    /// The proxy URL for an account, with the credentials in it.
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<HttpState>,
}

impl HttpProxy {
    /// Starts a proxy on 127.0.0.1 port 0; with `credentials`, requests
    /// without them get 407.
    pub async fn start(credentials: Option<(&str, &str)>) -> std::io::Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let state = Arc::new(HttpState {
            expected: credentials.map(|(u, p)| format!("Basic {}", B64.encode(format!("{u}:{p}")))),
            seen: Mutex::default(),
            client,
        });
        let app = Router::new().fallback(forward).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let userinfo = credentials.map_or(String::new(), |(u, p)| format!("{u}:{p}@"));
        Ok(Self {
            url: format!("http://{userinfo}{addr}"),
            addr,
            state,
        })
    }

    /// Every request that reached the proxy.
    pub fn seen(&self) -> Vec<ProxiedRequest> {
        lock(&self.state.seen).clone()
    }
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

async fn forward(State(state): State<Arc<HttpState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let given = parts
        .headers
        .get("proxy-authorization")
        .and_then(|v| v.to_str().ok());
    let authorized = state.expected.as_deref().is_none_or(|e| given == Some(e));
    lock(&state.seen).push(ProxiedRequest {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        authorized,
    });
    if !authorized {
        return (
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            [("proxy-authenticate", "Basic realm=\"mock\"")],
        )
            .into_response();
    }
    if parts.uri.scheme().is_none() {
        return (StatusCode::BAD_REQUEST, "absolute-form request expected").into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &parts.headers {
        if !HOP_BY_HOP.contains(&k.as_str()) && k != "host" {
            headers.append(k.clone(), v.clone());
        }
    }
    let sent = state
        .client
        .request(parts.method, parts.uri.to_string())
        .headers(headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(upstream.status());
    if let Some(h) = out.headers_mut() {
        for (k, v) in upstream.headers() {
            if !HOP_BY_HOP.contains(&k.as_str()) && k != "content-length" {
                h.append(k.clone(), v.clone());
            }
        }
    }
    let stream = upstream.bytes_stream().map_err(std::io::Error::other);
    out.body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// A connection a [`Socks5Proxy`] opened.
#[derive(Debug, Clone)]
pub struct SocksConnection {
    /// `host:port` the client asked for.
    pub target: String,
    /// The user name it authenticated with.
    pub user: Option<String>,
    /// The first line the client sent through (an HTTP request line).
    pub first_line: String,
}

#[derive(Debug)]
struct SocksState {
    credentials: Option<(String, String)>,
    connections: Mutex<Vec<SocksConnection>>,
    refused: Mutex<u32>,
}

/// A running SOCKS5 proxy.
#[derive(Debug, Clone)]
pub struct Socks5Proxy {
    /// The proxy URL for an account (`socks5://user:pass@127.0.0.1:port`).
    pub url: String,
    pub addr: SocketAddr,
    state: Arc<SocksState>,
}

impl Socks5Proxy {
    /// Starts a proxy on 127.0.0.1 port 0; with `credentials`, clients must
    /// authenticate with them.
    pub async fn start(credentials: Option<(&str, &str)>) -> std::io::Result<Self> {
        let state = Arc::new(SocksState {
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            connections: Mutex::default(),
            refused: Mutex::new(0),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    if socks_session(&state, conn).await.is_err() {
                        *lock(&state.refused) += 1;
                    }
                });
            }
        });
        let userinfo = credentials.map_or(String::new(), |(u, p)| format!("{u}:{p}@"));
        Ok(Self {
            url: format!("socks5://{userinfo}{addr}"),
            addr,
            state,
        })
    }

    /// Connections made through the proxy.
    pub fn connections(&self) -> Vec<SocksConnection> {
        lock(&self.state.connections).clone()
    }

    /// Sessions refused or broken off (bad credentials, bad requests).
    pub fn refused(&self) -> u32 {
        *lock(&self.state.refused)
    }
}

async fn socks_session(state: &SocksState, mut conn: TcpStream) -> std::io::Result<()> {
    let bad = |m: &str| std::io::Error::other(m.to_owned());
    let mut head = [0u8; 2];
    conn.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(bad("not SOCKS5"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    conn.read_exact(&mut methods).await?;
    let mut user = None;
    match &state.credentials {
        Some((u, p)) => {
            if !methods.contains(&2) {
                conn.write_all(&[5, 0xff]).await?;
                return Err(bad("no username/password method offered"));
            }
            conn.write_all(&[5, 2]).await?;
            let mut ver_len = [0u8; 2];
            conn.read_exact(&mut ver_len).await?;
            let mut name = vec![0u8; usize::from(ver_len[1])];
            conn.read_exact(&mut name).await?;
            let mut plen = [0u8; 1];
            conn.read_exact(&mut plen).await?;
            let mut pass = vec![0u8; usize::from(plen[0])];
            conn.read_exact(&mut pass).await?;
            if name != u.as_bytes() || pass != p.as_bytes() {
                conn.write_all(&[1, 1]).await?;
                return Err(bad("wrong credentials"));
            }
            conn.write_all(&[1, 0]).await?;
            user = Some(u.clone());
        }
        None => {
            if !methods.contains(&0) {
                conn.write_all(&[5, 0xff]).await?;
                return Err(bad("no acceptable method"));
            }
            conn.write_all(&[5, 0]).await?;
        }
    }
    let mut req = [0u8; 4];
    conn.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            conn.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            conn.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            conn.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            conn.read_exact(&mut ip).await?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => return Err(bad("bad address type")),
    };
    let mut port = [0u8; 2];
    conn.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    if req[1] != 1 {
        conn.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Err(bad("only CONNECT"));
    }
    let mut upstream = match TcpStream::connect(&target).await {
        Ok(s) => s,
        Err(e) => {
            conn.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Err(e);
        }
    };
    conn.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    // The first bytes through name the request; then a plain relay.
    let mut first = vec![0u8; 8192];
    let n = conn.read(&mut first).await?;
    let first_line = String::from_utf8_lossy(&first[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    lock(&state.connections).push(SocksConnection {
        target,
        user,
        first_line,
    });
    upstream.write_all(&first[..n]).await?;
    tokio::io::copy_bidirectional(&mut conn, &mut upstream).await?;
    Ok(())
}
