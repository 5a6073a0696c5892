//! Holding an answer back until its first byte is in hand.
//!
//! Until the client has been sent anything, a failed attempt can still be
//! retried on another account. So an answer is not handed to the relay on
//! its headers alone: a stream waits for its first chunk, and a whole
//! answer (which the relay buffers anyway) is read to its end. An upstream
//! that stalls or breaks in that time fails over like one that never
//! answered, within the attempt's first-byte budget.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderMap;
use http_body_util::BodyExt;
use tokio::time::Instant;

/// Whether `headers` announce a server-sent event stream.
pub(super) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// Why an answer could not be made ready; the first field is for the log,
/// the second for the member.
#[derive(Debug)]
pub(super) struct NotReady {
    pub reason: String,
    pub public: &'static str,
}

impl NotReady {
    fn new(reason: impl Into<String>, public: &'static str) -> Self {
        Self {
            reason: reason.into(),
            public,
        }
    }
}

/// Bounds of making one answer ready.
pub(super) struct Patience {
    /// When the first byte of a stream must be in hand.
    pub first_byte_by: Instant,
    /// Longest pause between two chunks of a whole answer.
    pub between_chunks: Duration,
    /// When a whole answer must be read (the request's total bound).
    pub read_by: Instant,
    /// Largest whole answer.
    pub max_bytes: usize,
}

/// `resp` with its first chunk (a stream) or its whole body (otherwise)
/// already read, or why it could not be.
pub(super) async fn ready(
    resp: reqwest::Response,
    patience: &Patience,
) -> Result<reqwest::Response, NotReady> {
    // reqwest decodes gzip, br and deflate and drops the header; any other
    // encoding left would reach the client as bytes it cannot read.
    if let Some(encoding) = resp
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .filter(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(NotReady::new(
            format!("the upstream answered in content-encoding {encoding:?}, which the gateway cannot decode"),
            "the upstream answered in an encoding the gateway cannot decode",
        ));
    }
    let stream = is_event_stream(resp.headers());
    let (parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
    let mut chunks = body.into_data_stream();
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        let wait = if stream {
            tokio::time::timeout_at(patience.first_byte_by, chunks.next()).await
        } else {
            let until = patience
                .read_by
                .min(Instant::now() + patience.between_chunks);
            tokio::time::timeout_at(until, chunks.next()).await
        };
        match wait {
            Err(_) => {
                return Err(NotReady::new(
                    "the upstream sent its headers, then nothing in time",
                    "the upstream did not answer in time",
                ))
            }
            Ok(Some(Err(e))) => {
                return Err(NotReady::new(
                    format!("the upstream answer broke before its first byte: {e}"),
                    "the upstream answer broke off",
                ))
            }
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                size += chunk.len();
                if size > patience.max_bytes {
                    return Err(NotReady::new(
                        format!(
                            "the upstream answer is larger than {} bytes",
                            patience.max_bytes
                        ),
                        "the upstream answer is too large",
                    ));
                }
                let first = !chunk.is_empty();
                read.push(chunk);
                if stream && first {
                    // The rest streams on through the relay.
                    let head = futures::stream::iter(read.into_iter().map(Ok));
                    let body = reqwest::Body::wrap_stream(head.chain(chunks));
                    return Ok(http::Response::from_parts(parts, body).into());
                }
            }
        }
    }
    let whole: Bytes = match read.len() {
        0 => Bytes::new(),
        1 => read.pop().unwrap_or_default(),
        _ => read.concat().into(),
    };
    Ok(http::Response::from_parts(parts, reqwest::Body::from(whole)).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(content_type: &str, body: reqwest::Body) -> reqwest::Response {
        http::Response::builder()
            .header("content-type", content_type)
            .body(body)
            .unwrap()
            .into()
    }

    fn patience(ms: u64) -> Patience {
        Patience {
            first_byte_by: Instant::now() + Duration::from_millis(ms),
            between_chunks: Duration::from_millis(ms),
            read_by: Instant::now() + Duration::from_secs(60),
            max_bytes: 100,
        }
    }

    fn chunks(parts: &[&'static str]) -> reqwest::Body {
        let it = parts
            .iter()
            .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p.as_bytes())));
        reqwest::Body::wrap_stream(futures::stream::iter(it.collect::<Vec<_>>()))
    }

    #[tokio::test]
    async fn a_stream_is_ready_at_its_first_chunk_and_keeps_the_rest() {
        let silent_after = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
            b"event: message_start\n\n",
        ))])
        .chain(futures::stream::pending());
        let resp = upstream(
            "text/event-stream",
            reqwest::Body::wrap_stream(silent_after),
        );
        let resp = ready(resp, &patience(200))
            .await
            .expect("ready at the first chunk");
        let mut body = resp.bytes_stream();
        assert_eq!(
            body.next().await.unwrap().unwrap().as_ref(),
            b"event: message_start\n\n"
        );
    }

    #[tokio::test]
    async fn a_silent_stream_or_body_is_not_ready() {
        for ct in ["text/event-stream", "application/json"] {
            let silent = reqwest::Body::wrap_stream(futures::stream::pending::<
                Result<Bytes, std::io::Error>,
            >());
            let err = ready(upstream(ct, silent), &patience(50))
                .await
                .unwrap_err();
            assert_eq!(err.public, "the upstream did not answer in time", "{ct}");
        }
    }

    #[tokio::test]
    async fn a_whole_answer_is_read_to_its_end_within_its_bound() {
        let resp = ready(
            upstream("application/json", chunks(&["{\"a\":", "1}"])),
            &patience(200),
        )
        .await
        .expect("read whole");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"{\"a\":1}");
        let big = vec!["0123456789"; 11];
        let err = ready(upstream("application/json", chunks(&big)), &patience(200))
            .await
            .unwrap_err();
        assert_eq!(err.public, "the upstream answer is too large");
    }

    #[tokio::test]
    async fn a_reset_before_the_first_byte_is_not_ready() {
        let broken = futures::stream::iter([Err::<Bytes, _>(std::io::Error::other("reset"))]);
        let resp = upstream("text/event-stream", reqwest::Body::wrap_stream(broken));
        let err = ready(resp, &patience(200)).await.unwrap_err();
        assert_eq!(err.public, "the upstream answer broke off");
    }
}
